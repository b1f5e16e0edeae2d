/**
 * The runtime replicated state machine: a string key-value store with read, write and cas.
 *
 * Its digest is incremental (AdHash, Bellare & Micciancio 1997), so the cost of an execute does
 * not depend on how many keys the store holds:
 *
 *   h(k, v)     = BLAKE3( len(k) as u32 LE ‖ k ‖ len(v) as u32 LE ‖ v )   (lengths in UTF-8 bytes)
 *   accumulator = Σ h(k, v) over all entries, mod 2^256, each h read as a little-endian integer
 *   digest      = BLAKE3( "lattice-kv-v1" ‖ accumulator as 32 bytes LE ‖ entry count as u64 LE )
 *
 * A write subtracts the old entry's hash and adds the new one. The sum is order-independent, so
 * two replicas with equal contents have equal digests however they got there; the length
 * prefixes keep ("ab","c") and ("a","bc") apart, and the entry count keeps the empty store apart
 * from a store whose hashes happen to cancel. The limbs here are 8 × u32; the shadow model
 * (shadow-model.ts) computes the same value with its own code and limb width.
 */
import type { Operation, OperationResult, StateMachine, StateSnapshot } from '../protocol.ts';
import type { Rng } from '../../core/rng.ts';
import { blake3Bytes, blake3Hex } from './blake3.ts';

export const KV_DIGEST_DOMAIN = 'lattice-kv-v1';

const LIMBS = 8;
const ACC_OFFSET = KV_DIGEST_DOMAIN.length;
const COUNT_OFFSET = ACC_OFFSET + 4 * LIMBS;

interface Entry {
  value: string;
  /** h(key, value) as 8 little-endian u32 limbs, kept so a later write can subtract it. */
  readonly hash: Uint32Array;
}

/** What `corrupt` did, for the chaos engine's trace. */
export interface Corruption {
  readonly key: string;
  readonly before: string | null;
  readonly after: string;
}

const READ_APPLIED_NULL: OperationResult = Object.freeze({ value: null, applied: true });

export class KvStateMachine implements StateMachine {
  private readonly entries = new Map<string, Entry>();
  private readonly accumulator = new Uint32Array(LIMBS);
  private cachedDigest: string | null = null;
  private scratch = Buffer.allocUnsafe(256);
  private readonly digestInput = Buffer.alloc(COUNT_OFFSET + 8);

  constructor(snapshot?: StateSnapshot) {
    this.digestInput.write(KV_DIGEST_DOMAIN, 0, 'latin1');
    if (snapshot !== undefined) this.restore(snapshot);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): string | null {
    return this.entries.get(key)?.value ?? null;
  }

  execute(op: Operation): OperationResult {
    switch (op.kind) {
      case 'read': {
        const entry = this.entries.get(op.key);
        return entry === undefined ? READ_APPLIED_NULL : { value: entry.value, applied: true };
      }
      case 'write':
        this.put(op.key, op.value);
        return { value: op.value, applied: true };
      case 'cas': {
        const current = this.entries.get(op.key)?.value ?? null;
        if (current !== op.expected) return { value: current, applied: false };
        this.put(op.key, op.value);
        return { value: current, applied: true };
      }
    }
  }

  digest(): string {
    if (this.cachedDigest !== null) return this.cachedDigest;
    const input = this.digestInput;
    for (let i = 0; i < LIMBS; i++) writeU32LE(input, ACC_OFFSET + 4 * i, this.accumulator[i] ?? 0);
    const count = this.entries.size;
    writeU32LE(input, COUNT_OFFSET, count >>> 0);
    writeU32LE(input, COUNT_OFFSET + 4, Math.floor(count / 0x1_0000_0000));
    this.cachedDigest = blake3Hex(input);
    return this.cachedDigest;
  }

  /** Entries sorted by key, so equal states give byte-identical snapshots. */
  snapshot(): StateSnapshot {
    const entries: Array<readonly [string, string]> = [];
    for (const [key, entry] of this.entries) entries.push([key, entry.value]);
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return { entries };
  }

