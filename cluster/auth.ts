/**
 * HMAC-SHA256 message authentication. Each node has its own secret (derived from the cluster
 * secret and the node id); every replica can verify every sender, and a node cannot produce a
 * valid MAC for another node's identity, so forged messages are rejected. This models the
 * paper's signatures at a fraction of the cost (Castro & Liskov use MACs on the normal path too).
 */
import { createHmac } from 'node:crypto';
import type { Authenticator, Message, NodeId } from './protocol.ts';

export function nodeKey(clusterSecret: string, node: NodeId): Buffer {
  return createHmac('sha256', clusterSecret).update(`lattice-node-key/${node}`).digest();
}

/** The MAC input: the message without its `mac` field, as JSON in insertion order. */
function macInput(message: Message): string {
  const { mac: _ignored, ...rest } = message;
  return JSON.stringify(rest);
}

export function createAuthenticator(clusterSecret: string, self: NodeId, replicaCount: number): Authenticator {
  const keys: Buffer[] = [];
  for (let node = 0; node < replicaCount; node++) keys.push(nodeKey(clusterSecret, node));
  const macOf = (key: Buffer, message: Message): string => createHmac('sha256', key).update(macInput(message)).digest('base64');
  const ownKey = keys[self];
  if (ownKey === undefined) throw new RangeError(`node ${self} is not in a cluster of ${replicaCount}`);
  return {
    sign(message) {
      if (message.from !== self) throw new Error(`node ${self} cannot sign a message from ${message.from}`);
      return { ...message, mac: macOf(ownKey, message) };
    },
    verify(message) {
      const key = keys[message.from];
      if (key === undefined || typeof message.mac !== 'string') return false;
      return macOf(key, message) === message.mac;
    },
  };
}
