/**
 * A bounded on-disk spool: where a producer puts what the broker cannot take right now, to be
 * replayed in order when it returns (as Vector's disk buffers and Fluent Bit's filesystem storage
 * do). One directory per producer, owned by one process at a time (a `lock` file with its pid).
 *
 * Layout: append-only segment files `seg-<12-digit id>.spool`, replayed in id order, each a
 * 16-byte header (`LATSPOOL`, u32 version, u32 reserved) and then entries:
 *
 *   u32 LE body length | 8 bytes: SHA-256(body)[0..8] | body = u8 kind | u16 LE key length | key | value
 *
 * (kind 0: a trace record, 1: a gap record, 2: a metrics snapshot; key and value UTF-8). A `cursor` file holds the
 * replay position (segment id and byte offset) and is replaced (write + rename) on every ack, so a
 * restarted producer resumes after what was already sent (at-least-once: an ack lost in a crash
 * means one batch is sent again; the store collapses redelivered records by event id).
 *
 * Bounds: the segments' total size on disk (including the already-replayed head of the oldest
 * segment, until that segment is deleted) never exceeds `bytesMax` — an `offer` that would pass it
 * is refused and the caller drops with accounting — and a segment is sealed once the next entry
 * would take it past `segmentBytes` (an entry larger than that gets a segment of its own). A fully
 * replayed segment is deleted; an empty spool has no segments, so it uses 0 bytes.
 *
 * Durability (the fsync policy): `commit` writes the staged entries with write(2) before it
 * returns, so they survive a crash or `kill -9` of the producer process; they reach the disk
 * (survive power loss) within `fsyncIntervalMs` (default 1 s), by an fdatasync of the segment that
 * runs off the event loop, and on every seal (also off the loop) and `close` (synchronously).
 * 0 makes every commit fdatasync synchronously before it returns.
 *
 * Corruption: at open every segment is scanned and each entry's length and checksum verified. A
 * torn or corrupt tail (a crash mid-write, a bad sector) is reported through `onCorruption` and in
 * `corruptions`, the file is truncated at the last good entry, and the spool carries on with what
 * is intact. Replay verifies the checksums again. Nothing here throws on bad bytes.
 */
import { hash } from 'node:crypto';
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  ftruncateSync,
  mkdirSync,
  open,
  close as closeFd,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { LatticeError, invariant } from '../core/errors.ts';
import { processIsAlive } from '../core/process.ts';

export type SpoolEntryKind = 'record' | 'gap' | 'snapshot';
const KIND_CODES: Readonly<Record<SpoolEntryKind, number>> = { record: 0, gap: 1, snapshot: 2 };
const KIND_OF_CODE: readonly SpoolEntryKind[] = ['record', 'gap', 'snapshot'];

export interface SpoolEntry {
  readonly kind: SpoolEntryKind;
  /** The transport key (`run_id/node`). */
  readonly key: string;
  /** The record (or gap record) as one JSON line, no newline. */
  readonly value: string;
}

export interface SpoolOptions {
  readonly dir: string;
  /** Total bytes of the segment files, at most. */
  readonly bytesMax: number;
  /** A segment is sealed before it would grow past this. */
  readonly segmentBytes: number;
  /** Longest time a committed entry may stay only in the page cache (0: fdatasync every commit). */
  readonly fsyncIntervalMs?: number;
  readonly onCorruption?: (corruption: SpoolCorruption) => void;
}

export interface SpoolCorruption {
  readonly segment: string;
  /** Byte offset of the first bad entry; everything from here to the end was discarded. */
  readonly offset: number;
  readonly bytesDiscarded: number;
  readonly reason: 'bad_segment_header' | 'truncated_entry' | 'checksum_mismatch' | 'bad_entry';
  /** Entries known to be lost (counted when the segment's count was known, else 0: a torn tail after a crash is uncounted). */
  readonly entriesLost: number;
  readonly when: 'open' | 'replay';
}

