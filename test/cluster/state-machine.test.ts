import { beforeAll, describe, expect, it } from 'vitest';
import { blake3Bytes, blake3Hex, initBlake3 } from '../../cluster/state/blake3.ts';
import { KvStateMachine } from '../../cluster/state/kv-state-machine.ts';
import { ShadowModel } from '../../cluster/state/shadow-model.ts';
import { VerifiedStateMachine } from '../../cluster/state/verified-state-machine.ts';
import type { Operation } from '../../cluster/protocol.ts';
import { createRng, type Rng } from '../../core/rng.ts';

beforeAll(async () => {
  await initBlake3();
});

// Includes non-ASCII, a lone surrogate (encoded as U+FFFD by every UTF-8 path) and names that
// would collide with object internals in a careless store.
const KEYS = ['a', 'b', 'c', 'ключ', '😀', '', 'long-key-'.repeat(20), '__proto__', '1', 'constructor', 'x\ud800y'];

function randomOp(rng: Rng): Operation {
  const key = KEYS[rng.int(KEYS.length)] ?? 'a';
  const value = `v${rng.int(20)}${rng.int(4) === 0 ? 'ü😀' : ''}`;
  const roll = rng.int(10);
  if (roll < 3) return { kind: 'read', key };
  if (roll < 7) return { kind: 'write', key, value };
  return { kind: 'cas', key, expected: rng.int(3) === 0 ? null : `v${rng.int(20)}`, value };
}

/** A third, deliberately naive computation of the documented digest scheme (BigInt, from scratch). */
function referenceDigest(entries: ReadonlyArray<readonly [string, string]>): string {
  const modulus = 1n << 256n;
  let sum = 0n;
  for (const [key, value] of entries) {
    const k = Buffer.from(key, 'utf8');
    const v = Buffer.from(value, 'utf8');
    const lengthK = Buffer.alloc(4);
    lengthK.writeUInt32LE(k.length);
    const lengthV = Buffer.alloc(4);
    lengthV.writeUInt32LE(v.length);
    const h = blake3Bytes(Buffer.concat([lengthK, k, lengthV, v]));
    sum = (sum + BigInt(`0x${Buffer.from(h).reverse().toString('hex')}`)) % modulus;
  }
  const acc = Buffer.from(sum.toString(16).padStart(64, '0'), 'hex').reverse();
  const count = Buffer.alloc(8);
  count.writeBigUInt64LE(BigInt(entries.length));
  return blake3Hex(Buffer.concat([Buffer.from('lattice-kv-v1'), acc, count]));
}

describe('KvStateMachine semantics', () => {
  it('reads, writes and compares-and-sets', () => {
    const sm = new KvStateMachine();
    expect(sm.execute({ kind: 'read', key: 'x' })).toEqual({ value: null, applied: true });
    expect(sm.execute({ kind: 'cas', key: 'x', expected: 'a', value: 'b' })).toEqual({ value: null, applied: false });
    expect(sm.execute({ kind: 'cas', key: 'x', expected: null, value: 'a' })).toEqual({ value: null, applied: true });
    expect(sm.execute({ kind: 'write', key: 'x', value: 'c' })).toEqual({ value: 'c', applied: true });
    expect(sm.execute({ kind: 'cas', key: 'x', expected: 'c', value: 'd' })).toEqual({ value: 'c', applied: true });
    expect(sm.execute({ kind: 'read', key: 'x' })).toEqual({ value: 'd', applied: true });
    expect(sm.size).toBe(1);
  });

  it('digests exactly the documented scheme', () => {
    const sm = new KvStateMachine();
    expect(sm.digest()).toBe(referenceDigest([]));
    const rng = createRng('reference');
    for (let i = 0; i < 300; i++) sm.execute(randomOp(rng));
    expect(sm.digest()).toBe(referenceDigest(sm.snapshot().entries));
  });

  it('keeps ("ab","c") and ("a","bc") apart', () => {
    const one = new KvStateMachine();
    one.execute({ kind: 'write', key: 'ab', value: 'c' });
    const two = new KvStateMachine();
    two.execute({ kind: 'write', key: 'a', value: 'bc' });
    expect(one.digest()).not.toBe(two.digest());
  });
});

describe('runtime vs shadow', () => {
  it('agree on every result and every digest over 10k random operations', () => {
    const rng = createRng(20240611);
    const runtime = new KvStateMachine();
    const shadow = new ShadowModel();
    let digestChecks = 0;
    for (let i = 0; i < 10_000; i++) {
      const op = randomOp(rng);
      expect(shadow.apply(op)).toEqual(runtime.execute(op));
      if (i % 7 === 0 || i > 9_900) {
        expect(shadow.digest()).toBe(runtime.digest());
        digestChecks++;
      }
    }
    expect(digestChecks).toBeGreaterThan(1000);
    expect(shadow.size).toBe(runtime.size);
    expect(shadow.digest()).toBe(referenceDigest(runtime.snapshot().entries));
  });

  it('handle large keys and values (scratch buffers grow)', () => {
    const runtime = new KvStateMachine();
    const shadow = new ShadowModel();
    const op: Operation = { kind: 'write', key: 'k'.repeat(5000), value: '€'.repeat(20_000) };
    runtime.execute(op);
    shadow.apply(op);
    expect(shadow.digest()).toBe(runtime.digest());
  });

  it('digest does not depend on insertion order', () => {
    const entries = Array.from({ length: 200 }, (_, i) => [`key-${i}`, `value-${i * 7}`] as const);
    const forward = new KvStateMachine();
    for (const [key, value] of entries) forward.execute({ kind: 'write', key, value });
    const backward = new KvStateMachine();
    for (const [key, value] of [...entries].reverse()) backward.execute({ kind: 'write', key, value });
    const rng = createRng(7);
    const shuffled = [...entries];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j] as (typeof entries)[number], shuffled[i] as (typeof entries)[number]];
    }
    const shadow = new ShadowModel();
    // with detours: overwrite then restore values
    for (const [key, value] of shuffled) {
      shadow.apply({ kind: 'write', key, value: 'detour' });
      shadow.apply({ kind: 'write', key, value });
    }
    expect(backward.digest()).toBe(forward.digest());
    expect(shadow.digest()).toBe(forward.digest());
    expect(new ShadowModel(entries).digest()).toBe(forward.digest());
  });

  it('a different state has a different digest', () => {
    const one = new KvStateMachine();
    const two = new KvStateMachine();
    one.execute({ kind: 'write', key: 'k', value: '1' });
    two.execute({ kind: 'write', key: 'k', value: '2' });
    expect(one.digest()).not.toBe(two.digest());
    two.execute({ kind: 'write', key: 'k', value: '1' });
    expect(one.digest()).toBe(two.digest());
  });
});

