/**
 * Execution order (reference code `epaxos-exec.go`): from a committed instance, Tarjan's strongly
 * connected components over the dependency graph; SCCs come out in reverse topological order,
 * which is the order to execute them in; inside an SCC, by seq, then replica id (then instance
 * number, for the non-conflicting neighbours vector deps pull in). Iterative, because dependency
 * chains grow long while an instance is blocked and recursion would overflow the stack.
 */
import type { InstanceId, InstanceRecord } from './types.ts';
import { instanceKey } from './types.ts';

export interface ExecutionGraph {
  readonly n: number;
  record(id: InstanceId): InstanceRecord | undefined;
  /** Highest j with q.0..q.j all executed, per space: the walk skips below it. */
  executedUpTo(q: number): number;
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
  readonly neighbours: InstanceId[];
  next: number;
}

function isCommitted(rec: InstanceRecord | undefined): rec is InstanceRecord {
  return rec !== undefined && rec.attrs !== null && (rec.status === 'committed' || rec.status === 'executed');
}

function neighboursOf(rec: InstanceRecord, graph: ExecutionGraph): InstanceId[] {
  const out: InstanceId[] = [];
  const deps = rec.attrs?.deps ?? [];
  for (let q = 0; q < graph.n; q++) {
    const upTo = deps[q] ?? -1;
    for (let j = graph.executedUpTo(q) + 1; j <= upTo; j++) {
      if (q === rec.id.replica && j === rec.id.instance) continue;
      out.push({ replica: q, instance: j });
    }
  }
  return out;
}

export function compareForExecution(a: InstanceRecord, b: InstanceRecord): number {
  const seqA = a.attrs?.seq ?? 0;
  const seqB = b.attrs?.seq ?? 0;
  return seqA - seqB || a.id.replica - b.id.replica || a.id.instance - b.id.instance;
}

/** Plans execution from a committed, not yet executed instance. */
export function planExecution(start: InstanceRecord, graph: ExecutionGraph): ExecutionPlan {
  const components: InstanceRecord[][] = [];
  const indexOf = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: InstanceRecord[] = [];
  const frames: Frame[] = [];
  let counter = 0;

  const push = (rec: InstanceRecord): void => {
    const key = instanceKey(rec.id);
    indexOf.set(key, counter);
    frames.push({ rec, index: counter, low: counter, neighbours: neighboursOf(rec, graph), next: 0 });
    counter++;
    stack.push(rec);
    onStack.add(key);
  };

  push(start);
  while (frames.length > 0) {
    const frame = frames[frames.length - 1]!;
    if (frame.next < frame.neighbours.length) {
      const id = frame.neighbours[frame.next++]!;
      const rec = graph.record(id);
      if (!isCommitted(rec)) return { components, blockedOn: id };
      if (rec.status === 'executed') continue;
      const key = instanceKey(id);
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
        onStack.delete(instanceKey(member.id));
        component.push(member);
        if (member === frame.rec) break;
      }
      component.sort(compareForExecution);
      components.push(component);
    }
  }
  return { components, blockedOn: null };
}