/** Entries read from the head of the spool, to be sent and then acknowledged with `ack`. */
export interface SpoolBatch {
  readonly entries: readonly SpoolEntry[];
  /** How many of them are trace records (the rest are gap records). */
  readonly records: number;
  readonly segmentId: number;
  readonly startOffset: number;
  readonly endOffset: number;
}

export const SEGMENT_HEADER_BYTES = 16;
export const ENTRY_HEADER_BYTES = 12;
const BODY_PREFIX_BYTES = 3;
const MAGIC = Buffer.from('LATSPOOL', 'latin1');
const VERSION = 1;
/** Segment ids start high so that entries can be put in front of the oldest one (see `prepend`). */
const FIRST_SEGMENT_ID = 1_000_000_000;
const SEGMENT_NAME = /^seg-(\d{12})\.spool$/;
const CORRUPTIONS_KEPT = 32;

interface Segment {
  readonly id: number;
  readonly path: string;
  /** Bytes in the file (header included). */
  size: number;
  /** Entries and records not yet acknowledged. */
  entries: number;
  records: number;
}

interface Staged {
  readonly entry: SpoolEntry;
  readonly bytes: Buffer;
}

/** Directories opened by this process (a second open of one would corrupt it). */
const openDirs = new Set<string>();

export function checksumOf(body: Buffer): Buffer {
  return hash('sha256', body, 'buffer').subarray(0, 8);
}

/** One entry in its on-disk form (header and body). */
export function encodeEntry(entry: SpoolEntry): Buffer {
  const keyBytes = Buffer.byteLength(entry.key);
  invariant(keyBytes <= 0xffff, `spool key of ${keyBytes} bytes`);
  const valueBytes = Buffer.byteLength(entry.value);
  const bodyBytes = BODY_PREFIX_BYTES + keyBytes + valueBytes;
  const out = Buffer.allocUnsafe(ENTRY_HEADER_BYTES + bodyBytes);
  out.writeUInt32LE(bodyBytes, 0);
  const body = out.subarray(ENTRY_HEADER_BYTES);
  body.writeUInt8(KIND_CODES[entry.kind], 0);
  body.writeUInt16LE(keyBytes, 1);
  body.write(entry.key, BODY_PREFIX_BYTES, 'utf8');
  body.write(entry.value, BODY_PREFIX_BYTES + keyBytes, 'utf8');
  checksumOf(body).copy(out, 4);
  return out;
}

type Parsed = { ok: true; entry: SpoolEntry; bytes: number } | { ok: false; reason: 'truncated_entry' | 'checksum_mismatch' | 'bad_entry' } | { ok: 'more'; need: number };

/** Parses the entry at `offset` of `buffer`; `more` when the buffer ends inside it (with its size). */
function parseEntry(buffer: Buffer, offset: number): Parsed {
  if (buffer.length - offset < ENTRY_HEADER_BYTES) return { ok: 'more', need: ENTRY_HEADER_BYTES };
  const bodyBytes = buffer.readUInt32LE(offset);
  if (bodyBytes < BODY_PREFIX_BYTES) return { ok: false, reason: 'bad_entry' };
  const total = ENTRY_HEADER_BYTES + bodyBytes;
  if (buffer.length - offset < total) return { ok: 'more', need: total };
  const body = buffer.subarray(offset + ENTRY_HEADER_BYTES, offset + total);
  if (!checksumOf(body).equals(buffer.subarray(offset + 4, offset + ENTRY_HEADER_BYTES))) return { ok: false, reason: 'checksum_mismatch' };
  const kind = body.readUInt8(0);
  const keyBytes = body.readUInt16LE(1);
  const entryKind = KIND_OF_CODE[kind];
  if (entryKind === undefined || BODY_PREFIX_BYTES + keyBytes > bodyBytes) return { ok: false, reason: 'bad_entry' };
  return {
    ok: true,
    bytes: total,
    entry: {
      kind: entryKind,
      key: body.toString('utf8', BODY_PREFIX_BYTES, BODY_PREFIX_BYTES + keyBytes),
      value: body.toString('utf8', BODY_PREFIX_BYTES + keyBytes),
    },
  };
}