  restore(snapshot: StateSnapshot): void {
    this.entries.clear();
    this.accumulator.fill(0);
    this.cachedDigest = null;
    for (const [key, value] of snapshot.entries) this.put(key, value);
  }

  /**
   * The chaos engine's state_corruption fault: silently changes one stored value (or plants a
   * bogus key in an empty store) without going through `execute`. The digest follows the corrupt
   * contents, as a real bit flip in a store with an honest hash would; only a comparison with an
   * independent model (the shadow) or another replica can notice.
   */
  corrupt(rng: Rng): Corruption {
    if (this.entries.size === 0) {
      const key = `corrupt-${rng.int(1_000_000)}`;
      const after = `bogus-${rng.int(1_000_000)}`;
      this.put(key, after);
      return { key, before: null, after };
    }
    const target = rng.int(this.entries.size);
    let index = 0;
    for (const [key, entry] of this.entries) {
      if (index++ !== target) continue;
      const before = entry.value;
      const after = `${before}~corrupt-${rng.int(1_000_000)}`;
      this.put(key, after);
      return { key, before, after };
    }
    /* c8 ignore next: target < size, so the loop always returns */
    throw new RangeError('unreachable: corrupt target out of range');
  }

  private put(key: string, value: string): void {
    const existing = this.entries.get(key);
    if (existing !== undefined) {
      if (existing.value === value) return;
      subtractLimbs(this.accumulator, existing.hash);
      existing.value = value;
      this.entryHashInto(key, value, existing.hash);
      addLimbs(this.accumulator, existing.hash);
    } else {
      const hash = new Uint32Array(LIMBS);
      this.entryHashInto(key, value, hash);
      addLimbs(this.accumulator, hash);
      this.entries.set(key, { value, hash });
    }
    this.cachedDigest = null;
  }

  /** Keys and values are mostly ASCII: copying short ASCII by hand beats a native call. */
  private writeUtf8(text: string, at: number): number {
    const buf = this.scratch;
    const length = text.length;
    for (let i = 0; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) return buf.write(text, at, 'utf8');
      buf[at + i] = code;
    }
    return length;
  }

  private entryHashInto(key: string, value: string, out: Uint32Array): void {
    // 3 bytes per UTF-16 unit bounds UTF-8 length (surrogate pairs: 4 bytes for 2 units).
    const worst = 8 + 3 * (key.length + value.length);
    if (this.scratch.length < worst) this.scratch = Buffer.allocUnsafe(Math.max(worst, 2 * this.scratch.length));
    const buf = this.scratch;
    const keyBytes = this.writeUtf8(key, 4);
    writeU32LE(buf, 0, keyBytes);
    const valueAt = 4 + keyBytes;
    const valueBytes = this.writeUtf8(value, valueAt + 4);
    writeU32LE(buf, valueAt, valueBytes);
    const h = blake3Bytes(buf.subarray(0, valueAt + 4 + valueBytes));
    for (let i = 0; i < LIMBS; i++) {
      const o = 4 * i;
      out[i] = (h[o] ?? 0) | ((h[o + 1] ?? 0) << 8) | ((h[o + 2] ?? 0) << 16) | ((h[o + 3] ?? 0) << 24);
    }
  }
}

function writeU32LE(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value;
  bytes[at + 1] = value >>> 8;
  bytes[at + 2] = value >>> 16;
  bytes[at + 3] = value >>> 24;
}

function addLimbs(acc: Uint32Array, h: Uint32Array): void {
  let carry = 0;
  for (let i = 0; i < LIMBS; i++) {
    const sum = (acc[i] ?? 0) + (h[i] ?? 0) + carry;
    acc[i] = sum; // Uint32Array stores sum mod 2^32
    carry = sum > 0xffff_ffff ? 1 : 0;
  }
}

function subtractLimbs(acc: Uint32Array, h: Uint32Array): void {
  let borrow = 0;
  for (let i = 0; i < LIMBS; i++) {
    const diff = (acc[i] ?? 0) - (h[i] ?? 0) - borrow;
    acc[i] = diff; // negative wraps mod 2^32 on store
    borrow = diff < 0 ? 1 : 0;
  }
}