describe('VerifiedStateMachine', () => {
  it('matches while only execute touches the state and logs what it executed', () => {
    const sm = new VerifiedStateMachine();
    const rng = createRng('verified');
    for (let i = 0; i < 500; i++) {
      sm.executeRequest({ clientId: i % 5, requestId: i, op: randomOp(rng) });
      expect(sm.check().match).toBe(true);
    }
    sm.execute({ kind: 'write', key: 'anon', value: 'x' });
    const log = sm.executedLog();
    expect(log).toHaveLength(501);
    expect(log[3]).toMatchObject({ position: 3, clientId: 3, requestId: 3 });
    expect(log[500]).toMatchObject({ position: 500, clientId: -1, key: 'anon', result: { value: 'x', applied: true } });
    const check = sm.check();
    expect(check.runtime).toBe(check.shadow);
    expect(check.runtime).toBe(sm.digest());
  });

  it('corrupt() produces a mismatch on the very next check', () => {
    for (const seed of [1, 2, 3]) {
      const sm = new VerifiedStateMachine();
      const rng = createRng(seed);
      for (let i = 0; i < 50; i++) sm.execute(randomOp(rng));
      expect(sm.check().match).toBe(true);
      const corruption = sm.corrupt(createRng(`chaos-${seed}`));
      expect(corruption.after).not.toBe(corruption.before);
      expect(sm.runtime.get(corruption.key)).toBe(corruption.after);
      const check = sm.check();
      expect(check.match).toBe(false);
      expect(check.runtime).not.toBe(check.shadow);
      // the runtime's digest is honest about its corrupt contents
      expect(check.runtime).toBe(new ShadowModel(sm.runtime.snapshot().entries).digest());
    }
  });

  it('corrupt() on an empty store plants a bogus key', () => {
    const sm = new VerifiedStateMachine();
    const corruption = sm.corrupt(createRng(9));
    expect(corruption.before).toBeNull();
    expect(sm.runtime.size).toBe(1);
    expect(sm.check().match).toBe(false);
  });

  it('notices a result divergence even when digests agree again', () => {
    const sm = new VerifiedStateMachine();
    sm.execute({ kind: 'write', key: 'k', value: 'v' });
    const corruption = sm.corrupt(createRng(1));
    expect(sm.execute({ kind: 'read', key: 'k' }).value).toBe(corruption.after);
    sm.execute({ kind: 'write', key: 'k', value: 'v' }); // contents equal again
    const check = sm.check();
    expect(check.runtime).toBe(check.shadow);
    expect(check.match).toBe(false);
    expect(check.resultMismatchAt).toBe(1);
  });

  it('snapshot/restore round-trips state, digest and log positions', () => {
    const source = new VerifiedStateMachine();
    const rng = createRng('snap');
    for (let i = 0; i < 300; i++) source.execute(randomOp(rng), { clientId: 1, requestId: i });
    const snapshot = structuredClone(source.snapshot());
    expect(snapshot.executedCount).toBe(300);

    const lagging = new VerifiedStateMachine();
    lagging.execute({ kind: 'write', key: 'stale', value: 'x' });
    lagging.restore(snapshot);
    expect(lagging.check()).toEqual(source.check());
    expect(lagging.runtime.snapshot()).toEqual(source.runtime.snapshot());
    expect(lagging.executedLog()).toHaveLength(300);
    // what it really executed stays (a correct replica never executes something it must undo);
    // what it skipped through the state transfer is a hole
    expect(lagging.executedLog()[0]).toMatchObject({ key: 'stale' });
    expect(lagging.executedLog()[1]).toBeUndefined();

    const next: Operation = { kind: 'write', key: 'after', value: 'restore' };
    source.execute(next, { clientId: 2, requestId: 1 });
    lagging.execute(next, { clientId: 2, requestId: 1 });
    expect(lagging.digest()).toBe(source.digest());
    expect(lagging.executedLog()[300]).toEqual(source.executedLog()[300]);

    // a corrupted replica is healed by a restore
    lagging.corrupt(createRng(4));
    expect(lagging.check().match).toBe(false);
    lagging.restore(source.snapshot());
    expect(lagging.check().match).toBe(true);

    // plain StateSnapshot (no executedCount) works for the bare runtime too
    const bare = new KvStateMachine({ entries: source.runtime.snapshot().entries });
    expect(bare.digest()).toBe(source.digest());
  });
});
