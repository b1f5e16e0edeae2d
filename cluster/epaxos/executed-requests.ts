/**
 * Exactly-once for EPaxos in a bounded window per client, like PBFT's per-client reply cache.
 *
 * A client has one request outstanding and numbers its requests 1, 2, 3, ... (cluster/sim
 * client-host and cluster/tcp load both do), so it sends k+1 only once k was answered, i.e.
 * executed somewhere. Two things need remembering:
 *
 * - *Was k executed here?* A client that timed out resent k to another replica, so k can sit in
 *   two committed instances and must run once. Replicas execute non-conflicting instances in
 *   different orders, so k+1 can execute here before k: "executed" is a prefix `floor` (every id ≤
 *   floor ran) plus the few ids above it that ran early. Every request a client sent before its
 *   latest one executed somewhere, hence is committed, hence executes here too: the gaps close,
 *   and the set above the floor stays as small as the reordering.
 * - *What to answer a retransmission with?* Only the client's latest executed request can still
 *   be waited for (the client sent the next one only after an answer), so one result per client
 *   suffices. A retransmission of an older executed request is a stale duplicate: no answer.
 */
import type { OperationResult } from '../protocol.ts';
import { invariant } from '../../core/errors.ts';

/** Request ids start here (the id before the first one is the initial floor). */
const FIRST_REQUEST_ID = 1;

/** One client's window as a snapshot carries it (state transfer). */
export type ClientWindowState = {
  readonly clientId: number;
  readonly floor: number;
  readonly above: readonly number[];
  readonly lastId: number;
  readonly lastResult: OperationResult;
};

interface ClientWindow {
  /** Every request id ≤ floor has executed here. */
  floor: number;
  /** Ids above the floor that executed before a lower one (reordering across instances). */
  readonly above: Set<number>;
  /** The highest id executed here, and its result: what a retransmission of it gets. */
  lastId: number;
  lastResult: OperationResult;
}

export class ExecutedRequests {
  private readonly byClient = new Map<number, ClientWindow>();

  executed(clientId: number, requestId: number): boolean {
    const window = this.byClient.get(clientId);
    return window !== undefined && (requestId <= window.floor || window.above.has(requestId));
  }

  /** The result a retransmission gets: known for the client's latest executed request only. */
  resultFor(clientId: number, requestId: number): OperationResult | undefined {
    const window = this.byClient.get(clientId);
    return window !== undefined && window.lastId === requestId ? window.lastResult : undefined;
  }

  record(clientId: number, requestId: number, result: OperationResult): void {
    invariant(!this.executed(clientId, requestId), `request ${clientId}:${requestId} executed twice`);
    let window = this.byClient.get(clientId);
    if (window === undefined) {
      window = { floor: FIRST_REQUEST_ID - 1, above: new Set(), lastId: -1, lastResult: result };
      this.byClient.set(clientId, window);
    }
    if (requestId === window.floor + 1) {
      window.floor = requestId;
      while (window.above.delete(window.floor + 1)) window.floor++;
    } else {
      window.above.add(requestId);
    }
    if (requestId > window.lastId) {
      window.lastId = requestId;
      window.lastResult = result;
    }
  }

  /** Every client's window, for a state transfer. */
  export(): ClientWindowState[] {
    return [...this.byClient].map(([clientId, w]) => ({ clientId, floor: w.floor, above: [...w.above], lastId: w.lastId, lastResult: w.lastResult }));
  }

  /** Replaces every window with a snapshot's (whose state covers everything executed here). */
  restore(windows: readonly ClientWindowState[]): void {
    this.byClient.clear();
    for (const w of windows) this.byClient.set(w.clientId, { floor: w.floor, above: new Set(w.above), lastId: w.lastId, lastResult: w.lastResult });
  }

  /** Ids held above the floors, over all clients (what the window costs beyond one entry per client). */
  heldAboveFloor(): number {
    let held = 0;
    for (const window of this.byClient.values()) held += window.above.size;
    return held;
  }
}