function segmentHeader(): Buffer {
  const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(VERSION, 8);
  return header;
}

function segmentName(id: number): string {
  return `seg-${String(id).padStart(12, '0')}.spool`;
}

function writeAll(fd: number, buffer: Buffer, position: number): void {
  let done = 0;
  while (done < buffer.length) done += writeSync(fd, buffer, done, buffer.length - done, position + done);
}


export class Spool {
  private readonly segments: Segment[] = [];
  /** Replay position inside segments[0]. */
  private cursorOffset = SEGMENT_HEADER_BYTES;
  /** The segment appends go to (the last one), once this session wrote to it. */
  private writeFd: number | null = null;
  private writeSegment: Segment | null = null;
  private staged: Staged[] = [];
  private stagedBytes = 0;
  /** Size the write segment will have once the staged entries are committed (null: a new one is needed). */
  private projectedSegmentBytes: number | null = null;
  private bytesUsed = 0;
  private nextId: number;
  private lastSyncMs = 0;
  private syncTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly fsyncIntervalMs: number;
  private readonly lockPath: string;
  private readonly cursorPath: string;
  /** Bad bytes found so far (the latest ones, bounded), and their totals. */
  readonly corruptions: SpoolCorruption[] = [];
  corruptBytes = 0;
  corruptEntriesLost = 0;
  /** What was found on disk at open (left over by an earlier process): entries and records to replay. */
  readonly recovered: { readonly entries: number; readonly records: number; readonly segments: number };

  static open(options: SpoolOptions): Spool {
    return new Spool(options);
  }

  private constructor(private readonly options: SpoolOptions) {
    invariant(options.segmentBytes >= SEGMENT_HEADER_BYTES + 1024, `spool segment of ${options.segmentBytes} bytes is too small`);
    invariant(options.bytesMax >= options.segmentBytes, `spool bytes_max ${options.bytesMax} is smaller than a segment (${options.segmentBytes})`);
    this.fsyncIntervalMs = options.fsyncIntervalMs ?? 1_000;
    const dir = resolve(options.dir);
    mkdirSync(dir, { recursive: true });
    this.lockPath = join(dir, 'lock');
    this.cursorPath = join(dir, 'cursor');
    this.lock(dir);
    try {
      this.nextId = this.recover(dir);
    } catch (error) {
      this.unlock(dir);
      throw error;
    }
    this.recovered = { entries: this.entries, records: this.records, segments: this.segments.length };
  }

  /** Bytes of the segment files (what the bound applies to), staged entries included. */
  get bytes(): number {
    return this.bytesUsed + this.stagedBytes;
  }

  /** Entries not yet acknowledged (staged ones included). */
  get entries(): number {
    let n = this.staged.length;
    for (const s of this.segments) n += s.entries;
    return n;
  }

  /** Trace records not yet acknowledged (staged ones included). */
  get records(): number {
    let n = 0;
    for (const s of this.staged) if (s.entry.kind === 'record') n++;
    for (const s of this.segments) n += s.records;
    return n;
  }

  get isEmpty(): boolean {
    return this.entries === 0;
  }

  /** Whether `prepend` is allowed now (nothing of the oldest segment replayed yet). */
  get canPrepend(): boolean {
    return this.segments.length === 0 || this.cursorOffset === SEGMENT_HEADER_BYTES;
  }

  get dir(): string {
    return this.options.dir;
  }

