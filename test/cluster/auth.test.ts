import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { clientKey, createAuthenticator, createRequestSigner, nodeKey } from '../../cluster/auth.ts';
import type { ClientRequest, Message } from '../../cluster/protocol.ts';

const SECRET = 'auth-test';
const vote = (from: number, seq = 7): Message => ({ type: 'PREPARE', from, view: 0, seq, digest: 'ab'.repeat(32) });

describe('createAuthenticator', () => {
  const auths = [0, 1, 2, 3].map((id) => createAuthenticator(SECRET, id, 4));
  const [a0, a1, a2] = [auths[0]!, auths[1]!, auths[2]!];

  it('signs with HMAC-SHA256 (base64) over the JSON without mac, so peers in other processes agree', () => {
    const unsigned = vote(0);
    const signed = a0.sign(unsigned);
    const expected = createHmac('sha256', nodeKey(SECRET, 0)).update(JSON.stringify(unsigned)).digest('base64');
    expect(signed.mac).toBe(expected);
    expect(unsigned.mac).toBeUndefined();
    expect(JSON.parse(JSON.stringify(signed))).toEqual({ ...unsigned, mac: expected });
  });

  it('accepts the signed object and its JSON round trip at every replica', () => {
    const signed = a0.sign(vote(0));
    for (const auth of auths) {
      expect(auth.verify(signed)).toBe(true);
      expect(auth.verify(JSON.parse(JSON.stringify(signed)) as Message)).toBe(true);
    }
  });

  it('rejects a copy that claims another sender but keeps the MAC (forged_vote wiring)', () => {
    const signed = a0.sign(vote(0));
    expect(a1.verify(signed)).toBe(true);
    expect(a1.verify({ ...signed, from: 2 })).toBe(false);
    expect(a2.verify({ ...signed, from: 1 })).toBe(false);
  });

  it('rejects a copy with any other field changed, even after the original was verified', () => {
    const signed = a0.sign(vote(0));
    expect(a1.verify(signed)).toBe(true);
    expect(a1.verify({ ...signed, seq: 8 })).toBe(false);
    expect(a1.verify({ ...signed, digest: 'cd'.repeat(32) })).toBe(false);
    expect(a1.verify({ ...signed, mac: 'AAAA' })).toBe(false);
    const { mac: _mac, ...unsigned } = signed;
    expect(a1.verify(unsigned as Message)).toBe(false);
  });

  it('does not trust a remembered verdict once mac or from is changed in place', () => {
    const macChanged = a0.sign(vote(0)) as Message & { mac: string };
    expect(a1.verify(macChanged)).toBe(true);
    macChanged.mac = a0.sign(vote(0, 99)).mac!;
    expect(a1.verify(macChanged)).toBe(false);
    const fromChanged = a0.sign(vote(0)) as { from: number } & Message;
    expect(a1.verify(fromChanged)).toBe(true);
    (fromChanged as { from: number }).from = 1;
    expect(a1.verify(fromChanged)).toBe(false);
  });

  it('a node cannot sign for another node', () => {
    expect(() => a0.sign(vote(1))).toThrow(/cannot sign/);
  });

  it('rejects senders outside the cluster and malformed senders without throwing', () => {
    const signed = a0.sign(vote(0));
    for (const from of [4, -1, 1.5, 'length', '0', null]) {
      expect(a1.verify({ ...signed, from } as unknown as Message)).toBe(false);
    }
  });

  it('keeps clusters apart: a message signed under another cluster secret is rejected', () => {
    const other = createAuthenticator('another-secret', 0, 4);
    const foreign = other.sign(vote(0));
    expect(a1.verify(foreign)).toBe(false);
    expect(createAuthenticator('another-secret', 1, 4).verify(foreign)).toBe(true);
    // The verdict remembered for one cluster does not carry over to the other.
    const ours = a0.sign(vote(0));
    expect(createAuthenticator('another-secret', 1, 4).verify(ours)).toBe(false);
  });

  it('verifies a message a new authenticator of the same cluster never saw signed', () => {
    const signed = a0.sign(vote(0));
    const fresh = createAuthenticator(SECRET, 3, 4);
    expect(fresh.verify(signed)).toBe(true);
    expect(fresh.verify({ ...signed })).toBe(true);
  });

  it('fixes the MAC when signing, computed lazily or not: later changes to the unsigned input do not move it', () => {
    const unsigned = { ...vote(0) } as { seq: number } & Message;
    const signed = a0.sign(unsigned);
    unsigned.seq = 99;
    const expected = createHmac('sha256', nodeKey(SECRET, 0)).update(JSON.stringify(vote(0))).digest('base64');
    expect(signed.mac).toBe(expected);
    expect(a1.verify(signed)).toBe(true);
    expect(a1.verify(JSON.parse(JSON.stringify(signed)) as Message)).toBe(true);
  });

  it('copies of a signed message carry the MAC as a plain field; it cannot be deleted from the original', () => {
    const signed = a0.sign(vote(0));
    const copy = { ...signed };
    expect(Object.getOwnPropertyDescriptor(copy, 'mac')?.value).toBe(signed.mac);
    expect(Object.keys(signed)).toEqual([...Object.keys(vote(0)), 'mac']);
    expect(() => delete (signed as { mac?: string }).mac).toThrow(TypeError);
    expect(a1.verify(signed)).toBe(true);
  });

  it('re-signing a signed message (its mac stripped or replaced) gives a fresh, valid MAC', () => {
    const first = a0.sign(vote(0, 1));
    const { mac: _mac, ...unsigned } = first;
    const second = a0.sign({ ...unsigned, seq: 2 } as Message);
    const third = a0.sign({ ...first, seq: 3, mac: undefined } as Message);
    for (const m of [second, third]) {
      expect(a2.verify(m)).toBe(true);
      expect(a2.verify(JSON.parse(JSON.stringify(m)) as Message)).toBe(true);
    }
    expect(second.mac).not.toBe(first.mac);
  });
});

