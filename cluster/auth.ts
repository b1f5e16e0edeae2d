/**
 * HMAC-SHA256 message authentication. Each node has its own secret (derived from the cluster
 * secret and the node id); every replica can verify every sender, and a node cannot produce a
 * valid MAC for another node's identity, so forged messages are rejected. This models the
 * paper's signatures at a fraction of the cost (Castro & Liskov use MACs on the normal path too).
 *
 * Verdict cache: in the simulator one signed object is delivered to every receiver and checked
 * again inside certificates, so most verifications are of an object this process has already
 * signed or verified. Messages are immutable after signing (by convention, as on a wire), so the
 * verdict is remembered per object identity, together with the signer's key and the MAC it
 * carried. A copy (`{ ...m, from: other }`, a JSON round trip) is a new object and is verified in
 * full; changing `mac` or `from` in place no longer matches the remembered verdict.
 */
import { createHmac } from 'node:crypto';
import type { Authenticator, Message, NodeId } from './protocol.ts';

export function nodeKey(clusterSecret: string, node: NodeId): Buffer {
  return createHmac('sha256', clusterSecret).update(`lattice-node-key/${node}`).digest();
}

/** Which key vouched for an object, and the MAC it carried then. */
interface Verdict {
  /** Hex of the signer's key: authenticators of one cluster hold equal keys, not the same Buffer. */
  readonly keyId: string;
  readonly mac: string;
}

/** Module-private: only sign() and a successful full verify() can vouch for an object. */
const authentic = new WeakMap<object, Verdict>();

/** The MAC input: the message without its `mac` field, as JSON in insertion order. */
function macInput(message: Message): string {
  // JSON omits undefined values, so an absent or undefined mac needs no copy without it.
  if (message.mac === undefined) return JSON.stringify(message);
  const { mac: _ignored, ...rest } = message;
  return JSON.stringify(rest);
}

export function createAuthenticator(clusterSecret: string, self: NodeId, replicaCount: number): Authenticator {
  const keys: Buffer[] = [];
  const keyIds: string[] = [];
  for (let node = 0; node < replicaCount; node++) {
    const key = nodeKey(clusterSecret, node);
    keys.push(key);
    keyIds.push(key.toString('hex'));
  }
  const macOf = (key: Buffer, message: Message): string => createHmac('sha256', key).update(macInput(message)).digest('base64');
  const ownKey = keys[self];
  const ownKeyId = keyIds[self];
  if (ownKey === undefined || ownKeyId === undefined) throw new RangeError(`node ${self} is not in a cluster of ${replicaCount}`);
  return {
    sign(message) {
      if (message.from !== self) throw new Error(`node ${self} cannot sign a message from ${message.from}`);
      const mac = macOf(ownKey, message);
      const signed = { ...message, mac };
      authentic.set(signed, { keyId: ownKeyId, mac });
      return signed;
    },
    verify(message) {
      const key = keys[message.from];
      const keyId = keyIds[message.from];
      const mac = message.mac;
      if (key === undefined || keyId === undefined || typeof mac !== 'string') return false;
      const known = authentic.get(message);
      if (known !== undefined && known.keyId === keyId && known.mac === mac) return true;
      if (macOf(key, message) !== mac) return false;
      authentic.set(message, { keyId, mac });
      return true;
    },
  };
}
