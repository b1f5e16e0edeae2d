/**
 * HMAC-SHA256 message authentication. Each node has its own secret (derived from the cluster
 * secret and the node id); every replica can verify every sender, and a node cannot produce a
 * valid MAC for another node's identity, so forged messages are rejected. This models the
 * paper's signatures at a fraction of the cost (Castro & Liskov use MACs on the normal path too).
 *
 * Verdict cache: in the simulator one signed object is delivered to every receiver and checked
 * again inside certificates, so most verifications are of an object this process has already
 * signed or verified. Messages are immutable after signing (by convention, as on a wire), so the
 * verdict is remembered per object identity, per signer key, with the MAC it carried. A copy
 * (`{ ...m, from: other }`, a JSON round trip) is a new object and is verified in full; changing
 * `mac` or `from` in place no longer matches the remembered verdict. Changing any other field of
 * a signed object in place is outside the contract (it would be accepted, as it was signed).
 */
import { createHmac } from 'node:crypto';
import type { Authenticator, Message, NodeId } from './protocol.ts';

export function nodeKey(clusterSecret: string, node: NodeId): Buffer {
  return createHmac('sha256', clusterSecret).update(`lattice-node-key/${node}`).digest();
}

/**
 * Per signing key (by its hex, so the authenticators of one cluster share it): objects that key
 * vouched for, with the MAC they carried then. Module-private, so only sign() and a successful
 * full verify() can add to it. Bounded: forgetting only costs a full verification later.
 */
const vouched = new Map<string, WeakMap<object, string>>();
const VOUCHED_KEYS_MAX = 4096;

function vouchedBy(keyId: string): WeakMap<object, string> {
  let objects = vouched.get(keyId);
  if (objects === undefined) {
    if (vouched.size >= VOUCHED_KEYS_MAX) vouched.clear();
    objects = new WeakMap();
    vouched.set(keyId, objects);
  }
  return objects;
}

/** The MAC input: the message without its `mac` field, as JSON in insertion order. */
function macInput(message: Message): string {
  // JSON omits undefined values, so an absent or undefined mac needs no copy without it.
  if (message.mac === undefined) return JSON.stringify(message);
  const { mac: _ignored, ...rest } = message;
  return JSON.stringify(rest);
}

export function createAuthenticator(clusterSecret: string, self: NodeId, replicaCount: number): Authenticator {
  const keys: Buffer[] = [];
  const vouchedFor: Array<WeakMap<object, string>> = [];
  for (let node = 0; node < replicaCount; node++) {
    const key = nodeKey(clusterSecret, node);
    keys.push(key);
    vouchedFor.push(vouchedBy(key.toString('hex')));
  }
  const macOf = (key: Buffer, message: Message): string => createHmac('sha256', key).update(macInput(message)).digest('base64');
  const ownKey = keys[self];
  const ownVouched = vouchedFor[self];
  if (ownKey === undefined || ownVouched === undefined) throw new RangeError(`node ${self} is not in a cluster of ${replicaCount}`);
  return {
    sign(message) {
      if (message.from !== self) throw new Error(`node ${self} cannot sign a message from ${message.from}`);
      const mac = macOf(ownKey, message);
      const signed = { ...message, mac };
      ownVouched.set(signed, mac);
      return signed;
    },
    verify(message) {
      const from = message.from;
      const mac = message.mac;
      // An integer check first: a forged `from` such as "length" must not index the arrays.
      if (!Number.isInteger(from) || typeof mac !== 'string') return false;
      const key = keys[from];
      const senderVouched = vouchedFor[from];
      if (key === undefined || senderVouched === undefined) return false;
      if (senderVouched.get(message) === mac) return true;
      if (macOf(key, message) !== mac) return false;
      senderVouched.set(message, mac);
      return true;
    },
  };
}
