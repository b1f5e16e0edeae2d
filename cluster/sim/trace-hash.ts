/**
 * The run's trace hash: SHA-256 over a compact, canonical binary encoding of every record in
 * emission order. JSON.stringify of each record cost more than everything else the harness does
 * per transition; this encoding writes the same fields into one reused buffer instead.
 *
 * SHA-256 rather than BLAKE3 (which the state digests use): node:crypto's SHA-256 runs on the
 * CPU's SHA extensions, about 1.4 GB/s on this project's machine against 380 MB/s for
 * hash-wasm's BLAKE3, and this hash covers every byte of every record of a run. It is a
 * fingerprint for replay comparisons, not a security boundary.
 *
 * Canonical and injective: fields in a fixed order, numbers as float64 (little-endian, the byte
 * order of every platform Node ships for; 8-byte aligned after zero padding; null as a distinct tag),
 * strings as UTF-8 with a byte-length prefix, arrays with a count prefix. A string field equal to
 * the same field of the previous record (run id, protocol, often phase and state hashes), or a
 * shadow hash equal to its record's state hash, is written as a one-byte back-reference instead:
 * the byte stream still determines every record, so any change to any field changes the bytes
 * hashed, and the same records always hash the same.
 */
import { createHash, type Hash } from 'node:crypto';
import type { TraceRecord } from '../../core/trace-schema.ts';

/** Bytes per flush to the hasher; a record whose encoding could not fit first flushes. */
const CHUNK_BYTES = 64 * 1024;
/** Fixed part of a record: 14 numbers plus the null tag of latency_us. */
const FIXED_BYTES = 14 * 8 + 1;
/** Worst-case zero padding before a record's numbers (they start on an 8-byte boundary). */
const ALIGN_BYTES = 7;
/** String field tags: a literal follows, same as this field in the previous record, same as this record's state_hash. */
const LITERAL = 1;
const AS_PREVIOUS = 0;
const AS_STATE_HASH = 2;
const RUN_ID = 0;
const EVENT_ID = 1;
const PROTOCOL = 2;
const PHASE = 3;
const STATE_HASH = 4;
const SHADOW_HASH = 5;

export class TraceHasher {
  private buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  private view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
  /** The buffer's whole backing store as float64 slots (index = absolute byte offset / 8). */
  private f64 = new Float64Array(this.buffer.buffer, 0, this.buffer.buffer.byteLength >> 3);
  private used = 0;
  /** The previous record's string fields, by slot (RUN_ID...SHADOW_HASH). */
  private readonly previous: string[] = ['', '', '', '', '', ''];

  private readonly hasher: Hash = createHash('sha256');

  update(records: readonly TraceRecord[]): void {
    for (const record of records) this.add(record);
  }

  /** Lowercase hex; the hasher is finished afterwards. */
  digest(): string {
    this.flush();
    return this.hasher.digest('hex');
  }

  private add(r: TraceRecord): void {
    let faultChars = 0;
    for (const fault of r.faults) faultChars += 4 + fault.length;
    // UTF-8 takes at most 3 bytes per UTF-16 unit; 4 per unit also covers each length prefix.
    const textChars = r.run_id.length + r.event_id.length + r.protocol.length + r.phase.length + r.state_hash.length + r.shadow_hash.length;
    this.reserve(ALIGN_BYTES + FIXED_BYTES + 6 * 5 + 4 * (textChars + faultChars) + 4 + 4 + 8 * r.faulty_nodes.length);
    const view = this.view;
    // The numbers go through a Float64Array at an 8-byte boundary (zero padding before it): one
    // native store each, where DataView.setFloat64 converts to big-endian byte by byte.
    let o = this.used;
    while ((this.buffer.byteOffset + o) & 7) view.setUint8(o++, 0);
    const f64 = this.f64;
    const slot = (this.buffer.byteOffset + o) >> 3;
    f64[slot] = r.schema_version;
    f64[slot + 1] = r.node;
    f64[slot + 2] = r.node_seq;
    f64[slot + 3] = r.view;
    f64[slot + 4] = r.seq;
    f64[slot + 5] = r.leader;
    f64[slot + 6] = r.ts_us;
    f64[slot + 7] = r.node_clock_us;
    f64[slot + 8] = r.msgs_sent;
    f64[slot + 9] = r.msgs_received;
    f64[slot + 10] = r.retransmissions;
    f64[slot + 11] = r.batch_size;
    f64[slot + 12] = r.deps_count;
    const latency = r.latency_us;
    f64[slot + 13] = latency ?? 0;
    view.setUint8(o + 112, latency === null ? 0 : 1);
    o += FIXED_BYTES;
    o = this.writeField(o, RUN_ID, r.run_id);
    o = this.writeField(o, EVENT_ID, r.event_id);
    o = this.writeField(o, PROTOCOL, r.protocol);
    o = this.writeField(o, PHASE, r.phase);
    o = this.writeField(o, STATE_HASH, r.state_hash);
    if (r.shadow_hash === r.state_hash) {
      view.setUint8(o++, AS_STATE_HASH);
      this.previous[SHADOW_HASH] = r.shadow_hash;
    } else {
      o = this.writeField(o, SHADOW_HASH, r.shadow_hash);
    }
    view.setUint32(o, r.faults.length);
    o += 4;
    for (const fault of r.faults) o = this.writeString(o, fault);
    view.setUint32(o, r.faulty_nodes.length);
    o += 4;
    for (const node of r.faulty_nodes) {
      view.setFloat64(o, node);
      o += 8;
    }
    this.used = o;
  }

  /** A tag, then the string unless it repeats the previous record's value of this field. */
  private writeField(at: number, slot: number, text: string): number {
    const previous = this.previous;
    if (text === previous[slot]) {
      this.view.setUint8(at, AS_PREVIOUS);
      return at + 1;
    }
    previous[slot] = text;
    this.view.setUint8(at, LITERAL);
    return this.writeString(at + 1, text);
  }

  /** Writes `text` as UTF-8 after its byte length; returns the offset after it. */
  private writeString(at: number, text: string): number {
    // Trace strings are short and ASCII (ids, phases, hex hashes): a JS loop beats a native
    // Buffer.write call per field. Anything else goes through Buffer.write, same bytes.
    const buffer = this.buffer;
    const length = text.length;
    let i = 0;
    for (; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) break;
      buffer[at + 4 + i] = code;
    }
    const written = i === length ? length : this.buffer.write(text, at + 4, 'utf8');
    this.view.setUint32(at, written);
    return at + 4 + written;
  }

  /** Makes room for `bytes` (an upper bound of one record's encoding). */
  private reserve(bytes: number): void {
    if (this.used + bytes <= this.buffer.length) return;
    this.flush();
    if (bytes > this.buffer.length) {
      this.buffer = Buffer.allocUnsafe(bytes);
      this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
      this.f64 = new Float64Array(this.buffer.buffer, 0, this.buffer.buffer.byteLength >> 3);
    }
  }

  private flush(): void {
    if (this.used === 0) return;
    this.hasher.update(this.buffer.subarray(0, this.used));
    this.used = 0;
  }
}
