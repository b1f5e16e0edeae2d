import { beforeAll, describe, expect, it } from 'vitest';
import { initBlake3 } from '../../cluster/state/blake3.ts';
import { VerifiedStateMachine, type ExecutedOp } from '../../cluster/state/verified-state-machine.ts';
import { checkExactlyOnce, checkPerKeyOrder, checkSafety, checkTotalOrder } from '../../cluster/verify/safety.ts';
import type { ClientRequest } from '../../cluster/protocol.ts';
import { createRng } from '../../core/rng.ts';

beforeAll(async () => {
  await initBlake3();
});

function request(clientId: number, requestId: number, key: string, value?: string): ClientRequest {
  return { clientId, requestId, op: value === undefined ? { kind: 'read', key } : { kind: 'write', key, value } };
}

function run(requests: readonly ClientRequest[]): VerifiedStateMachine {
  const sm = new VerifiedStateMachine();
  for (const r of requests) sm.executeRequest(r);
  return sm;
}

function randomRequests(seed: number, count: number): ClientRequest[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, (_, i) =>
    request(rng.int(4), i, `k${rng.int(5)}`, rng.int(3) === 0 ? undefined : `v${rng.int(10)}`),
  );
}

describe('safety checkers', () => {
  it('pass identical logs, and logs that are prefixes of each other', () => {
    const requests = randomRequests(1, 400);
    const logs = [
      { node: 0, log: run(requests).executedLog() },
      { node: 1, log: run(requests).executedLog() },
      { node: 2, log: run(requests.slice(0, 250)).executedLog() },
    ];
    expect(checkSafety(logs, { totalOrder: true })).toEqual([]);
  });

  it('total order: catches two requests at the same position', () => {
    const common = randomRequests(2, 50);
    const a = run([...common, request(1, 100, 'x', 'a'), request(2, 101, 'y', 'b')]);
    const b = run([...common, request(2, 101, 'y', 'b'), request(1, 100, 'x', 'a')]);
    const violations = checkTotalOrder(new Map([[0, a.executedLog()], [3, b.executedLog()]]));
    expect(violations).toHaveLength(2);
    expect(violations[0]).toMatchObject({
      kind: 'total-order',
      node: 3,
      otherNode: 0,
      position: 50,
      request: { clientId: 2, requestId: 101 },
      otherRequest: { clientId: 1, requestId: 100 },
    });
    expect(violations[0]?.message).toContain('position 50');
    // different keys: per-key order still holds, which is all EPaxos promises
    expect(checkPerKeyOrder(new Map([[0, a.executedLog()], [3, b.executedLog()]]))).toEqual([]);
  });

  it('per-key order: catches conflicting writes applied in different orders', () => {
    const a = run([request(1, 1, 'x', 'a'), request(3, 7, 'z', 'q'), request(2, 1, 'x', 'b'), request(1, 2, 'x')]);
    const b = run([request(3, 7, 'z', 'q'), request(2, 1, 'x', 'b'), request(1, 1, 'x', 'a'), request(1, 2, 'x')]);
    const violations = checkPerKeyOrder([
      { node: 0, log: a.executedLog() },
      { node: 1, log: b.executedLog() },
    ]);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({
      kind: 'per-key-order',
      node: 1,
      otherNode: 0,
      key: 'x',
      position: 0,
      request: { clientId: 2, requestId: 1, position: 1 },
      otherRequest: { clientId: 1, requestId: 1, position: 0 },
    });
  });

  it('catches the same request returning different results (diverged state)', () => {
    const a = run([request(1, 1, 'x', 'a'), request(1, 2, 'x')]);
    const b = new VerifiedStateMachine();
    b.executeRequest(request(1, 1, 'x', 'a'));
    b.corrupt(createRng(3));
    b.executeRequest(request(1, 2, 'x'));
    const logs = [
      { node: 0, log: a.executedLog() },
      { node: 1, log: b.executedLog() },
    ];
    const total = checkTotalOrder(logs);
    expect(total).toHaveLength(1);
    expect(total[0]).toMatchObject({ kind: 'result-divergence', position: 1, node: 1 });
    // Per key only state-changing operations are compared (reads may be reordered among
    // themselves); a diverged read is the linearizability checker's to catch.
    expect(checkPerKeyOrder(logs)).toEqual([]);
  });

  it('per key: catches a cas that returned a different result on a diverged replica', () => {
    const cas: ClientRequest = { clientId: 1, requestId: 2, op: { kind: 'cas', key: 'x', expected: 'a', value: 'c' } };
    const a = run([request(1, 1, 'x', 'a'), cas]);
    const b = new VerifiedStateMachine();
    b.executeRequest(request(1, 1, 'x', 'a'));
    b.corrupt(createRng(3));
    b.executeRequest(cas);
    const logs = [
      { node: 0, log: a.executedLog() },
      { node: 1, log: b.executedLog() },
    ];
    expect(checkPerKeyOrder(logs)[0]).toMatchObject({ kind: 'result-divergence', key: 'x', position: 1 });
  });

  it('per key: reads between the same writes may run in any order', () => {
    const a = run([request(1, 1, 'x', 'a'), request(2, 1, 'x'), request(3, 1, 'x'), request(1, 2, 'x', 'b')]);
    const b = run([request(1, 1, 'x', 'a'), request(3, 1, 'x'), request(2, 1, 'x'), request(1, 2, 'x', 'b')]);
    expect(checkPerKeyOrder([{ node: 0, log: a.executedLog() }, { node: 1, log: b.executedLog() }])).toEqual([]);
  });

  it('exactly-once: catches a request executed twice on one node', () => {
    const sm = run([request(1, 1, 'x', 'a'), request(2, 1, 'x', 'b'), request(1, 1, 'x', 'a')]);
    const violations = checkExactlyOnce([{ node: 4, log: sm.executedLog() }]);
    expect(violations).toEqual([
      expect.objectContaining({ kind: 'duplicate-execution', node: 4, position: 2, otherPosition: 0, key: 'x' }),
    ]);
    expect(violations[0]?.message).toContain('client 1 request 1 twice');
  });

  it('skips holes left by a state transfer', () => {
    const requests = randomRequests(5, 120);
    const leader = run(requests.slice(0, 100));
    const lagging = run(requests.slice(0, 10));
    lagging.restore(leader.snapshot());
    for (const r of requests.slice(100)) {
      leader.executeRequest(r);
      lagging.executeRequest(r);
    }
    const logs = [
      { node: 0, log: leader.executedLog() },
      { node: 1, log: lagging.executedLog() },
    ];
    expect(lagging.executedLog()[50]).toBeUndefined();
    expect(checkSafety(logs, { totalOrder: true })).toEqual([]);

    const forged: ExecutedOp = { ...(leader.executedLog()[110] as ExecutedOp), requestId: 999 };
    const tampered = [...lagging.executedLog()];
    tampered[110] = forged;
    expect(checkTotalOrder([logs[0]!, { node: 1, log: tampered }])).toEqual([
      expect.objectContaining({ kind: 'total-order', node: 1, position: 110 }),
    ]);
  });
});
