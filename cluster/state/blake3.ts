/**
 * BLAKE3-256 through hash-wasm. Creating the wasm instance is async, so `initBlake3()` is awaited
 * once at start-up; after that every call is synchronous and reuses the same instance (creating
 * one per call would cost far more than the hash itself). Node is single-threaded and no call
 * here yields, so the shared instance cannot be interleaved.
 */
import { createBLAKE3, type IHasher } from 'hash-wasm';
import { LatticeError } from '../../core/errors.ts';

let hasher: IHasher | null = null;
let pending: Promise<void> | null = null;

/** Idempotent; concurrent callers share one initialisation. */
export function initBlake3(): Promise<void> {
  if (hasher !== null) return Promise.resolve();
  pending ??= createBLAKE3(256).then((created) => {
    hasher = created;
  });
  return pending;
}

export function isBlake3Ready(): boolean {
  return hasher !== null;
}

function ready(): IHasher {
  if (hasher === null) {
    throw new LatticeError('CONFIG_INVALID', 'BLAKE3 used before initBlake3() was awaited');
  }
  return hasher;
}

/** Input is hashed as given; strings as UTF-8. */
export function blake3Bytes(input: Uint8Array | string): Uint8Array {
  return ready().init().update(input).digest('binary');
}

/**
 * Remembers the last short binary input and its hex digest. The runtime state machine and its
 * shadow hash the same 53-byte digest input on every transition whenever they agree; since
 * BLAKE3 is a pure function, answering the second call from the first one's result changes
 * nothing but the cost (a byte compare instead of a hash).
 */
const MEMO_MAX_BYTES = 128;
const memoInput = new Uint8Array(MEMO_MAX_BYTES);
let memoLength = -1;
let memoHex = '';

export function blake3Hex(input: Uint8Array | string): string {
  if (typeof input === 'string') return toHex(blake3Bytes(input));
  const length = input.length;
  if (length > MEMO_MAX_BYTES) return toHex(blake3Bytes(input));
  if (length === memoLength) {
    let same = true;
    for (let i = 0; i < length; i++) {
      if (input[i] !== memoInput[i]) {
        same = false;
        break;
      }
    }
    if (same) return memoHex;
  }
  const hex = toHex(blake3Bytes(input));
  memoInput.set(input);
  memoLength = length;
  memoHex = hex;
  return hex;
}

const hexScratch = Buffer.alloc(32);

/** Lowercase hex of bytes. Digests go through a reused buffer: wrapping each one in a new Buffer
 * cost more than the hash on the per-transition path. */
export function toHex(bytes: Uint8Array): string {
  if (bytes.length !== hexScratch.length) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  hexScratch.set(bytes);
  return hexScratch.toString('hex');
}
