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

export function blake3Hex(input: Uint8Array | string): string {
  return ready().init().update(input).digest('hex');
}

/** Lowercase hex of bytes, for callers that hold a binary digest. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
