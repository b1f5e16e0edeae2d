import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ENTRY_HEADER_BYTES, SEGMENT_HEADER_BYTES, Spool, encodeEntry, spoolDirBytes, type SpoolCorruption, type SpoolEntry } from '../../collector/spool.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lattice-spool-'));
  dirs.push(dir);
  return dir;
}

function entry(i: number, key = `run/${i % 3}`): SpoolEntry {
  return { kind: i % 10 === 9 ? 'gap' : 'record', key, value: JSON.stringify({ i, pad: 'x'.repeat(40 + (i % 7) * 13), text: 'héllo ✓' }) };
}

/** Everything the spool holds, in replay order, acknowledging as it goes. */
function drain(spool: Spool, entriesMax = 7, bytesMax = 1_000): SpoolEntry[] {
  const out: SpoolEntry[] = [];
  for (let batch = spool.peek(entriesMax, bytesMax); batch !== null; batch = spool.peek(entriesMax, bytesMax)) {
    out.push(...batch.entries);
    spool.ack(batch);
  }
  return out;
}

function segments(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.spool')).sort();
}

describe('Spool', () => {
  it('replays entries in order across segments, and deletes what was replayed', () => {
    const dir = tempDir();
    const spool = Spool.open({ dir, bytesMax: 1024 * 1024, segmentBytes: 2_048 });
    const entries = Array.from({ length: 300 }, (_, i) => entry(i));
    for (let i = 0; i < entries.length; i += 11) {
      for (const e of entries.slice(i, i + 11)) expect(spool.offer(e)).toBe(true);
      expect(spool.commit().failed).toEqual([]);
    }
    expect(spool.entries).toBe(300);
    expect(spool.records).toBe(entries.filter((e) => e.kind === 'record').length);
    expect(segments(dir).length).toBeGreaterThan(5);
    expect(spool.bytes).toBe(spoolDirBytes(dir));
    // Peeking does not consume.
    const first = spool.peek(5, 10_000);
    expect(first?.entries).toEqual(entries.slice(0, 5));
    expect(spool.peek(5, 10_000)?.entries).toEqual(entries.slice(0, 5));
    const got = drain(spool);
    expect(got).toEqual(entries);
    expect(spool.isEmpty).toBe(true);
    expect(spool.bytes).toBe(0);
    expect(segments(dir)).toEqual([]);
    // Appending after it drained starts afresh.
    spool.offer(entry(1000));
    spool.commit();
    expect(drain(spool)).toEqual([entry(1000)]);
    spool.close();
  });

  it('never holds more than bytesMax on disk, and refuses exactly what does not fit', () => {
    const dir = tempDir();
    const bytesMax = 10_000;
    const spool = Spool.open({ dir, bytesMax, segmentBytes: 2_500 });
    const accepted: SpoolEntry[] = [];
    let refused = 0;
    for (let i = 0; i < 400; i++) {
      const e = entry(i);
      if (spool.offer(e)) accepted.push(e);
      else refused++;
      if (i % 9 === 0) spool.commit();
      expect(spool.bytes).toBeLessThanOrEqual(bytesMax);
    }
    spool.commit();
    expect(spoolDirBytes(dir)).toBeLessThanOrEqual(bytesMax);
    expect(accepted.length + refused).toBe(400);
    expect(refused).toBeGreaterThan(0);
    // The bytes are exactly the entries plus one header per segment.
    const entryBytes = accepted.reduce((sum, e) => sum + encodeEntry(e).length, 0);
    expect(spool.bytes).toBe(entryBytes + segments(dir).length * SEGMENT_HEADER_BYTES);
    // Not even a small entry fits now; replaying frees room again.
    expect(spool.bytes + ENTRY_HEADER_BYTES + 200).toBeGreaterThan(bytesMax - 2_500);
    const batch = spool.peek(1_000, 3_000);
    expect(batch).not.toBeNull();
    spool.ack(batch!);
    const got = [...batch!.entries, ...drain(spool)];
    expect(got).toEqual(accepted);
    spool.close();
  });

  it('puts entries in front of everything with prepend', () => {
    const dir = tempDir();
    const spool = Spool.open({ dir, bytesMax: 100_000, segmentBytes: 4_096 });
    for (let i = 10; i < 20; i++) spool.offer(entry(i));
    spool.commit();
    expect(spool.canPrepend).toBe(true);
    spool.prepend(Array.from({ length: 10 }, (_, i) => entry(i)));
    spool.close();
    const reopened = Spool.open({ dir, bytesMax: 100_000, segmentBytes: 4_096 });
    expect(drain(reopened)).toEqual(Array.from({ length: 20 }, (_, i) => entry(i)));
    reopened.close();
  });

  it('survives a restart: what was not acknowledged is replayed, what was is not', () => {
    const dir = tempDir();
    const options = { dir, bytesMax: 1024 * 1024, segmentBytes: 3_000 };
    const spool = Spool.open(options);
    for (let i = 0; i < 120; i++) spool.offer(entry(i));
    spool.commit();
    let acked = 0;
    while (acked < 50) {
      const batch = spool.peek(10, 100_000)!;
      spool.ack(batch);
      acked += batch.entries.length;
    }
    spool.close();
    const again = Spool.open(options);
    expect(again.recovered.entries).toBe(120 - acked);
    expect(again.corruptions).toEqual([]);
    expect(drain(again)).toEqual(Array.from({ length: 120 - acked }, (_, i) => entry(acked + i)));
    again.close();
  });

  it('survives kill -9 of the process that was writing it (stale lock taken over, nothing lost)', () => {
    const dir = tempDir();
    const script = join(dir, 'writer.mts');
    writeFileSync(
      script,
      `import { Spool } from ${JSON.stringify(resolve(import.meta.dirname, '../../collector/spool.ts'))};
const spool = Spool.open({ dir: ${JSON.stringify(join(dir, 'spool'))}, bytesMax: 1 << 20, segmentBytes: 4096, fsyncIntervalMs: 60000 });
for (let i = 0; i < 500; i++) { spool.offer({ kind: 'record', key: 'k/' + (i % 4), value: JSON.stringify({ i }) }); if (i % 25 === 24) spool.commit(); }
spool.commit();
let acked = 0;
while (acked < 100) { const b = spool.peek(20, 1 << 20); spool.ack(b); acked += b.entries.length; }
process.kill(process.pid, 'SIGKILL');
`,
    );
    let signal: string | null = null;
    try {
      execFileSync(process.execPath, ['--import', 'tsx', script], { cwd: resolve(import.meta.dirname, '../..'), stdio: 'pipe' });
    } catch (error) {
      signal = (error as { signal: string | null }).signal;
    }
    expect(signal).toBe('SIGKILL');
    expect(existsSync(join(dir, 'spool', 'lock'))).toBe(true);
    const spool = Spool.open({ dir: join(dir, 'spool'), bytesMax: 1 << 20, segmentBytes: 4096 });
    const got = drain(spool, 50, 1 << 20).map((e) => (JSON.parse(e.value) as { i: number }).i);
    expect(got).toEqual(Array.from({ length: 400 }, (_, i) => 100 + i));
    spool.close();
  });

  it('detects a torn tail and a corrupt entry at open, reports them, and keeps what is intact', () => {
    const dir = tempDir();
    const options = { dir, bytesMax: 1024 * 1024, segmentBytes: 2_000 };
    const spool = Spool.open(options);
    const entries = Array.from({ length: 60 }, (_, i) => entry(i));
    for (const e of entries) spool.offer(e);
    spool.commit();
    spool.close();
    const files = segments(dir);
    expect(files.length).toBeGreaterThan(2);
    // A crash mid-write: the last segment ends inside an entry.
    const last = join(dir, files.at(-1)!);
    const lastSize = statSync(last).size;
    truncateSync(last, lastSize - 5);
    // A bad sector in the middle of an earlier segment: one byte flipped inside an entry body.
    const middle = join(dir, files[1]!);
    const bytes = readFileSync(middle);
    const firstEntryLength = bytes.readUInt32LE(SEGMENT_HEADER_BYTES) + ENTRY_HEADER_BYTES;
    const flipAt = SEGMENT_HEADER_BYTES + firstEntryLength + ENTRY_HEADER_BYTES + 10;
    bytes[flipAt] = bytes[flipAt]! ^ 0xff;
    writeFileSync(middle, bytes);

    const reports: SpoolCorruption[] = [];
    const reopened = Spool.open({ ...options, onCorruption: (c) => reports.push(c) });
    expect(reports.map((r) => r.reason).sort()).toEqual(['checksum_mismatch', 'truncated_entry']);
    expect(reopened.corruptions.length).toBe(2);
    expect(reopened.corruptBytes).toBe(reports.reduce((s, r) => s + r.bytesDiscarded, 0));
    const checksum = reports.find((r) => r.reason === 'checksum_mismatch')!;
    expect(checksum.segment).toBe(middle);
    expect(checksum.offset).toBe(SEGMENT_HEADER_BYTES + firstEntryLength);
    // New entries still go in, after what survived.
    reopened.offer(entry(100));
    reopened.commit();
    const got = drain(reopened);
    // What survived is a subsequence of the original order (a prefix of each segment), then the new one.
    const indexes = got.map((e) => (JSON.parse(e.value) as { i: number }).i);
    expect(indexes.at(-1)).toBe(100);
    const old = indexes.slice(0, -1);
    expect(old).toEqual([...old].sort((a, b) => a - b));
    expect(old.length).toBeLessThan(60);
    expect(old.length).toBeGreaterThan(30);
    expect(old).not.toContain(59);
    reopened.close();
    // After the repair, opening again finds nothing wrong.
    const third = Spool.open(options);
    expect(third.corruptions).toEqual([]);
    third.close();
  });

  it('ignores garbage appended to a segment and files that are not segments of its format', () => {
    const dir = tempDir();
    const options = { dir, bytesMax: 1024 * 1024, segmentBytes: 100_000 };
    const spool = Spool.open(options);
    for (let i = 0; i < 5; i++) spool.offer(entry(i));
    spool.close();
    appendFileSync(join(dir, segments(dir)[0]!), Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
    writeFileSync(join(dir, 'seg-001000000007.spool'), 'not a segment');
    const reports: SpoolCorruption[] = [];
    const reopened = Spool.open({ ...options, onCorruption: (c) => reports.push(c) });
    expect(reports.map((r) => r.reason).sort()).toEqual(['bad_segment_header', 'truncated_entry']);
    expect(drain(reopened)).toEqual(Array.from({ length: 5 }, (_, i) => entry(i)));
    reopened.close();
  });

  it('belongs to one process at a time', () => {
    const dir = tempDir();
    const spool = Spool.open({ dir, bytesMax: 100_000, segmentBytes: 10_000 });
    expect(() => Spool.open({ dir, bytesMax: 100_000, segmentBytes: 10_000 })).toThrow(/already open in this process/);
    spool.close();
    // A live process holds it (pid 1 is always alive).
    writeFileSync(join(dir, 'lock'), '1\n');
    expect(() => Spool.open({ dir, bytesMax: 100_000, segmentBytes: 10_000 })).toThrow(/in use by process 1/);
    rmSync(join(dir, 'lock'));
    Spool.open({ dir, bytesMax: 100_000, segmentBytes: 10_000 }).close();
  });
});