  /**
   * Stages one entry for the next `commit` if it fits in the bound (`force`: even past it, for the
   * few gap records a closing producer must not lose). Returns false, staging nothing, if not.
   */
  offer(entry: SpoolEntry, force = false): boolean {
    invariant(!this.closed, 'spool is closed');
    const bytes = encodeEntry(entry);
    let cost = bytes.length;
    // A new segment (and its header) is needed if none is open or the entry would overflow it:
    // the same rule as commit's, so the bound is exact.
    let segmentBytes = this.projectedSegmentBytes;
    if (segmentBytes === null || (segmentBytes > SEGMENT_HEADER_BYTES && segmentBytes + bytes.length > this.options.segmentBytes)) {
      cost += SEGMENT_HEADER_BYTES;
      segmentBytes = SEGMENT_HEADER_BYTES;
    }
    if (!force && this.bytes + cost > this.options.bytesMax) return false;
    this.staged.push({ entry, bytes });
    this.stagedBytes += cost;
    this.projectedSegmentBytes = segmentBytes + bytes.length;
    return true;
  }

  /**
   * Writes the staged entries (in order, one write(2) per segment). On an I/O error (disk full,
   * EIO) the segment being written is truncated back to its last whole entry and sealed, and the
   * entries not written (a suffix of what was staged) are returned, in order, for the caller to
   * account; otherwise none.
   */
  commit(): { readonly failed: readonly SpoolEntry[]; readonly error?: unknown } {
    if (this.staged.length === 0) return { failed: [] };
    const staged = this.staged;
    this.staged = [];
    this.stagedBytes = 0;
    this.projectedSegmentBytes = null;
    let index = 0;
    try {
      while (index < staged.length) {
        let segment = this.writeSegment;
        const first = staged[index] as Staged;
        if (segment === null || (segment.size > SEGMENT_HEADER_BYTES && segment.size + first.bytes.length > this.options.segmentBytes)) segment = this.startSegment();
        // Take as many entries as fit in this segment (at least one).
        const parts: Buffer[] = [];
        let size = segment.size;
        let records = 0;
        const start = index;
        while (index < staged.length) {
          const next = staged[index] as Staged;
          if (index > start && size + next.bytes.length > this.options.segmentBytes) break;
          parts.push(next.bytes);
          size += next.bytes.length;
          if (next.entry.kind === 'record') records++;
          index++;
        }
        const buffer = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
        try {
          writeAll(this.writeFd as number, buffer, segment.size);
        } catch (error) {
          // Keep the file a sequence of whole entries.
          try {
            ftruncateSync(this.writeFd as number, segment.size);
          } catch {
            // the segment is sealed below; its size stays the last good one
          }
          index = start;
          throw error;
        }
        this.bytesUsed += buffer.length;
        segment.size = size;
        segment.entries += index - start;
        segment.records += records;
      }
    } catch (error) {
      // Seal the segment: a new one is tried next time.
      this.sealWriteSegment(false);
      return { failed: staged.slice(index).map((s) => s.entry), error };
    }
    this.projectedSegmentBytes = this.writeSegment?.size ?? null;
    this.afterWrite();
    return { failed: [] };
  }

  /**
   * Up to `entriesMax` entries (and about `bytesMax` bytes, at least one entry) from the replay
   * position, within one segment; nothing is consumed until `ack`. Stages are committed first.
   */
  peek(entriesMax: number, bytesMax: number): SpoolBatch | null {
    invariant(!this.closed, 'spool is closed');
    if (this.staged.length > 0) this.commit();
    for (;;) {
      const head = this.segments[0];
      if (head === undefined) return null;
      if (this.cursorOffset >= head.size || head.entries === 0) {
        if (head === this.writeSegment) return null;
        this.dropHead();
        continue;
      }
      const batch = this.readBatch(head, entriesMax, bytesMax);
      if (batch !== null) return batch;
      // The rest of the head was corrupt and has been discarded: go on with the next segment.
    }
  }

