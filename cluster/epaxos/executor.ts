/**
 * Execution order (reference code `epaxos-exec.go`): from a committed instance, Tarjan's strongly
 * connected components over the dependency graph; SCCs come out in reverse topological order,
 * which is the order to execute them in; inside an SCC, by seq, then replica id (then instance
 * number, for the non-conflicting neighbours vector deps pull in). Iterative, because dependency
 * chains grow long while an instance is blocked and recursion would overflow the stack.
 */
import type { InstanceId, InstanceRecord } from './types.ts';

export interface ExecutionGraph {
  readonly n: number;
  record(id: InstanceId): InstanceRecord | undefined;
  /** Highest j with q.0..q.j all executed, per space: the walk skips below it. */
  executedUpTo(q: number): number;
  /** Mutation 'exec-ignore-deps' (deliberate bug, tests only): skip uncommitted deps instead of waiting. */
  readonly ignoreUncommittedDeps?: boolean;
}

export interface ExecutionPlan {
  /** Ready components, dependencies first, each already in execution order. */
  readonly components: InstanceRecord[][];
  /** The first instance found not committed; everything depending on it waits. */
  readonly blockedOn: InstanceId | null;
}

interface Frame {
  readonly rec: InstanceRecord;
  readonly index: number;
  low: number;
  /** Cursor over the deps vector: space q, next slot j. */
  q: number;
  j: number;
}

function isCommitted(rec: InstanceRecord | undefined): rec is InstanceRecord {
  return rec !== undefined && rec.attrs !== null && (rec.status === 'committed' || rec.status === 'executed');
}

export function compareForExecution(a: InstanceRecord, b: InstanceRecord): number {
  const seqA = a.attrs?.seq ?? 0;
  const seqB = b.attrs?.seq ?? 0;
  return seqA - seqB || a.id.replica - b.id.replica || a.id.instance - b.id.instance;
}

/**
 * Plans execution from a committed, not yet executed instance.
 *
 * Vector deps make every instance point at a whole range of each space, so a naive walk is
 * quadratic in a long backlog. Slots whose component is already complete add nothing to Tarjan's
 * low-links, so the walk keeps, per space, the prefix that is complete and starts every range
 * scan above it: a backlog of k instances costs O(k·n), not O(k²).
 */
export function planExecution(start: InstanceRecord, graph: ExecutionGraph): ExecutionPlan {
  const n = graph.n;
  const numeric = (id: InstanceId): number => id.instance * n + id.replica;
  const components: InstanceRecord[][] = [];
  const indexOf = new Map<number, number>();
  const onStack = new Set<number>();
  const completed = new Set<number>();
  const done = Array.from({ length: n }, (_, q) => graph.executedUpTo(q));
  const stack: InstanceRecord[] = [];
  const frames: Frame[] = [];
  let counter = 0;

  const isDone = (q: number, j: number): boolean => completed.has(j * n + q) || graph.record({ replica: q, instance: j })?.status === 'executed';
  const push = (rec: InstanceRecord): void => {
    const key = numeric(rec.id);
    indexOf.set(key, counter);
    frames.push({ rec, index: counter, low: counter, q: 0, j: 0 });
    counter++;
    stack.push(rec);
    onStack.add(key);
  };
  const nextNeighbour = (frame: Frame): InstanceId | null => {
    const deps = frame.rec.attrs?.deps ?? [];
    while (frame.q < n) {
      const q = frame.q;
      const j = Math.max(frame.j, done[q]! + 1);
      if (j > (deps[q] ?? -1)) {
        frame.q++;
        frame.j = 0;
        continue;
      }
      frame.j = j + 1;
      if (q === frame.rec.id.replica && j === frame.rec.id.instance) continue;
      return { replica: q, instance: j };
    }
    return null;
  };

  push(start);
  while (frames.length > 0) {
    const frame = frames[frames.length - 1]!;
    const id = nextNeighbour(frame);
    if (id !== null) {
      const key = numeric(id);
      if (completed.has(key)) continue;
      const rec = graph.record(id);
      if (!isCommitted(rec)) {
        if (graph.ignoreUncommittedDeps === true) continue;
        return { components, blockedOn: id };
      }
      if (rec.status === 'executed') continue;
      const seen = indexOf.get(key);
      if (seen === undefined) push(rec);
      else if (onStack.has(key)) frame.low = Math.min(frame.low, seen);
      continue;
    }
    frames.pop();
    const parent = frames[frames.length - 1];
    if (parent !== undefined) parent.low = Math.min(parent.low, frame.low);
    if (frame.low === frame.index) {
      const component: InstanceRecord[] = [];
      for (;;) {
        const member = stack.pop()!;
        const key = numeric(member.id);
        onStack.delete(key);
        completed.add(key);
        component.push(member);
        if (member === frame.rec) break;
      }
      for (const member of component) {
        const q = member.id.replica;
        while (isDone(q, done[q]! + 1)) done[q]!++;
      }
      component.sort(compareForExecution);
      components.push(component);
    }
  }
  return { components, blockedOn: null };
}
