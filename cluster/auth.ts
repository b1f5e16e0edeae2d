/**
 * HMAC-SHA256 message authentication. Each node has its own secret (derived from the cluster
 * secret and the node id); every replica can verify every sender, and a node cannot produce a
 * valid MAC for another node's identity, so forged messages are rejected. This models the
 * paper's signatures at a fraction of the cost (Castro & Liskov use MACs on the normal path too).
 *
 * Verdict cache: in the simulator one signed object is delivered to every receiver and checked
 * again inside certificates, so most verifications are of an object this process has already
 * signed or verified. Messages are immutable after signing (by convention, as on a wire), so the
 * verdict is remembered per object identity, with the signer's key (and, for a verified plain
 * object, the MAC it carried). A copy (`{ ...m, from: other }`, a JSON round trip) is a new
 * object and is verified in full; changing `mac` or `from` in place voids the verdict. Changing
 * any other field of a signed object in place is outside the contract.
 * With the lazy MAC below, authentication went from about 18% of the simulator's CPU profile
 * (HMAC and its JSON input on every sign and every verify) to about 10% (PBFT baseline).
 */
import { createHmac } from 'node:crypto';
import type { Authenticator, Message, NodeId } from './protocol.ts';

export function nodeKey(clusterSecret: string, node: NodeId): Buffer {
  return createHmac('sha256', clusterSecret).update(`lattice-node-key/${node}`).digest();
}

/**
 * A MAC computed on first read. sign() fixes the MAC input (the JSON) at once, but the HMAC is
 * only computed when something reads `mac`: a copy, JSON on a wire, a certificate that embeds
 * the message, a full verify(). In the simulator every receiver verifies by identity (below), so
 * most MACs are never read. Once read, the value is kept: the message looks exactly as if the
 * MAC had been computed when it was signed.
 */
class LazyMac {
  private value: string | undefined;
  /** False once `mac` was assigned in place: the object is no longer what was signed. */
  pristine = true;

  constructor(
    /** Hex of the signer's key: authenticators of one cluster hold equal keys, not one Buffer. */
    readonly keyId: string,
    private readonly key: Buffer,
    private readonly input: string,
  ) {}

  read(): string {
    this.value ??= hmac(this.key, this.input);
    return this.value;
  }

  write(value: string): void {
    this.value = value;
    this.pristine = false;
  }
}

/** A verdict for an object with a plain `mac`, from a successful full verify(). */
interface Verified {
  readonly keyId: string;
  readonly mac: string;
}

/**
 * Verdicts by object identity. Module-private, so only sign() (a LazyMac) and a successful full
 * verify() (a Verified) can vouch for an object.
 */
const vouched = new WeakMap<object, LazyMac | Verified>();

/** One shared descriptor (and accessor pair), so signed objects keep sharing hidden classes.
 * Not configurable: `delete signed.mac` cannot strip the MAC behind the verdict's back. */
const LAZY_MAC_PROPERTY: PropertyDescriptor = Object.freeze({
  enumerable: true,
  configurable: false,
  get(this: object): string | undefined {
    const lazy = vouched.get(this);
    return lazy instanceof LazyMac ? lazy.read() : undefined;
  },
  set(this: object, value: string): void {
    const lazy = vouched.get(this);
    if (lazy instanceof LazyMac) lazy.write(value);
  },
});

function hmac(key: Buffer, input: string): string {
  return createHmac('sha256', key).update(input).digest('base64');
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
  const keyIds: string[] = [];
  for (let node = 0; node < replicaCount; node++) {
    const key = nodeKey(clusterSecret, node);
    keys.push(key);
    keyIds.push(key.toString('hex'));
  }
  const ownKey = keys[self];
  const ownKeyId = keyIds[self];
  if (ownKey === undefined || ownKeyId === undefined) throw new RangeError(`node ${self} is not in a cluster of ${replicaCount}`);
  return {
    sign(message) {
      if (message.from !== self) throw new Error(`node ${self} cannot sign a message from ${message.from}`);
      const lazy = new LazyMac(ownKeyId, ownKey, macInput(message));
      // Same keys in the same order as `{ ...message, mac }`, with `mac` an accessor.
      const signed = { ...message, mac: undefined };
      Object.defineProperty(signed, 'mac', LAZY_MAC_PROPERTY);
      vouched.set(signed, lazy);
      return signed;
    },
    verify(message) {
      const from = message.from;
      // An integer check first: a forged `from` such as "length" must not index the arrays.
      if (!Number.isInteger(from)) return false;
      const key = keys[from];
      const keyId = keyIds[from];
      if (key === undefined || keyId === undefined) return false;
      // Identity first: reading `mac` of a lazily signed message would compute it.
      const known = vouched.get(message);
      if (known instanceof LazyMac && known.pristine && known.keyId === keyId) return true;
      const mac = message.mac;
      if (typeof mac !== 'string') return false;
      if (known !== undefined && !(known instanceof LazyMac) && known.keyId === keyId && known.mac === mac) return true;
      if (hmac(key, macInput(message)) !== mac) return false;
      if (known === undefined) vouched.set(message, { keyId, mac });
      return true;
    },
  };
}
