/**
 * Who is on the other end of a connection, proved by its first frame (`hello`) before the node
 * allocates anything for it. Every hello carries a tag under the key of the identity it claims:
 *
 *   tag = first 16 bytes of HMAC-SHA256(key, "lattice-hello/1|role|identity|to|ts|nonce"), base64url
 *
 * `to` is the receiving node (a hello sent to node 1 is refused by node 2), `ts` the sender's
 * clock in ms (refused when further than helloFreshnessMs from the receiver's), `nonce` random
 * (refused if seen before within that window), so a recorded hello can be replayed neither to
 * another node nor later to the same one. A peer signs with its node key, each claimed client id
 * with that client's key (one tag per id: holding one client's key proves nothing about
 * another's), an admin with the admin key. The input is not JSON, so a hello tag can never be
 * mistaken for a message MAC under the same node key. 128-bit tags are what RFC 2104 allows for
 * truncation, and keep a hello of 256 client ids under 11 KB.
 *
 * The keys come from one place (`HelloKeys`), derived from the cluster secret today; when nodes
 * get key files of their own, only `helloKeysFromSecret` has to change.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { systemClock } from '../../core/clock.ts';
import { invariant } from '../../core/errors.ts';
import { adminKey, clientKey, nodeKey } from '../auth.ts';
import type { NodeId } from '../protocol.ts';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './limits.ts';
import type { AdminHello, ClientHello, HelloRejectReason, PeerHello } from './wire.ts';

export interface HelloKeys {
  peer(node: NodeId): Buffer;
  client(clientId: number): Buffer;
  admin(): Buffer;
}

export function helloKeysFromSecret(clusterSecret: string): HelloKeys {
  return {
    peer: (node) => nodeKey(clusterSecret, node),
    client: (clientId) => clientKey(clusterSecret, clientId),
    admin: () => adminKey(clusterSecret),
  };
}

const DOMAIN = 'lattice-hello/1';
const TAG_BYTES = 16;
const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

function tagOf(key: Buffer, role: string, identity: string | number, to: NodeId, ts: number, nonce: string): string {
  return createHmac('sha256', key).update(`${DOMAIN}|${role}|${identity}|${to}|${ts}|${nonce}`).digest().subarray(0, TAG_BYTES).toString('base64url');
}

function tagMatches(expected: string, given: unknown): boolean {
  if (typeof given !== 'string' || given.length !== expected.length) return false;
  // Compared as bytes: a string of the right length may still be longer in UTF-8, and
  // timingSafeEqual throws on unequal lengths (inside a socket handler, that would stop the node).
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

const nowMs = (): number => Math.round(systemClock.nowUs() / 1000);
const newNonce = (): string => randomBytes(16).toString('base64url');

// Builders: what a peer link, a client and the status client send first. A fresh timestamp and
// nonce each time, so call them per connection, never once per process.

export function peerHello(keys: HelloKeys, from: NodeId, to: NodeId): PeerHello {
  const ts = nowMs();
  const nonce = newNonce();
  return { t: 'hello', role: 'peer', node: from, to, ts, nonce, mac: tagOf(keys.peer(from), 'peer', from, to, ts, nonce) };
}

/** One hello per `perHelloMax` ids (the receiver refuses more in one). */
export function clientHellos(keys: HelloKeys, clientIds: readonly number[], to: NodeId, perHelloMax = DEFAULT_CONNECTION_LIMITS.helloClientsMax): ClientHello[] {
  invariant(clientIds.length > 0, 'a client hello needs at least one client id');
  const hellos: ClientHello[] = [];
  for (let start = 0; start < clientIds.length; start += perHelloMax) {
    const clients = clientIds.slice(start, start + perHelloMax);
    const ts = nowMs();
    const nonce = newNonce();
    const macs = clients.map((id) => tagOf(keys.client(id), 'client', id, to, ts, nonce));
    hellos.push({ t: 'hello', role: 'client', clients, macs, to, ts, nonce });
  }
  return hellos;
}

export function adminHello(keys: HelloKeys, to: NodeId): AdminHello {
  const ts = nowMs();
  const nonce = newNonce();
  return { t: 'hello', role: 'admin', to, ts, nonce, mac: tagOf(keys.admin(), 'admin', 'admin', to, ts, nonce) };
}

export type HelloIdentity = { readonly role: 'peer'; readonly node: NodeId } | { readonly role: 'client'; readonly clients: readonly number[] } | { readonly role: 'admin' };

export type HelloVerdict = { readonly ok: true; readonly identity: HelloIdentity } | { readonly ok: false; readonly reason: HelloRejectReason };

