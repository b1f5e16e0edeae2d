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

/** The two highest instance numbers seen per replica: two, so an instance can leave itself out. */
type TopTwo = [number, number];

interface KeyHistory {
  readonly any: TopTwo[];
  readonly writes: TopTwo[];
}

function pushTop(top: TopTwo, instance: number): void {
  if (instance === top[0] || instance === top[1]) return;
  if (instance > top[0]) {
    top[1] = top[0];
    top[0] = instance;
  } else if (instance > top[1]) {
    top[1] = instance;
  }
}

function highestExcept(top: TopTwo, except: number): number {
  return top[0] !== except ? top[0] : top[1];
}

/**
 * Per key and per replica, the latest instances that touched the key. With vector deps the latest
 * conflicting instance of each replica is all an instance needs to depend on.
 */
export class ConflictIndex {
  private readonly byKey = new Map<string, KeyHistory>();

  constructor(private readonly n: number) {}

  record(id: InstanceId, cmd: Command): void {
    if (cmd === null) return;
    const history = this.historyOf(cmd.op.key);
    const any = history.any[id.replica];
    if (any !== undefined) pushTop(any, id.instance);
    if (isWrite(cmd.op)) {
      const writes = history.writes[id.replica];
      if (writes !== undefined) pushTop(writes, id.instance);
    }
  }

  /**
   * Deps and seq for `cmd` at `self` from what this replica knows: a read depends on the latest
   * writes, a write on the latest of anything. Seq is one above every such dependency's seq.
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
      const latest = q === self.replica ? highestExcept(top, self.instance) : top[0];
      if (latest < 0) continue;
      deps[q] = latest;
      const dep = lookup({ replica: q, instance: latest });
      if (dep?.attrs) seq = Math.max(seq, dep.attrs.seq + 1);
    }
    return { seq, deps };
  }

  private historyOf(key: string): KeyHistory {
    let history = this.byKey.get(key);
    if (history === undefined) {
      const fresh = (): TopTwo[] => Array.from({ length: this.n }, (): TopTwo => [-1, -1]);
      history = { any: fresh(), writes: fresh() };
      this.byKey.set(key, history);
    }
    return history;
  }
}
