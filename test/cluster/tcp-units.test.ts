/** The TCP harness's pure parts: framing, wire shapes, node arguments, percentiles, trace output. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../core/errors.ts';
import { MemorySink } from '../../core/sink.ts';
import { TRACE_SCHEMA_VERSION, eventIdOf, validateTraceRecord, type TraceRecord } from '../../core/trace-schema.ts';
import { DEFAULT_PROTOCOL_OPTIONS } from '../../cluster/protocol.ts';
import { FrameDecodeError, FrameDecoder, FrameTooLargeError, encodeFrame } from '../../cluster/tcp/framing.ts';
import { formatNodeArgs, parseNodeArgs, type NodeArgs } from '../../cluster/tcp/node-args.ts';
import { LatencyRecorder, percentileOfSorted } from '../../cluster/tcp/latency.ts';
import { NdjsonFileSink, TraceBuffer } from '../../cluster/tcp/trace-output.ts';
import { parseFrame } from '../../cluster/tcp/wire.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('framing', () => {
  const values = [{ t: 'msg', m: { type: 'PREPARE', from: 2, seq: 7, text: 'héllo ✓' } }, { t: 'status' }, [1, 2, 3], 'x'.repeat(300)];
  const stream = Buffer.concat(values.map((v) => encodeFrame(v)));

  it('round-trips frames however the stream is split', () => {
    for (let cut = 0; cut <= stream.length; cut += 7) {
      const decoder = new FrameDecoder();
      const out = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
      expect(out).toEqual(values);
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it('decodes byte by byte', () => {
    const decoder = new FrameDecoder();
    const out: unknown[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...decoder.push(stream.subarray(i, i + 1)));
    expect(out).toEqual(values);
  });

  it('writes a 4-byte big-endian length before UTF-8 JSON', () => {
    const frame = encodeFrame({ a: 'é' });
    expect(frame.readUInt32BE(0)).toBe(Buffer.byteLength('{"a":"é"}'));
    expect(frame.subarray(4).toString('utf8')).toBe('{"a":"é"}');
  });

  it('refuses to encode a frame over the limit', () => {
    const error = captureError(() => encodeFrame({ big: 'x'.repeat(100) }, 64));
    expect(error).toBeInstanceOf(FrameTooLargeError);
    expect(error).toMatchObject({ code: 'TRANSPORT_FAILED', retriable: false, maxFrameBytes: 64 });
    expect((error as Error).message).toMatch(/exceeds the limit of 64 bytes/);
  });

  it('rejects an oversized header before buffering the payload', () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1025, 0);
    const decoder = new FrameDecoder(1024);
    const error = captureError(() => decoder.push(header));
    expect(error).toBeInstanceOf(FrameTooLargeError);
    expect(error).toMatchObject({ frameBytes: 1025, maxFrameBytes: 1024 });
  });

  it('rejects a payload that is not JSON', () => {
    const bad = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{x}')]);
    expect(captureError(() => new FrameDecoder().push(bad))).toBeInstanceOf(FrameDecodeError);
  });
});

describe('wire frames', () => {
  it('accepts well-formed frames and rejects malformed ones', () => {
    const request = { clientId: 3, requestId: 9, op: { kind: 'cas', key: 'k', expected: null, value: 'v' } };
    expect(parseFrame({ t: 'req', r: request })).toEqual({ t: 'req', r: request });
    expect(parseFrame({ t: 'msg', m: { type: 'COMMIT', from: 1, mac: 'x' } })?.t).toBe('msg');
    expect(parseFrame({ t: 'hello', role: 'client', clients: [1, 2], macs: ['a', 'b'], to: 0, ts: 1, nonce: 'n' })?.t).toBe('hello');
    expect(parseFrame({ t: 'fwd', m: { type: 'COMMIT', from: 1, mac: 'x' } })?.t).toBe('fwd');
    // The shape before authentication changed: a hello without target, time and nonce is malformed.
    expect(parseFrame({ t: 'hello', role: 'client', clients: [1, 2] })).toBeNull();
    expect(parseFrame({ t: 'reply', r: { clientId: 1, requestId: 1, replica: 0, view: 0, result: { value: null, applied: true } } })?.t).toBe('reply');
    expect(parseFrame({ t: 'req', r: { ...request, op: { kind: 'drop', key: 'k' } } })).toBeNull();
    expect(parseFrame({ t: 'msg', m: { type: 'COMMIT', from: '1' } })).toBeNull();
    expect(parseFrame({ t: 'hello', role: 'peer' })).toBeNull();
    expect(parseFrame({ t: 'nope' })).toBeNull();
    expect(parseFrame(null)).toBeNull();
  });
});

describe('node arguments', () => {
  it('round-trip through the command line', () => {
    const args: NodeArgs = {
      node: 2,
      protocol: 'epaxos',
      ports: [7001, 7002, 7003],
      host: '127.0.0.1',
      listenHost: '0.0.0.0',
      runId: 'run-1',
      runDir: '/tmp/run-1',
      trace: 'off',
      traceSinkModule: '/x/kafka-sink.ts',
      options: { ...DEFAULT_PROTOCOL_OPTIONS, timeoutUs: 50_000 },
      limits: { frameBytesMax: 4 * 1024 * 1024, connectionsMax: 32, unauthenticatedConnectionsMax: 16, authFailuresMax: 3 },
      exitWithParent: 4242,
    };
    expect(parseNodeArgs(formatNodeArgs(args))).toEqual(args);
    // Defaults: loopback only, the default limits.
    const minimal = parseNodeArgs(['--node', '0', '--protocol', 'toy', '--ports', '7001', '--run-id', 'r', '--run-dir', '/tmp/r']);
    expect(minimal).toMatchObject({ host: '127.0.0.1', listenHost: '127.0.0.1', limits: {} });
  });

  it('reports every invalid field', () => {
    const error = captureError(() => parseNodeArgs(['--node', '5', '--protocol', 'raft', '--ports', '1,2', '--trace', 'kafka', '--limits', '{"connectionsMax":0,"bogus":1}']));
    expect(error).toBeInstanceOf(ConfigError);
    const paths = (error as ConfigError).fieldErrors.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['node', 'protocol', 'run-id', 'run-dir', 'trace', 'limits.connectionsMax', 'limits.bogus']));
  });
});

describe('latency percentiles', () => {
  it('uses nearest rank', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentileOfSorted(sorted, 50)).toBe(50);
    expect(percentileOfSorted(sorted, 99)).toBe(99);
    expect(percentileOfSorted(sorted, 100)).toBe(100);
    expect(percentileOfSorted([7], 99)).toBe(7);
    expect(percentileOfSorted([], 50)).toBe(0);
  });

  it('summarises microsecond samples in milliseconds, order-independent', () => {
    const recorder = new LatencyRecorder();
    for (let i = 2000; i >= 1; i--) recorder.record(i * 1000);
    expect(recorder.summaryMs()).toEqual({ p50: 1000, p90: 1800, p99: 1980, max: 2000, mean: 1000.5 });
  });
});

describe('trace output', () => {
  const record = (nodeSeq: number): TraceRecord => ({
    schema_version: TRACE_SCHEMA_VERSION,
    run_id: 'r',
    event_id: eventIdOf('r', 1, nodeSeq),
    node: 1,
    node_seq: nodeSeq,
    protocol: 'pbft',
    phase: 'commit',
    view: 0,
    seq: nodeSeq,
    leader: 0,
    ts_us: 1,
    node_clock_us: 1,
    msgs_sent: 0,
    msgs_received: 0,
    retransmissions: 0,
    batch_size: 1,
    deps_count: 0,
    latency_us: null,
    byzantine_altered: 0,
    state_hash: 'a'.repeat(64),
    shadow_hash: 'a'.repeat(64),
    faults: [],
    faulty_nodes: [],
    recovering: false,
  });

  it('buffers, flushes in order and drops past its bound', async () => {
    const sink = new MemorySink();
    const buffer = new TraceBuffer(sink, { batchRecordsMax: 4, bufferedRecordsMax: 10, flushIntervalMs: 5 });
    for (let i = 0; i < 12; i++) buffer.push(record(i));
    await buffer.flush();
    expect(sink.records.map((r) => r.node_seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(buffer.dropped).toBe(2);
  });

  it('writes schema-valid NDJSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-tcp-'));
    dirs.push(dir);
    const sink = new NdjsonFileSink(join(dir, 'node-1.ndjson'));
    await sink.write([record(0), record(1)]);
    await sink.close();
    const lines = readFileSync(join(dir, 'node-1.ndjson'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(validateTraceRecord(JSON.parse(line)).ok).toBe(true);
  });
});

function captureError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}