  /** Consumes a batch returned by `peek` (the oldest not yet acknowledged one). */
  ack(batch: SpoolBatch): void {
    if (this.staged.length > 0) this.commit();
    const head = this.segments[0];
    invariant(head !== undefined && head.id === batch.segmentId && this.cursorOffset === batch.startOffset, 'spool ack out of order');
    this.cursorOffset = batch.endOffset;
    head.entries -= batch.entries.length;
    head.records -= batch.records;
    invariant(head.entries >= 0 && head.records >= 0, 'spool counts went negative');
    if (this.cursorOffset >= head.size || head.entries === 0) this.dropHead();
    this.writeCursor();
  }

  /**
   * Puts entries in front of everything else (a new oldest segment), past the bound if need be:
   * for the batch a closing producer was still sending, which is older than the spool's content.
   * Only allowed while nothing of the oldest segment has been replayed yet.
   */
  prepend(entries: readonly SpoolEntry[]): void {
    invariant(!this.closed, 'spool is closed');
    if (entries.length === 0) return;
    if (this.staged.length > 0) this.commit();
    const head = this.segments[0];
    invariant(this.canPrepend, 'spool prepend after the head was partly replayed');
    const id = head === undefined ? this.nextId++ : head.id - 1;
    const path = join(this.options.dir, segmentName(id));
    const parts = [segmentHeader()];
    let records = 0;
    for (const entry of entries) {
      parts.push(encodeEntry(entry));
      if (entry.kind === 'record') records++;
    }
    const buffer = Buffer.concat(parts);
    // The cursor first: a crash before the file exists then only replays the old head again,
    // while the other order would make recovery take the new segment for one already replayed.
    this.writeCursorAt(id, SEGMENT_HEADER_BYTES);
    const fd = openSync(path, 'wx');
    try {
      writeAll(fd, buffer, 0);
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.segments.unshift({ id, path, size: buffer.length, entries: entries.length, records });
    this.bytesUsed += buffer.length;
    this.cursorOffset = SEGMENT_HEADER_BYTES;
    this.writeCursor();
  }

  /** Commits what is staged, fdatasyncs, writes the cursor and releases the directory. */
  close(): void {
    if (this.closed) return;
    this.commit();
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    this.sealWriteSegment(true);
    this.writeCursor();
    this.closed = true;
    this.unlock(resolve(this.options.dir));
  }

  // -------------------------------------------------------------------------------------------

  private lock(dir: string): void {
    if (openDirs.has(dir)) throw new LatticeError('CONFIG_INVALID', `spool directory ${dir} is already open in this process`);
    try {
      writeFileSync(this.lockPath, `${process.pid}\n`, { flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(this.lockPath, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processIsAlive(holder)) {
        throw new LatticeError('CONFIG_INVALID', `spool directory ${dir} is in use by process ${holder}`);
      }
      // A stale lock (its process is gone): take the directory over.
      writeFileSync(this.lockPath, `${process.pid}\n`);
    }
    openDirs.add(dir);
  }

  private unlock(dir: string): void {
    openDirs.delete(dir);
    try {
      unlinkSync(this.lockPath);
    } catch {
      // already gone
    }
  }

  /** Scans the directory: validates every segment, truncates bad tails, places the cursor. */
  private recover(dir: string): number {
    const ids = readdirSync(dir)
      .map((name) => SEGMENT_NAME.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    let cursor: { segment: number; offset: number } | null = null;
    try {
      const parsed = JSON.parse(readFileSync(this.cursorPath, 'utf8')) as { segment?: unknown; offset?: unknown };
      if (Number.isInteger(parsed.segment) && (parsed.segment as number) < 1e12 && Number.isInteger(parsed.offset)) cursor = { segment: parsed.segment as number, offset: parsed.offset as number };
    } catch {
      // no cursor yet: replay from the start
    }
    for (const id of ids) {
      const path = join(dir, segmentName(id));
      if (cursor !== null && id < cursor.segment) {
        // Entirely replayed before the last process stopped (its deletion did not happen).
        unlinkSync(path);
        continue;
      }
      const data = readFileSync(path);
      const from = cursor !== null && id === cursor.segment ? cursor.offset : SEGMENT_HEADER_BYTES;
      const segment = this.scanSegment(path, data, from);
      if (segment === null) continue;
      if (this.segments.length === 0) this.cursorOffset = segment.cursor;
      if (segment.entries === 0) {
        unlinkSync(path);
        if (this.segments.length === 0) this.cursorOffset = SEGMENT_HEADER_BYTES;
        continue;
      }
      this.segments.push({ id, path, size: segment.size, entries: segment.entries, records: segment.records });
      this.bytesUsed += segment.size;
    }
    if (this.segments.length === 0) this.cursorOffset = SEGMENT_HEADER_BYTES;
    const last = this.segments.at(-1)?.id;
    const next = Math.max(FIRST_SEGMENT_ID, last === undefined ? 0 : last + 1, cursor?.segment ?? 0);
    this.nextId = next;
    this.writeCursor();
    return next;
  }

  private scanSegment(path: string, data: Buffer, cursorFrom: number): { size: number; entries: number; records: number; cursor: number } | null {
    if (data.length < SEGMENT_HEADER_BYTES || !data.subarray(0, 8).equals(MAGIC) || data.readUInt32LE(8) !== VERSION) {
      this.report({ segment: path, offset: 0, bytesDiscarded: data.length, reason: 'bad_segment_header', entriesLost: 0, when: 'open' });
      unlinkSync(path);
      return null;
    }
    let offset = SEGMENT_HEADER_BYTES;
    let entries = 0;
    let records = 0;
    // A cursor that is not on an entry boundary (it always should be) replays the whole segment.
    let cursor = SEGMENT_HEADER_BYTES;
    while (offset < data.length) {
      if (offset === cursorFrom) {
        cursor = offset;
        entries = 0;
        records = 0;
      }
      const parsed = parseEntry(data, offset);
      if (parsed.ok !== true) {
        const reason = parsed.ok === 'more' ? 'truncated_entry' : parsed.reason;
        this.report({ segment: path, offset, bytesDiscarded: data.length - offset, reason, entriesLost: 0, when: 'open' });
        truncateSync(path, offset);
        break;
      }
      entries++;
      if (parsed.entry.kind === 'record') records++;
      offset += parsed.bytes;
    }
    if (offset === cursorFrom) {
      cursor = offset;
      entries = 0;
      records = 0;
    }
    return { size: offset, entries, records, cursor };
  }

  private readBatch(head: Segment, entriesMax: number, bytesMax: number): SpoolBatch | null {
    const fd = openSync(head.path, 'r');
    try {
      const available = head.size - this.cursorOffset;
      let length = Math.min(available, Math.max(bytesMax, ENTRY_HEADER_BYTES));
      let buffer = Buffer.allocUnsafe(length);
      let read = readSync(fd, buffer, 0, length, this.cursorOffset);
      buffer = buffer.subarray(0, read);
      const entries: SpoolEntry[] = [];
      let records = 0;
      let offset = 0;
      while (entries.length < entriesMax && offset < buffer.length) {
        const parsed = parseEntry(buffer, offset);
        if (parsed.ok === 'more') {
          if (entries.length > 0) break;
          // The first entry is larger than bytesMax: read it whole.
          if (parsed.need > available) {
            this.discardRest(head, this.cursorOffset, 'truncated_entry');
            return null;
          }
          length = parsed.need;
          buffer = Buffer.allocUnsafe(length);
          read = readSync(fd, buffer, 0, length, this.cursorOffset);
          buffer = buffer.subarray(0, read);
          continue;
        }
        if (parsed.ok === false) {
          if (entries.length > 0) break; // deliver the good ones; the bad one is met again next time
          this.discardRest(head, this.cursorOffset, parsed.reason);
          return null;
        }
        entries.push(parsed.entry);
        if (parsed.entry.kind === 'record') records++;
        offset += parsed.bytes;
      }
      invariant(entries.length > 0, 'spool read no entry');
      return { entries, records, segmentId: head.id, startOffset: this.cursorOffset, endOffset: this.cursorOffset + offset };
    } finally {
      closeSync(fd);
    }
  }

  /** Bad bytes met while replaying: the rest of the segment is given up (its entries counted as lost). */
  private discardRest(head: Segment, offset: number, reason: SpoolCorruption['reason']): void {
    this.report({ segment: head.path, offset, bytesDiscarded: head.size - offset, reason, entriesLost: head.entries, when: 'replay' });
    head.entries = 0;
    head.records = 0;
    if (head === this.writeSegment) this.sealWriteSegment(false);
    this.dropHead();
    this.writeCursor();
  }

  private report(corruption: SpoolCorruption): void {
    this.corruptBytes += corruption.bytesDiscarded;
    this.corruptEntriesLost += corruption.entriesLost;
    this.corruptions.push(corruption);
    if (this.corruptions.length > CORRUPTIONS_KEPT) this.corruptions.shift();
    this.options.onCorruption?.(corruption);
  }

  private startSegment(): Segment {
    this.sealWriteSegment(false);
    const id = this.nextId++;
    const path = join(this.options.dir, segmentName(id));
    const fd = openSync(path, 'wx');
    const header = segmentHeader();
    writeAll(fd, header, 0);
    const segment: Segment = { id, path, size: header.length, entries: 0, records: 0 };
    this.writeFd = fd;
    this.writeSegment = segment;
    this.segments.push(segment);
    this.bytesUsed += header.length;
    if (this.segments.length === 1) this.cursorOffset = SEGMENT_HEADER_BYTES;
    return segment;
  }

  /** Stops appending to the current segment (closing its descriptor after a sync). */
  private sealWriteSegment(syncNow: boolean): void {
    const fd = this.writeFd;
    if (fd === null) return;
    this.writeFd = null;
    this.writeSegment = null;
    this.projectedSegmentBytes = null;
    if (syncNow || this.fsyncIntervalMs === 0) {
      try {
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return;
    }
    // Off the event loop; the descriptor is ours until this callback closes it.
    fdatasync(fd, () => closeFd(fd, () => undefined));
  }

  private afterWrite(): void {
    if (this.fsyncIntervalMs === 0) {
      if (this.writeFd !== null) fdatasyncSync(this.writeFd);
      return;
    }
    if (this.syncTimer !== null) return;
    const due = Math.max(0, this.lastSyncMs + this.fsyncIntervalMs - Date.now());
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      this.lastSyncMs = Date.now();
      const segment = this.writeSegment;
      if (segment === null || this.closed) return;
      // A descriptor of its own, so sealing the segment meanwhile cannot pull it away.
      open(segment.path, 'r', (error, fd) => {
        if (error) return;
        fdatasync(fd, () => closeFd(fd, () => undefined));
      });
    }, due);
    this.syncTimer.unref();
  }

  private dropHead(): void {
    const head = this.segments.shift();
    if (head === undefined) return;
    if (head === this.writeSegment) this.sealWriteSegment(false);
    this.bytesUsed -= head.size;
    try {
      unlinkSync(head.path);
    } catch {
      // gone already
    }
    this.cursorOffset = SEGMENT_HEADER_BYTES;
  }

  private writeCursor(): void {
    const head = this.segments[0];
    this.writeCursorAt(head?.id ?? this.nextId, head === undefined ? SEGMENT_HEADER_BYTES : this.cursorOffset);
  }

  private writeCursorAt(segment: number, offset: number): void {
    const tmp = `${this.cursorPath}.tmp`;
    writeFileSync(tmp, JSON.stringify({ segment, offset }));
    renameSync(tmp, this.cursorPath);
  }
}

/** Bytes a spool directory's segments take on disk (for tests and tools). */
export function spoolDirBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) if (SEGMENT_NAME.test(name)) total += statSync(join(dir, name)).size;
  return total;
}