const reject = (reason: HelloRejectReason): HelloVerdict => ({ ok: false, reason });
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isClientId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Nonces of accepted hellos, each until its hello's timestamp leaves the freshness window (after
 * that the timestamp check refuses a replay anyway). Only hellos whose tags verified get in, so
 * a stranger cannot fill it; when it is full anyway, hellos are refused rather than admitted
 * unchecked.
 */
class ReplayGuard {
  /** nonce → the time (ms) after which its hello is stale. Insertion order ≈ expiry order. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly freshnessMs: number,
    private readonly noncesMax: number,
  ) {}

  admit(nonce: string, ts: number, now: number): 'ok' | 'replayed' | 'full' {
    this.evict(now, false);
    if (this.seen.has(nonce)) return 'replayed';
    if (this.seen.size >= this.noncesMax) {
      this.evict(now, true);
      if (this.seen.size >= this.noncesMax) return 'full';
    }
    this.seen.set(nonce, ts + this.freshnessMs);
    return 'ok';
  }

  /** Drops expired nonces: from the front until an unexpired one, or all of them (`sweep`). */
  private evict(now: number, sweep: boolean): void {
    for (const [nonce, expiresMs] of this.seen) {
      if (expiresMs < now) this.seen.delete(nonce);
      else if (!sweep) return;
    }
  }
}

/** Checks hellos arriving at node `self` of a cluster of `replicaCount`. */
export class HelloVerifier {
  private readonly replay: ReplayGuard;

  constructor(
    private readonly keys: HelloKeys,
    private readonly self: NodeId,
    private readonly replicaCount: number,
    private readonly limits: Pick<ConnectionLimits, 'helloClientsMax' | 'helloFreshnessMs' | 'helloNoncesMax'>,
  ) {
    this.replay = new ReplayGuard(limits.helloFreshnessMs, limits.helloNoncesMax);
  }

  /** Cheap checks first (shape, target, time, counts), tags after, the replay guard last. */
  verify(raw: unknown, now = nowMs()): HelloVerdict {
    if (!isObject(raw) || raw.t !== 'hello') return reject('not_hello');
    const { role, to, ts, nonce } = raw;
    if (role !== 'peer' && role !== 'client' && role !== 'admin') return reject('malformed');
    if (!Number.isInteger(to) || !Number.isSafeInteger(ts) || typeof nonce !== 'string' || !NONCE_PATTERN.test(nonce)) return reject('malformed');
    if (to !== this.self) return reject('wrong_node');
    if (Math.abs(now - (ts as number)) > this.limits.helloFreshnessMs) return reject('stale');
    const verdict = this.verifyIdentity(raw, role, ts as number, nonce);
    if (!verdict.ok) return verdict;
    const admitted = this.replay.admit(nonce, ts as number, now);
    if (admitted === 'replayed') return reject('replayed');
    if (admitted === 'full') return reject('replay_cache_full');
    return verdict;
  }

  private verifyIdentity(raw: Record<string, unknown>, role: 'peer' | 'client' | 'admin', ts: number, nonce: string): HelloVerdict {
    const to = this.self;
    switch (role) {
      case 'peer': {
        const node = raw.node;
        if (!Number.isInteger(node)) return reject('malformed');
        if ((node as number) < 0 || (node as number) >= this.replicaCount || node === this.self) return reject('unknown_identity');
        const expected = tagOf(this.keys.peer(node as number), 'peer', node as number, to, ts, nonce);
        return tagMatches(expected, raw.mac) ? { ok: true, identity: { role: 'peer', node: node as number } } : reject('bad_mac');
      }
      case 'client': {
        const { clients, macs } = raw;
        if (!Array.isArray(clients) || clients.length === 0) return reject('malformed');
        // Before anything is looked at per id: the count alone decides how much work this is.
        if (clients.length > this.limits.helloClientsMax) return reject('too_many_clients');
        if (!Array.isArray(macs) || macs.length !== clients.length || !clients.every(isClientId)) return reject('malformed');
        // In order, stopping at the first bad tag: a forger pays for one id, not for all.
        for (let i = 0; i < clients.length; i++) {
          const id = clients[i] as number;
          if (!tagMatches(tagOf(this.keys.client(id), 'client', id, to, ts, nonce), macs[i])) return reject('bad_mac');
        }
        return { ok: true, identity: { role: 'client', clients: clients as number[] } };
      }
      case 'admin': {
        const expected = tagOf(this.keys.admin(), 'admin', 'admin', to, ts, nonce);
        return tagMatches(expected, raw.mac) ? { ok: true, identity: { role: 'admin' } } : reject('bad_mac');
      }
    }
  }
}
