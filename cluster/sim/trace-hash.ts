/**
 * The run's trace hash: SHA-256 over a compact, canonical binary encoding of every record in
 * emission order. JSON.stringify of each record cost more than everything else the harness does
 * per transition; this encoding writes the same fields into one reused buffer instead. Its layout
 * is derived from the trace record's field table (core/trace-schema.ts), so a field added there is
 * hashed without a change here.
 *
 * SHA-256 rather than BLAKE3 (which the state digests use): node:crypto's SHA-256 runs on the
 * CPU's SHA extensions, about 1.4 GB/s on this project's machine against 380 MB/s for
 * hash-wasm's BLAKE3, and this hash covers every byte of every record of a run. It is a
 * fingerprint for replay comparisons, not a security boundary.
 *
 * Canonical and injective: the numeric fields first, in table order, as float64 (little-endian, the
 * byte order of every platform Node ships for; 8-byte aligned after zero padding; a flag as 0/1),
 * then one presence byte per nullable field, then the string fields in table order as UTF-8 with a
 * byte-length prefix, then the arrays with a count prefix. A string field equal to the same field
 * of the previous record (run id, protocol, often phase and state hashes), or a hash field equal to
 * the record's first hash field (a shadow hash that agrees with the state hash), is written as a
 * one-byte back-reference instead: the byte stream still determines every record, so any change to
 * any field changes the bytes hashed, and the same records always hash the same.
 */
import { createHash, type Hash } from 'node:crypto';
import { assertPlainNames, type FieldDef, type FieldTable } from '../../core/record-fields.ts';
import { TRACE_FIELD_TABLE, type TraceRecord } from '../../core/trace-schema.ts';

/** Bytes per flush to the hasher; a record whose encoding could not fit first flushes. */
const CHUNK_BYTES = 64 * 1024;
/** Worst-case zero padding before a record's numbers (they start on an 8-byte boundary). */
const ALIGN_BYTES = 7;
/** String field tags: a literal follows, same as this field in the previous record, same as this record's first hash field. */
const LITERAL = 1;
const AS_PREVIOUS = 0;
const AS_FIRST_HASH = 2;

type Fields = Record<string, unknown>;

/** A table split by how each field is encoded, in table order within each group. */
function layoutOf(table: FieldTable) {
  const numbers: string[] = [];
  const nullable: string[] = [];
  const strings: string[] = [];
  const hashes: string[] = [];
  const textArrays: string[] = [];
  const numberArrays: string[] = [];
  for (const [name, def] of Object.entries(table) as Array<[string, FieldDef]>) {
    switch (def.kind.type) {
      case 'literal':
      case 'uint':
      case 'node_id':
      case 'flag':
        numbers.push(name);
        if (def.nullable) nullable.push(name);
        break;
      case 'hash':
        hashes.push(name);
        strings.push(name);
        break;
      case 'text':
      case 'enum':
        strings.push(name);
        break;
      case 'enum_array':
      case 'text_array':
        textArrays.push(name);
        break;
      case 'node_array':
      case 'uint_array':
        numberArrays.push(name);
        break;
    }
  }
  const firstHash = hashes[0];
  // Only a later hash field may be written as "same as the first hash field".
  const mayReferFirstHash = strings.map((name) => name !== firstHash && hashes.includes(name));
  return { numbers, storeNumbers: numberStoreOf(numbers), nullable, strings, mayReferFirstHash, firstHash, textArrays, numberArrays, fixedBytes: numbers.length * 8 + nullable.length };
}

/**
 * Writes the numeric fields into float64 slots. Compiled once from the field names into straight
 * property loads (what a hand-written encoder would do), because a loop of keyed loads over the
 * names costs about twice as much per record, and this runs for every record of every run. Unary
 * plus: a number as it is, null as 0 (its presence byte tells them apart), a flag as 0/1.
 */
function numberStoreOf(names: readonly string[]): (r: Fields, f64: Float64Array, slot: number) => void {
  assertPlainNames(names);
  const body = names.map((name, i) => `f64[slot + ${i}] = +r.${name};`).join('\n');
  return new Function('r', 'f64', 'slot', body) as (r: Fields, f64: Float64Array, slot: number) => void;
}

/** SHA-256 over records of one table (trace records by default), in the order given. */
export class TraceHasher<R extends object = TraceRecord> {
  private readonly layout: ReturnType<typeof layoutOf>;
  private buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  private view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
  /** The buffer's whole backing store as float64 slots (index = absolute byte offset / 8). */
  private f64 = new Float64Array(this.buffer.buffer, 0, this.buffer.buffer.byteLength >> 3);
  private used = 0;
  /** The previous record's string fields, by position in the layout's strings. */
  private readonly previous: string[];

  private readonly hasher: Hash = createHash('sha256');

  constructor(table: FieldTable = TRACE_FIELD_TABLE) {
    this.layout = layoutOf(table);
    this.previous = this.layout.strings.map(() => '');
  }

  update(records: readonly R[]): void {
    for (const record of records) this.add(record as unknown as Fields);
  }

  /** Lowercase hex; the hasher is finished afterwards. */
  digest(): string {
    this.flush();
    return this.hasher.digest('hex');
  }

  private add(r: Fields): void {
    const { numbers, storeNumbers, nullable, strings, mayReferFirstHash, firstHash, textArrays, numberArrays, fixedBytes } = this.layout;
    // UTF-8 takes at most 3 bytes per UTF-16 unit; 4 per unit also covers each length prefix.
    let bound = ALIGN_BYTES + fixedBytes + 5 * strings.length;
    for (const name of strings) bound += 4 * (r[name] as string).length;
    for (const name of textArrays) {
      bound += 4;
      for (const item of r[name] as string[]) bound += 4 + 4 * item.length;
    }
    for (const name of numberArrays) bound += 4 + 8 * (r[name] as number[]).length;
    this.reserve(bound);
    const view = this.view;
    // The numbers go through a Float64Array at an 8-byte boundary (zero padding before it): one
    // native store each, where DataView.setFloat64 converts to big-endian byte by byte.
    let o = this.used;
    while ((this.buffer.byteOffset + o) & 7) view.setUint8(o++, 0);
    const slot = (this.buffer.byteOffset + o) >> 3;
    storeNumbers(r, this.f64, slot);
    o += numbers.length * 8;
    for (const name of nullable) view.setUint8(o++, r[name] === null ? 0 : 1);
    const first = firstHash === undefined ? undefined : (r[firstHash] as string);
    for (let i = 0; i < strings.length; i++) {
      const text = r[strings[i]!] as string;
      if (mayReferFirstHash[i] && text === first) {
        view.setUint8(o++, AS_FIRST_HASH);
        this.previous[i] = text;
      } else {
        o = this.writeField(o, i, text);
      }
    }
    for (const name of textArrays) {
      const items = r[name] as string[];
      view.setUint32(o, items.length);
      o += 4;
      for (const item of items) o = this.writeString(o, item);
    }
    for (const name of numberArrays) {
      const items = r[name] as number[];
      view.setUint32(o, items.length);
      o += 4;
      for (const item of items) {
        view.setFloat64(o, item);
        o += 8;
      }
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
