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
  return new TarjanWalk(graph).run(start);
}

/** One walk's state. A class, not closures: planExecution runs once per commit, and closures
 * created per call cost allocations (and, under tsx, a name-keeping helper call each). */
class TarjanWalk {
  private readonly n: number;
  private readonly components: InstanceRecord[][] = [];
  private readonly indexOf = new Map<number, number>();
  private readonly onStack = new Set<number>();
  private readonly completed = new Set<number>();
  private readonly done: number[];
  private readonly stack: InstanceRecord[] = [];
  private readonly frames: Frame[] = [];
  private counter = 0;

  constructor(private readonly graph: ExecutionGraph) {
    this.n = graph.n;
    this.done = [];
    for (let q = 0; q < this.n; q++) this.done.push(graph.executedUpTo(q));
  }

  run(start: InstanceRecord): ExecutionPlan {
    const { n, frames, indexOf, onStack, completed, graph } = this;
    this.push(start);
    while (frames.length > 0) {
      const frame = frames[frames.length - 1]!;
      const id = this.nextNeighbour(frame);
      if (id !== null) {
        const key = id.instance * n + id.replica;
        if (completed.has(key)) continue;
        const rec = graph.record(id);
        if (!isCommitted(rec)) {
          if (graph.ignoreUncommittedDeps === true) continue;
          return { components: this.components, blockedOn: id };
        }
        if (rec.status === 'executed') continue;
        const seen = indexOf.get(key);
        if (seen === undefined) this.push(rec);
        else if (onStack.has(key)) frame.low = Math.min(frame.low, seen);
        continue;
      }
      frames.pop();
      const parent = frames[frames.length - 1];
      if (parent !== undefined) parent.low = Math.min(parent.low, frame.low);
      if (frame.low === frame.index) this.popComponent(frame.rec);
    }
    return { components: this.components, blockedOn: null };
  }

  private push(rec: InstanceRecord): void {
    const key = rec.id.instance * this.n + rec.id.replica;
    this.indexOf.set(key, this.counter);
    this.frames.push({ rec, index: this.counter, low: this.counter, q: 0, j: 0 });
    this.counter++;
    this.stack.push(rec);
    this.onStack.add(key);
  }

  private nextNeighbour(frame: Frame): InstanceId | null {
    const deps = frame.rec.attrs?.deps ?? [];
    const n = this.n;
    while (frame.q < n) {
      const q = frame.q;
      const j = Math.max(frame.j, this.done[q]! + 1);
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
  }

  private isDone(q: number, j: number): boolean {
    return this.completed.has(j * this.n + q) || this.graph.record({ replica: q, instance: j })?.status === 'executed';
  }

  private popComponent(root: InstanceRecord): void {
    const component: InstanceRecord[] = [];
    for (;;) {
      const member = this.stack.pop()!;
      const key = member.id.instance * this.n + member.id.replica;
      this.onStack.delete(key);
      this.completed.add(key);
      component.push(member);
      if (member === root) break;
    }
    for (const member of component) {
      const q = member.id.replica;
      while (this.isDone(q, this.done[q]! + 1)) this.done[q]!++;
    }
    component.sort(compareForExecution);
    this.components.push(component);
  }
}
