import { describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../cluster/auth.ts';
import { commandsConflict, ConflictIndex } from '../../cluster/epaxos/conflicts.ts';
import { planExecution, type ExecutionGraph } from '../../cluster/epaxos/executor.ts';
import { epaxosProtocol } from '../../cluster/epaxos/index.ts';
import { parseMessage } from '../../cluster/epaxos/messages.ts';
import { fastQuorumSize, nextBallot, recoveryEqThreshold, slowQuorumSize } from '../../cluster/epaxos/quorums.ts';
import { decideRecovery, type RecoveryReply } from '../../cluster/epaxos/recovery.ts';
import type { Attributes, InstanceId, InstanceRecord, InstanceStatus } from '../../cluster/epaxos/types.ts';
import { instanceKey } from '../../cluster/epaxos/types.ts';
import type { ClientRequest, Message } from '../../cluster/protocol.ts';
import { createRng } from '../../core/rng.ts';

const req = (clientId: number, kind: 'read' | 'write', key: string): ClientRequest =>
  kind === 'read' ? { clientId, requestId: 1, op: { kind, key } } : { clientId, requestId: 1, op: { kind, key, value: `v${clientId}` } };

describe('quorums and ballots', () => {
  it('uses the optimized fast quorum F + ⌊(F+1)/2⌋ and a classic quorum F+1', () => {
    expect([1, 2, 3].map(fastQuorumSize)).toEqual([2, 3, 5]);
    expect([1, 2, 3].map(slowQuorumSize)).toEqual([2, 3, 4]);
    expect([1, 2, 3].map(recoveryEqThreshold)).toEqual([1, 1, 2]);
    expect(epaxosProtocol.faultTolerance(5)).toBe(2);
    expect(epaxosProtocol.minReplicas).toBe(3);
  });

  it('makes ballots unique per replica and above anything seen', () => {
    expect(nextBallot(0, 2, 5)).toBe(7);
    expect(nextBallot(7, 1, 5)).toBe(11);
    expect(nextBallot(11, 1, 5)).toBe(16);
    expect(nextBallot(16, 1, 5) % 5).toBe(1);
  });
});

describe('conflicts', () => {
  it('conflicts on the same key when at least one side writes', () => {
    expect(commandsConflict(req(1, 'write', 'a'), req(2, 'write', 'a'))).toBe(true);
    expect(commandsConflict(req(1, 'read', 'a'), req(2, 'write', 'a'))).toBe(true);
    expect(commandsConflict(req(1, 'read', 'a'), req(2, 'read', 'a'))).toBe(false);
    expect(commandsConflict(req(1, 'write', 'a'), req(2, 'write', 'b'))).toBe(false);
    expect(commandsConflict(null, req(2, 'write', 'a'))).toBe(false);
  });

  it('computes deps from the latest conflicting instance per replica, leaving the instance itself out', () => {
    const index = new ConflictIndex(3);
    const seqOf = new Map<string, number>();
    const lookup = (id: InstanceId) => {
      const seq = seqOf.get(instanceKey(id));
      return seq === undefined ? undefined : ({ attrs: { cmd: null, seq, deps: [] } } as unknown as InstanceRecord);
    };
    index.record({ replica: 0, instance: 0 }, req(1, 'write', 'a'), 1);
    seqOf.set('0.0', 1);
    index.record({ replica: 1, instance: 4 }, req(2, 'read', 'a'), 2);
    seqOf.set('1.4', 2);
    index.record({ replica: 0, instance: 1 }, req(3, 'write', 'a'), 3);
    seqOf.set('0.1', 3);
    // A read depends on writes only.
    expect(index.attributesFor({ replica: 2, instance: 0 }, req(4, 'read', 'a'), lookup)).toEqual({ seq: 4, deps: [1, -1, -1] });
    // A write depends on everything; instance 0.1 itself is left out of its own deps.
    expect(index.attributesFor({ replica: 0, instance: 1 }, req(3, 'write', 'a'), lookup)).toEqual({ seq: 3, deps: [0, 4, -1] });
    expect(index.attributesFor({ replica: 2, instance: 0 }, req(4, 'write', 'b'), lookup)).toEqual({ seq: 1, deps: [-1, -1, -1] });
  });

  it('still depends on a garbage-collected instance, at the seq it was last recorded with', () => {
    const index = new ConflictIndex(3);
    const held = new Map<string, number>([['1.4', 2]]);
    const lookup = (id: InstanceId) => {
      const seq = held.get(instanceKey(id));
      return seq === undefined ? undefined : ({ attrs: { cmd: null, seq, deps: [] } } as unknown as InstanceRecord);
    };
    index.record({ replica: 0, instance: 7 }, req(1, 'write', 'a'), 1);
    index.record({ replica: 0, instance: 7 }, req(1, 'write', 'a'), 5); // committed at a higher seq
    index.record({ replica: 1, instance: 4 }, req(2, 'write', 'a'), 2);
    // 0.7 is no longer held (collected): its deps entry and its seq 5 stay, so seq = 6 as before.
    const collected = index.attributesFor({ replica: 2, instance: 0 }, req(3, 'write', 'a'), lookup);
    held.set('0.7', 5);
    const kept = index.attributesFor({ replica: 2, instance: 0 }, req(3, 'write', 'a'), lookup);
    expect(collected).toEqual({ seq: 6, deps: [7, 4, -1] });
    expect(collected).toEqual(kept);
  });
});

describe('execution order (Tarjan SCC)', () => {
  function graphOf(n: number, entries: Array<[InstanceId, InstanceStatus, number, number[]]>): ExecutionGraph & { records: InstanceRecord[] } {
    const records = entries.map(([id, status, seq, deps]): InstanceRecord => ({
      id,
      status,
      attrs: { cmd: null, seq, deps },
      promised: 0,
      vbal: 0,
      preAcceptedEq: false,
      lastProgressUs: 0,
      recoverAfterUs: 0,
      votesOpenedUs: 0,
    }));
    const byKey = new Map(records.map((r) => [instanceKey(r.id), r]));
    return { n, records, record: (id) => byKey.get(instanceKey(id)), executedUpTo: () => -1 };
  }
  const keys = (components: InstanceRecord[][]) => components.map((c) => c.map((r) => instanceKey(r.id)));

  it('executes dependencies first, and a cycle by seq then replica id, whatever the start', () => {
    // 0.0 and 1.0 depend on each other (same seq); 2.0 depends on both; 1.0 depends on 0.0 only via the cycle.
    const g = graphOf(3, [
      [{ replica: 0, instance: 0 }, 'committed', 2, [-1, 0, -1]],
      [{ replica: 1, instance: 0 }, 'committed', 2, [0, -1, -1]],
      [{ replica: 2, instance: 0 }, 'committed', 3, [0, 0, -1]],
    ]);
    const fromTop = planExecution(g.records[2]!, g);
    expect(fromTop.blockedOn).toBeNull();
    expect(keys(fromTop.components)).toEqual([['0.0', '1.0'], ['2.0']]);
    const fromCycle = planExecution(g.records[1]!, g);
    expect(keys(fromCycle.components)).toEqual([['0.0', '1.0']]);
  });

  it('orders a cycle by seq before replica id', () => {
    const g = graphOf(2, [
      [{ replica: 0, instance: 0 }, 'committed', 5, [-1, 0]],
      [{ replica: 1, instance: 0 }, 'committed', 4, [0, -1]],
    ]);
    expect(keys(planExecution(g.records[0]!, g).components)).toEqual([['1.0', '0.0']]);
  });

  it('waits on a dependency that is not committed, and on one never heard of', () => {
    const g = graphOf(2, [
      [{ replica: 0, instance: 0 }, 'committed', 1, [-1, 0]],
      [{ replica: 1, instance: 0 }, 'preaccepted', 1, [-1, -1]],
      [{ replica: 0, instance: 1 }, 'committed', 1, [-1, 3]],
    ]);
    const plan = planExecution(g.records[0]!, g);
    expect(plan.components).toEqual([]);
    expect(plan.blockedOn).toEqual({ replica: 1, instance: 0 });
    // Vector deps: 0.1 needs all of 1.0..1.3, and 1.0 is the first not committed.
    expect(planExecution(g.records[2]!, g).blockedOn).toEqual({ replica: 1, instance: 0 });
  });

  it('handles long dependency chains without recursion', () => {
    const entries: Array<[InstanceId, InstanceStatus, number, number[]]> = [];
    for (let i = 0; i < 20_000; i++) entries.push([{ replica: 0, instance: i }, 'committed', i + 1, [i - 1]]);
    const g = graphOf(1, entries);
    const plan = planExecution(g.records[19_999]!, g);
    expect(plan.components).toHaveLength(20_000);
    expect(plan.components[0]![0]!.id.instance).toBe(0);
  });
});

describe('recovery decision (explicit prepare)', () => {
  const attrs = (seq: number, deps: number[], value = 'x'): Attributes => ({ cmd: { clientId: 1, requestId: 1, op: { kind: 'write', key: 'k', value } }, seq, deps });
  const reply = (from: number, status: InstanceStatus, a: Attributes | null, vbal: number, eq = false): RecoveryReply => ({ from, status, attrs: a, vbal, eq });
  const five = { n: 5, f: 2, leader: 0 };
  const three = { n: 3, f: 1, leader: 0 };

  it('commits what any replica committed, even before a quorum answered', () => {
    expect(decideRecovery([reply(1, 'committed', attrs(3, [0, 1, 0, 0, 0]), 0)], five)).toEqual({ kind: 'commit', attrs: attrs(3, [0, 1, 0, 0, 0]) });
  });

  it('waits for F+1 replies', () => {
    expect(decideRecovery([reply(1, 'none', null, -1), reply(2, 'none', null, -1)], five)).toEqual({ kind: 'wait' });
  });

  it('accepts the value voted at the highest vbal, not the one of the highest promise (Sutra 2019)', () => {
    const old = attrs(2, [0, -1, -1, -1, -1]);
    const newer = attrs(4, [0, 3, -1, -1, -1]);
    const decision = decideRecovery([reply(1, 'accepted', old, 6), reply(2, 'accepted', newer, 11), reply(3, 'preaccepted', attrs(9, [5, 5, 5, 5, 5]), 0)], five);
    expect(decision).toEqual({ kind: 'accept', attrs: newer });
  });

  it('n=3: one unchanged pre-accept from a non-leader is enough to keep the leader’s attributes', () => {
    const a = attrs(1, [-1, -1, -1]);
    expect(decideRecovery([reply(1, 'preaccepted', a, 0, true), reply(2, 'none', null, -1)], three)).toEqual({ kind: 'accept', attrs: a });
  });

  it('n=5: keeps the leader’s attributes with F unchanged replies', () => {
    const a = attrs(1, [-1, -1, -1, -1, -1]);
    expect(decideRecovery([reply(1, 'preaccepted', a, 0, true), reply(2, 'preaccepted', a, 0, true), reply(3, 'none', null, -1)], five)).toEqual({ kind: 'accept', attrs: a });
  });

  it('n=5: waits while a fast commit is still possible, and redoes phase 1 once it is not', () => {
    const a = attrs(1, [-1, -1, -1, -1, -1]);
    const some = [reply(1, 'preaccepted', a, 0, true), reply(2, 'none', null, -1), reply(3, 'none', null, -1)];
    expect(decideRecovery(some, five)).toEqual({ kind: 'wait' });
    expect(decideRecovery([...some, reply(4, 'none', null, -1)], five)).toEqual({ kind: 'preaccept', attrs: a });
  });

  it('redoes phase 1 when the leader itself answers without a commit', () => {
    const a = attrs(1, [-1, -1, -1, -1, -1]);
    const decision = decideRecovery([reply(0, 'preaccepted', a, 0, true), reply(1, 'preaccepted', a, 0, true), reply(2, 'none', null, -1)], five);
    expect(decision).toEqual({ kind: 'preaccept', attrs: a });
  });

  it('does not count changed or leader replies as identical', () => {
    const changed = attrs(2, [-1, 0, -1]);
    expect(decideRecovery([reply(1, 'preaccepted', changed, 0, false), reply(2, 'none', null, -1)], three)).toEqual({ kind: 'preaccept', attrs: changed });
  });

  it('commits a no-op when no replica of the quorum knows the command', () => {
    const decision = decideRecovery([reply(1, 'none', null, -1), reply(2, 'none', null, -1), reply(3, 'none', null, -1)], five);
    expect(decision).toEqual({ kind: 'accept', attrs: { cmd: null, seq: 0, deps: [-1, -1, -1, -1, -1] } });
  });
});

describe('messages and Byzantine hooks', () => {
  const auth1 = createAuthenticator('s', 1, 3);
  const preAccept: Message = auth1.sign({ type: 'PRE_ACCEPT', from: 1, ballot: 0, replica: 1, instance: 0, cmd: { clientId: 1, requestId: 1, op: { kind: 'write', key: 'k', value: 'v' } }, seq: 1, deps: [-1, -1, -1] });

  it('parses well-formed messages and drops malformed ones', () => {
    expect(parseMessage(preAccept, 3)?.type).toBe('PRE_ACCEPT');
    expect(parseMessage({ ...preAccept, deps: [-1, -1] }, 3)).toBeNull();
    expect(parseMessage({ ...preAccept, instance: -1 }, 3)).toBeNull();
    expect(parseMessage({ ...preAccept, cmd: { clientId: 1, requestId: 1, op: { kind: 'drop', key: 'k' } } }, 3)).toBeNull();
    expect(parseMessage({ ...preAccept, from: 7 }, 3)).toBeNull();
    expect(parseMessage({ type: 'WHAT', from: 0 }, 3)).toBeNull();
  });

  it('counts the three reply types as votes', () => {
    for (const type of ['PRE_ACCEPT_REPLY', 'ACCEPT_REPLY', 'PREPARE_REPLY']) expect(epaxosProtocol.byzantine.isVote({ type, from: 0 })).toBe(true);
    for (const type of ['PRE_ACCEPT', 'ACCEPT', 'COMMIT', 'PREPARE', 'SYNC']) expect(epaxosProtocol.byzantine.isVote({ type, from: 0 })).toBe(false);
  });

  it('equivocates a PRE-ACCEPT with a different, validly signed command for half of the recipients', () => {
    const rng = createRng(1);
    expect(epaxosProtocol.byzantine.equivocate(preAccept, 0, rng, auth1)).toBeNull();
    const variant = epaxosProtocol.byzantine.equivocate(preAccept, 1, rng, auth1);
    expect(variant).not.toBeNull();
    expect(variant!.cmd).not.toEqual(preAccept.cmd);
    expect(createAuthenticator('s', 0, 3).verify(variant!)).toBe(true);
    expect(epaxosProtocol.byzantine.equivocate({ ...preAccept, type: 'COMMIT' }, 1, rng, auth1)).toBeNull();
  });
});
