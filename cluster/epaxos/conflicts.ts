/**
 * Which commands interfere, and the index a replica uses to compute an instance's attributes.
 * Two commands conflict when they touch the same key and at least one of them writes (write or
 * cas); reads commute with reads.
 */
import type { Operation } from '../protocol.ts';
import type { Command, InstanceId, InstanceRecord } from './types.ts';
import { emptyDeps } from './types.ts';

export function isWrite(op: Operation): boolean {
  return op.kind !== 'read';
}

export function commandsConflict(a: Command, b: Command): boolean {
  if (a === null || b === null) return false;
  if (a.op.key !== b.op.key) return false;
  return isWrite(a.op) || isWrite(b.op);
}

/**
 * The two highest instance numbers seen per replica, with the seq each was last recorded at: two,
 * so an instance can leave itself out; the seq, so a dependency whose record was garbage-collected
 * (executed at every replica) still raises seq as it did before, and replicas that collected at
 * different moments compute the same attributes (a difference would cost the fast path).
 */
interface TopTwo {
  i0: number;
  s0: number;
  i1: number;
  s1: number;
}

interface KeyHistory {
  readonly any: TopTwo[];
  readonly writes: TopTwo[];
}

function pushTop(top: TopTwo, instance: number, seq: number): void {
  if (instance === top.i0) {
    top.s0 = seq;
  } else if (instance === top.i1) {
    top.s1 = seq;
  } else if (instance > top.i0) {
    top.i1 = top.i0;
    top.s1 = top.s0;
    top.i0 = instance;
    top.s0 = seq;
  } else if (instance > top.i1) {
    top.i1 = instance;
    top.s1 = seq;
  }
}

/**
 * Per key and per replica, the latest instances that touched the key. With vector deps the latest
 * conflicting instance of each replica is all an instance needs to depend on.
 *
 * It holds no instance records, only two (instance, seq) pairs per key and replica: its size is
 * keys × replicas whatever the run length, so garbage collection of instances leaves it alone.
 * It does not forget a collected instance's number either: `deps[q] = j` and `deps[q] = -1` mean
 * the same once q.j has executed everywhere, but replicas compare attributes exactly on the fast
 * path, and they collect at different moments.
 */
export class ConflictIndex {
  private readonly byKey = new Map<string, KeyHistory>();

  constructor(private readonly n: number) {}

  /** The instance now carries `cmd` at `seq` (every vote and commit). */
  record(id: InstanceId, cmd: Command, seq: number): void {
    if (cmd === null) return;
    const history = this.historyOf(cmd.op.key);
    const any = history.any[id.replica];
    if (any !== undefined) pushTop(any, id.instance, seq);
    if (isWrite(cmd.op)) {
      const writes = history.writes[id.replica];
      if (writes !== undefined) pushTop(writes, id.instance, seq);
    }
  }

  /**
   * Deps and seq for `cmd` at `self` from what this replica knows: a read depends on the latest
   * writes, a write on the latest of anything. Seq is one above every such dependency's seq: the
   * record's, while this replica holds it, else the one recorded here (the record was collected).
   */
  attributesFor(self: InstanceId, cmd: Command, lookup: (id: InstanceId) => InstanceRecord | undefined): { seq: number; deps: number[] } {
    const deps = emptyDeps(this.n);
    let seq = 1;
    if (cmd === null) return { seq: 0, deps };
    const history = this.byKey.get(cmd.op.key);
    if (history === undefined) return { seq, deps };
    const tops = isWrite(cmd.op) ? history.any : history.writes;
    for (let q = 0; q < this.n; q++) {
      const top = tops[q];
      if (top === undefined) continue;
      const second = q === self.replica && top.i0 === self.instance;
      const latest = second ? top.i1 : top.i0;
      if (latest < 0) continue;
      deps[q] = latest;
      const dep = lookup({ replica: q, instance: latest });
      if (dep === undefined) seq = Math.max(seq, (second ? top.s1 : top.s0) + 1);
      else if (dep.attrs) seq = Math.max(seq, dep.attrs.seq + 1);
    }
    return { seq, deps };
  }

  private historyOf(key: string): KeyHistory {
    let history = this.byKey.get(key);
    if (history === undefined) {
      const fresh = (): TopTwo[] => Array.from({ length: this.n }, (): TopTwo => ({ i0: -1, s0: 0, i1: -1, s1: 0 }));
      history = { any: fresh(), writes: fresh() };
      this.byKey.set(key, history);
    }
    return history;
  }
}