describe('client request signatures', () => {
  const replicas = [0, 1, 2, 3].map((id) => createAuthenticator(SECRET, id, 4));
  const request = (clientId: number, requestId = 1): ClientRequest => ({ clientId, requestId, op: { kind: 'write', key: 'k', value: 'v' } });

  it('signs with HMAC-SHA256 under the client key; every replica verifies the object and its JSON', () => {
    const signed = createRequestSigner(SECRET, 7).sign(request(7));
    const expected = createHmac('sha256', clientKey(SECRET, 7)).update(JSON.stringify(request(7))).digest('base64');
    expect(signed.mac).toBe(expected);
    for (const auth of replicas) {
      expect(auth.verifyRequest(signed)).toBe(true);
      expect(auth.verifyRequest(JSON.parse(JSON.stringify(signed)) as ClientRequest)).toBe(true);
    }
  });

  it('rejects unsigned requests, other clients\' MACs, altered fields and other clusters', () => {
    const signed = createRequestSigner(SECRET, 7).sign(request(7));
    const [r0] = replicas;
    expect(r0!.verifyRequest(request(7))).toBe(false);
    expect(r0!.verifyRequest({ ...signed, clientId: 8 })).toBe(false);
    expect(r0!.verifyRequest({ ...signed, requestId: 2 })).toBe(false);
    expect(r0!.verifyRequest({ ...signed, op: { kind: 'read', key: 'k' } })).toBe(false);
    expect(r0!.verifyRequest(createRequestSigner('another-secret', 7).sign(request(7)))).toBe(false);
    for (const clientId of [-1, 1.5, Number.NaN, '7' as unknown as number]) {
      expect(r0!.verifyRequest({ ...signed, clientId })).toBe(false);
    }
  });

  it('a client signs only its own requests; replicas hold no client signer', () => {
    expect(() => createRequestSigner(SECRET, 7).sign(request(8))).toThrow(/cannot sign/);
    expect(Object.keys(replicas[0]!)).toEqual(['sign', 'verify', 'verifyRequest']);
    // A replica's message signer refuses what is not a message from itself.
    expect(() => replicas[0]!.sign({ ...request(7), type: 'REQUEST', from: 7 } as unknown as Message)).toThrow(/cannot sign/);
  });
});

