/**
 * The shadow: a second, independently written key-value model that is fed every operation the
 * runtime state machine executes, so a bug or a silent corruption in the runtime path shows up
 * as a digest (or result) mismatch on the very next transition.
 *
 * It computes the same digest as kv-state-machine.ts (see the scheme there) but shares none of
 * its code: values live in a null-prototype object instead of a Map, entries are encoded with
 * TextEncoder and a DataView instead of Buffer, and the 256-bit AdHash accumulator is kept in
 * 16 limbs of 16 bits in a plain number array instead of 8 u32 limbs. Only the BLAKE3 primitive
 * is shared, and that one is pinned by the official test vectors.
 * Deliberately no import of kv-state-machine.ts.
 */
import type { Operation, OperationResult } from '../protocol.ts';
import { blake3Bytes, blake3Hex } from './blake3.ts';

const DOMAIN_BYTES = new TextEncoder().encode('lattice-kv-v1');
const LIMB_COUNT = 16;
const LIMB_MODULUS = 0x1_0000;

type Limbs = number[];

interface ShadowRecord {
  value: string;
  /** h(key, value) in 16-bit limbs, overwritten in place on every write. */
  readonly limbs: Limbs;
}

export class ShadowModel {
  private records: Record<string, ShadowRecord> = Object.create(null) as Record<string, ShadowRecord>;
  private count = 0;
  private readonly sum: Limbs = new Array<number>(LIMB_COUNT).fill(0);
  private digestHex: string | null = null;
  private readonly encoder = new TextEncoder();
  private buffer = new Uint8Array(512);
  private view = new DataView(this.buffer.buffer);
  private readonly finalInput = new Uint8Array(DOMAIN_BYTES.length + 2 * LIMB_COUNT + 8);

  constructor(entries: Iterable<readonly [string, string]> = []) {
    this.finalInput.set(DOMAIN_BYTES, 0);
    this.load(entries);
  }

  /** Replaces the whole contents (checkpoint restore). */
  load(entries: Iterable<readonly [string, string]>): void {
    this.records = Object.create(null) as Record<string, ShadowRecord>;
    this.count = 0;
    this.sum.fill(0);
    this.digestHex = null;
    for (const [key, value] of entries) this.store(key, this.records[key], value);
  }

  apply(op: Operation): OperationResult {
    const record = this.records[op.key];
    const current = record === undefined ? null : record.value;
    if (op.kind === 'read') return { value: current, applied: true };
    if (op.kind === 'write') {
      this.store(op.key, record, op.value);
      return { value: op.value, applied: true };
    }
    if (op.expected !== current) return { value: current, applied: false };
    this.store(op.key, record, op.value);
    return { value: current, applied: true };
  }

  digest(): string {
    if (this.digestHex === null) {
      const input = this.finalInput;
      let at = DOMAIN_BYTES.length;
      for (let i = 0; i < LIMB_COUNT; i++) {
        const limb = this.sum[i] as number;
        input[at++] = limb & 0xff;
        input[at++] = limb >>> 8;
      }
      let n = this.count;
      for (let i = 0; i < 8; i++) {
        input[at++] = n % 256;
        n = Math.floor(n / 256);
      }
      this.digestHex = blake3Hex(input);
    }
    return this.digestHex;
  }

  get size(): number {
    return this.count;
  }

  private store(key: string, record: ShadowRecord | undefined, value: string): void {
    if (record === undefined) {
      const limbs = new Array<number>(LIMB_COUNT);
      this.entryHashInto(key, value, limbs);
      combine(this.sum, limbs, +1);
      this.records[key] = { value, limbs };
      this.count += 1;
    } else {
      if (record.value === value) return;
      combine(this.sum, record.limbs, -1);
      this.entryHashInto(key, value, record.limbs);
      combine(this.sum, record.limbs, +1);
      record.value = value;
    }
    this.digestHex = null;
  }

  /** UTF-8 bytes of `text` at `offset`; pure ASCII is copied directly (the common case, and
   * cheaper than TextEncoder's native call for short strings). */
  private encode(text: string, offset: number): number {
    let ascii = true;
    for (let i = 0; i < text.length && ascii; i++) ascii = text.charCodeAt(i) < 0x80;
    if (!ascii) return this.encoder.encodeInto(text, this.buffer.subarray(offset)).written;
    const out = this.buffer;
    for (let i = 0; i < text.length; i++) out[offset + i] = text.charCodeAt(i);
    return text.length;
  }

  private entryHashInto(key: string, value: string, limbs: Limbs): void {
    const needed = 8 + 3 * (key.length + value.length);
    if (this.buffer.length < needed) {
      this.buffer = new Uint8Array(needed * 2);
      this.view = new DataView(this.buffer.buffer);
    }
    const keyLength = this.encode(key, 4);
    this.view.setUint32(0, keyLength, true);
    const valueStart = 8 + keyLength;
    const valueLength = this.encode(value, valueStart);
    this.view.setUint32(4 + keyLength, valueLength, true);
    const digest = blake3Bytes(this.buffer.subarray(0, valueStart + valueLength));
    for (let i = 0; i < LIMB_COUNT; i++) limbs[i] = (digest[2 * i] as number) + 256 * (digest[2 * i + 1] as number);
  }
}

/** sum := sum + sign·term mod 2^256, little-endian 16-bit limbs. */
function combine(sum: Limbs, term: Limbs, sign: 1 | -1): void {
  let carry = 0;
  for (let i = 0; i < LIMB_COUNT; i++) {
    let limb = (sum[i] as number) + sign * (term[i] as number) + carry;
    carry = 0;
    if (limb >= LIMB_MODULUS) {
      limb -= LIMB_MODULUS;
      carry = 1;
    } else if (limb < 0) {
      limb += LIMB_MODULUS;
      carry = -1;
    }
    sum[i] = limb;
  }
}
