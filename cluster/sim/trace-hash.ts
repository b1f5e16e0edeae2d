/**
 * The run's trace hash: BLAKE3-256 over a compact, canonical binary encoding of every record in
 * emission order. JSON.stringify of each record cost more than everything else the harness does
 * per transition; this encoding writes the same fields into one reused buffer instead.
 *
 * Canonical and injective: fields in a fixed order, numbers as float64 (null as a distinct tag),
 * strings as UTF-8 with a byte-length prefix, arrays with a count prefix. A string field equal to
 * the same field of the previous record (run id, protocol, often phase and state hashes), or a
 * shadow hash equal to its record's state hash, is written as a one-byte back-reference instead:
 * the byte stream still determines every record, so any change to any field changes the bytes
 * hashed, and the same records always hash the same.
 */
import { createBLAKE3, type IHasher } from 'hash-wasm';
import type { TraceRecord } from '../../core/trace-schema.ts';

/** Bytes per flush to the hasher; a record whose encoding could not fit first flushes. */
const CHUNK_BYTES = 64 * 1024;
/** Fixed part of a record: 14 numbers plus the null tag of latency_us. */
const FIXED_BYTES = 14 * 8 + 1;
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
  private used = 0;
  /** The previous record's string fields, by slot (RUN_ID...SHADOW_HASH). */
  private readonly previous: string[] = ['', '', '', '', '', ''];

  private constructor(private readonly hasher: IHasher) {}

  static async create(): Promise<TraceHasher> {
    const hasher = await createBLAKE3(256);
    hasher.init();
    return new TraceHasher(hasher);
  }

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
    this.reserve(FIXED_BYTES + 6 * 5 + 4 * (textChars + faultChars) + 4 + 4 + 8 * r.faulty_nodes.length);
    const view = this.view;
    let o = this.used;
    view.setFloat64(o, r.schema_version);
    view.setFloat64(o + 8, r.node);
    view.setFloat64(o + 16, r.node_seq);
    view.setFloat64(o + 24, r.view);
    view.setFloat64(o + 32, r.seq);
    view.setFloat64(o + 40, r.leader);
    view.setFloat64(o + 48, r.ts_us);
    view.setFloat64(o + 56, r.node_clock_us);
    view.setFloat64(o + 64, r.msgs_sent);
    view.setFloat64(o + 72, r.msgs_received);
    view.setFloat64(o + 80, r.retransmissions);
    view.setFloat64(o + 88, r.batch_size);
    view.setFloat64(o + 96, r.deps_count);
    const latency = r.latency_us;
    view.setUint8(o + 104, latency === null ? 0 : 1);
    view.setFloat64(o + 105, latency ?? 0);
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
    }
  }

  private flush(): void {
    if (this.used === 0) return;
    this.hasher.update(this.buffer.subarray(0, this.used));
    this.used = 0;
  }
}
