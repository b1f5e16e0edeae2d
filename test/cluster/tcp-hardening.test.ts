/**
 * A node's inbound side under hostile input, over real sockets against a real node started in
 * this process (the toy protocol: transport only). What is asserted is what the node counts and
 * does (connections closed, frames routed, requests executed), never how long anything took.
 *
 * The hellos here are built by helpers written from the wire format's description (below), not by
 * the production builders, so a mistake in one shows up against the other; the production
 * builders are exercised by the load generator and the status client at the end.
 */
import { MemorySink } from '../../core/sink.ts';
import { validateMetricsSnapshot } from '../../core/metrics-snapshot.ts';
import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../core/errors.ts';
import { adminKey, clientKey, createAuthenticator, nodeKey } from '../../cluster/auth.ts';
import type { ClientRequest, Message } from '../../cluster/protocol.ts';
import { queryStatus } from '../../cluster/tcp/admin-client.ts';
import { findFreePorts } from '../../cluster/tcp/cluster-manager.ts';
import { FrameDecoder, encodeFrame } from '../../cluster/tcp/framing.ts';
import { DEFAULT_CONNECTION_LIMITS, resolveConnectionLimits, type ConnectionLimits } from '../../cluster/tcp/limits.ts';
import { runLoad } from '../../cluster/tcp/load.ts';
import { startNode, type RunningNode } from '../../cluster/tcp/node-process.ts';
import { toyProtocol } from '../../cluster/tcp/toy-protocol.ts';
import type { NodeStatus } from '../../cluster/tcp/wire.ts';

const SECRET = randomBytes(16).toString('hex');
const nodes: RunningNode[] = [];
const sockets: Raw[] = [];

afterEach(async () => {
  for (const raw of sockets.splice(0)) raw.socket.destroy();
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

/** Node `id` of a toy cluster of `n` replicas; the other replicas are not started (tests play them). */
async function startToyNode(n: number, id: number, limits: Partial<ConnectionLimits> = {}, listenHost?: string): Promise<RunningNode> {
  const ports = await findFreePorts(n);
  const node = await startNode({
    id,
    protocol: toyProtocol,
    ports,
    runId: `hardening-${randomBytes(3).toString('hex')}`,
    clusterSecret: SECRET,
    traceSink: null,
    limits,
    ...(listenHost !== undefined && { listenHost }),
  });
  nodes.push(node);
  return node;
}

/** A raw client socket that records every frame it receives and whether the node closed it. */
class Raw {
  readonly socket = new Socket();
  readonly frames: Array<Record<string, unknown>> = [];
  closed = false;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);

  static async open(port: number): Promise<Raw> {
    const raw = new Raw();
    sockets.push(raw);
    raw.socket.on('error', () => {});
    raw.socket.on('close', () => (raw.closed = true));
    raw.socket.on('data', (chunk: Buffer) => raw.frames.push(...(raw.decoder.push(chunk) as Array<Record<string, unknown>>)));
    await new Promise<void>((ok, fail) => {
      raw.socket.once('error', fail);
      raw.socket.connect(port, '127.0.0.1', () => ok());
    });
    return raw;
  }

  send(...values: unknown[]): void {
    this.socket.write(Buffer.concat(values.map((v) => encodeFrame(v, 64 * 1024 * 1024))));
  }

  replies(clientId: number): number[] {
    return this.frames.filter((f) => f.t === 'reply' && (f.r as { clientId: number }).clientId === clientId).map((f) => (f.r as { requestId: number }).requestId);
  }
}

/** Polls until `condition` holds; the deadline only turns a hang into a readable failure. */
async function waitFor(condition: () => boolean, what: string, deadlineMs = 15_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > deadlineMs) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// The hello format, from its description: a 128-bit HMAC-SHA256 tag (base64url) under the
// identity's key over "lattice-hello/1|role|identity|receiving node|ts ms|nonce".
function tag(key: Buffer, role: string, identity: string | number, to: number, ts: number, nonce: string): string {
  return createHmac('sha256', key).update(`lattice-hello/1|${role}|${identity}|${to}|${ts}|${nonce}`).digest().subarray(0, 16).toString('base64url');
}
const freshNonce = (): string => randomBytes(16).toString('base64url');

function peerHello(node: number, to: number, opts: { macTo?: number; ts?: number; nonce?: string; secret?: string } = {}) {
  const ts = opts.ts ?? Date.now();
  const nonce = opts.nonce ?? freshNonce();
  return { t: 'hello', role: 'peer', node, to, ts, nonce, mac: tag(nodeKey(opts.secret ?? SECRET, node), 'peer', node, opts.macTo ?? to, ts, nonce) };
}

function clientHello(ids: readonly number[], to: number, forged: ReadonlySet<number> = new Set()) {
  const ts = Date.now();
  const nonce = freshNonce();
  const macs = ids.map((id) => tag(clientKey(forged.has(id) ? 'not-the-secret' : SECRET, id), 'client', id, to, ts, nonce));
  return { t: 'hello', role: 'client', clients: ids, macs, to, ts, nonce };
}

function adminHello(to: number, secret = SECRET) {
  const ts = Date.now();
  const nonce = freshNonce();
  return { t: 'hello', role: 'admin', to, ts, nonce, mac: tag(adminKey(secret), 'admin', 'admin', to, ts, nonce) };
}

const request = (clientId: number, requestId: number): ClientRequest => ({ clientId, requestId, op: { kind: 'write', key: `k${clientId}`, value: `v${requestId}` } });

/** Addresses the kernel has LISTEN sockets on for `port` (Linux /proc/net/tcp and tcp6). */
function listeningAddresses(port: number): string[] {
  const found: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== '0A' || local === undefined) continue;
      const [hexAddress, hexPort] = local.split(':') as [string, string];
      if (parseInt(hexPort, 16) !== port) continue;
      if (hexAddress.length === 8) found.push((hexAddress.match(/../g) as string[]).reverse().map((b) => parseInt(b, 16)).join('.'));
      else found.push(hexAddress === '0'.repeat(32) ? '::' : hexAddress === '00000000000000000000000001000000' ? '::1' : hexAddress);
    }
  }
  return found;
}

describe('listening addresses', () => {
  it('listens on loopback only by default, and on the configured host when given one', async () => {
    const node = await startToyNode(1, 0);
    expect(listeningAddresses(node.port)).toEqual(['127.0.0.1']);
    const wide = await startToyNode(1, 0, {}, '0.0.0.0');
    expect(listeningAddresses(wide.port)).toEqual(['0.0.0.0']);
  });
});

describe('inbound memory', () => {
  it('100 connections announcing 16 MiB frames before a hello are closed without buffering them', async () => {
    const node = await startToyNode(1, 0);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(16 * 1024 * 1024, 0);
    const raws = await Promise.all(Array.from({ length: 100 }, () => Raw.open(node.port)));
    for (const raw of raws) raw.socket.write(Buffer.concat([header, randomBytes(64 * 1024)]));
    await waitFor(() => raws.every((r) => r.closed), 'the node to close all 100 connections');
    const s = node.status();
    // Past the unauthenticated-connection limit a connection is refused at once; the rest announce
    // a frame no hello can need.
    expect(s.connectionsRejected + s.hellosRejected).toBe(100);
    expect(s.hellosRejectedByReason.frame_too_large ?? 0).toBe(s.hellosRejected);
    expect(s.inboundBufferedBytesPeak).toBeLessThanOrEqual(DEFAULT_CONNECTION_LIMITS.unauthenticatedFrameBytesMax + 4);
    expect(s.inboundBufferedBytes).toBe(0);
  });

  it('keeps the bytes buffered across connections within inboundBytesMax, closing the ones that would pass it', async () => {
    const budget = 256 * 1024;
    const node = await startToyNode(1, 0, { inboundBytesMax: budget, frameBytesMax: budget, connectionsMax: 200, unauthenticatedConnectionsMax: 200, helloTimeoutMs: 600_000 });
    const header = Buffer.alloc(4);
    header.writeUInt32BE(16_000, 0);
    const partial = Buffer.concat([header, randomBytes(15_000)]);
    // What a connection holds: the payload so far (the header is consumed once read).
    const perConnection = 15_000;
    const raws: Raw[] = [];
    let held = 0;
    for (let i = 0; i < 100; i++) {
      const raw = await Raw.open(node.port);
      raws.push(raw);
      raw.socket.write(partial);
      // One at a time, so which connections stay is exact: each waits until the node either holds
      // its bytes or has closed it.
      await waitFor(() => raw.closed || node.status().inboundBufferedBytes === held + perConnection, `connection ${i} to be buffered or closed`);
      if (!raw.closed) held += perConnection;
      expect(node.status().inboundBufferedBytes).toBeLessThanOrEqual(budget);
    }
    const kept = Math.floor(budget / perConnection);
    const s = node.status();
    expect(raws.filter((r) => !r.closed)).toHaveLength(kept);
    expect(s.connectionsClosedMemory).toBe(100 - kept);
    expect(s.inboundBufferedBytes).toBe(kept * perConnection);
    expect(s.inboundBufferedBytesPeak).toBeLessThanOrEqual(budget);
    for (const raw of raws) raw.socket.destroy();
    await waitFor(() => node.status().connectionsOpen === 0, 'every connection to be gone');
    expect(node.status().inboundBufferedBytes).toBe(0);
  });

  it('refuses a connection past connectionsMax and keeps the ones it has', async () => {
    const node = await startToyNode(1, 0, { connectionsMax: 4, unauthenticatedConnectionsMax: 4, helloTimeoutMs: 600_000 });
    const first = await Promise.all(Array.from({ length: 4 }, () => Raw.open(node.port)));
    await waitFor(() => node.status().connectionsOpen === 4, 'four connections to be accepted');
    const fifth = await Raw.open(node.port);
    await waitFor(() => fifth.closed, 'the fifth connection to be closed');
    expect(node.status()).toMatchObject({ connectionsRejected: 1, connectionsOpen: 4 });
    expect(first.some((r) => r.closed)).toBe(false);
    // A slot frees when a connection goes: a client can then authenticate and be served.
    first[0]?.socket.destroy();
    await waitFor(() => node.status().connectionsOpen === 3, 'a slot to free');
    const client = await Raw.open(node.port);
    client.send(clientHello([11], 0), { t: 'req', r: request(11, 1) });
    await waitFor(() => client.replies(11).length === 1, 'the reply');
  });

  it('closes a connection that says nothing within helloTimeoutMs', async () => {
    const node = await startToyNode(1, 0, { helloTimeoutMs: 200 });
    const silent = await Raw.open(node.port);
    await waitFor(() => silent.closed, 'the silent connection to be closed');
    expect(node.status().hellosRejectedByReason).toEqual({ timeout: 1 });
  });
});

describe('client hellos', () => {
  it('rejects a hello claiming a million client ids, however large a frame it may send', async () => {
    const ids = Array.from({ length: 1_000_000 }, (_, i) => i);
    const node = await startToyNode(1, 0);
    const big = await Raw.open(node.port);
    big.send({ t: 'hello', role: 'client', clients: ids, to: 0, ts: Date.now(), nonce: freshNonce(), macs: [] });
    await waitFor(() => big.closed, 'the connection to be closed');
    expect(node.status().hellosRejectedByReason).toEqual({ frame_too_large: 1 });

    // Even when the operator allows unauthenticated frames that large, the count is refused
    // before a single MAC is computed.
    const lax = await startToyNode(1, 0, { unauthenticatedFrameBytesMax: 16 * 1024 * 1024 });
    const claim = await Raw.open(lax.port);
    claim.send({ t: 'hello', role: 'client', clients: ids, to: 0, ts: Date.now(), nonce: freshNonce(), macs: [] });
    await waitFor(() => claim.closed, 'the connection to be closed');
    expect(lax.status().hellosRejectedByReason).toEqual({ too_many_clients: 1 });
    expect(lax.status().inboundBufferedBytes).toBe(0);
  });

  it('accepts up to helloClientsMax ids of any size in one hello (it fits the unauthenticated frame)', async () => {
    const node = await startToyNode(1, 0);
    const ids = Array.from({ length: DEFAULT_CONNECTION_LIMITS.helloClientsMax }, (_, i) => Number.MAX_SAFE_INTEGER - i);
    const hello = clientHello(ids, 0);
    expect(encodeFrame(hello).length).toBeLessThanOrEqual(DEFAULT_CONNECTION_LIMITS.unauthenticatedFrameBytesMax);
    const client = await Raw.open(node.port);
    client.send(hello, { t: 'req', r: request(ids[255] as number, 1) });
    await waitFor(() => client.replies(ids[255] as number).length === 1, 'the reply');
    expect(node.status()).toMatchObject({ hellosRejected: 0, framesRejected: 0 });
  });

  it('rejects a forged client hello, and an authenticated client cannot take another id\'s replies', async () => {
    const node = await startToyNode(1, 0);
    const victim = await Raw.open(node.port);
    victim.send(clientHello([7], 0), { t: 'req', r: request(7, 1) });
    await waitFor(() => victim.replies(7).length === 1, 'the victim\'s first reply');

    // A hello for 7 without 7's key: rejected, and the connection closed.
    const forger = await Raw.open(node.port);
    forger.send(clientHello([8, 7], 0, new Set([7])));
    await waitFor(() => forger.closed, 'the forger to be closed');
    expect(node.status().hellosRejectedByReason).toEqual({ bad_mac: 1 });
    expect(forger.frames).toEqual([]);

    // A client with 8's key sends a request as 7, then one as itself. Frames on one connection are
    // handled in order, so once 8's reply is in, a reply routed for the forged request would be too.
    const other = await Raw.open(node.port);
    other.send(clientHello([8], 0), { t: 'req', r: request(7, 2) }, { t: 'req', r: request(8, 1) });
    await waitFor(() => other.replies(8).length === 1, 'the reply to 8');
    expect(other.replies(7)).toEqual([]);
    expect(node.status().framesRejected).toBe(1);

    victim.send({ t: 'req', r: request(7, 3) });
    await waitFor(() => victim.replies(7).length === 2, 'the victim\'s next reply');
    expect(victim.replies(7)).toEqual([1, 3]);
  });

  it('rejects a first frame that is not a hello, and a hello with a wrong shape', async () => {
    const node = await startToyNode(1, 0);
    const direct = await Raw.open(node.port);
    direct.send({ t: 'req', r: request(1, 1) });
    const status = await Raw.open(node.port);
    status.send({ t: 'status' });
    const odd = await Raw.open(node.port);
    odd.send({ t: 'hello', role: 'client', clients: [1, 2], macs: ['x'], to: 0, ts: Date.now(), nonce: freshNonce() });
    await waitFor(() => direct.closed && status.closed && odd.closed, 'all three to be closed');
    expect(status.frames).toEqual([]);
    expect(node.status().hellosRejectedByReason).toEqual({ not_hello: 2, malformed: 1 });
    expect(node.status().executed).toBe(0);
  });
});

describe('peer hellos', () => {
  it('accepts a fresh hello for this node, and rejects one for another node, forged, replayed, stale or of itself', async () => {
    const node = await startToyNode(3, 0);
    const good = peerHello(1, 0);
    const accepted = await Raw.open(node.port);
    accepted.send(good);
    await waitFor(() => node.status().connectionsOpenByRole.peer === 1, 'the peer to be authenticated');

    const cases: Array<[string, unknown]> = [
      ['wrong_node', peerHello(1, 2)],
      ['bad_mac', peerHello(1, 0, { macTo: 2 })],
      ['bad_mac', peerHello(1, 0, { secret: 'another-cluster' })],
      // As many characters as a tag, more bytes: must be a plain mismatch, not a thrown error.
      ['bad_mac', { ...peerHello(1, 0), mac: 'é'.repeat(22) }],
      ['replayed', good],
      ['stale', peerHello(1, 0, { ts: Date.now() - 2 * DEFAULT_CONNECTION_LIMITS.helloFreshnessMs })],
      ['unknown_identity', peerHello(0, 0)],
      ['unknown_identity', peerHello(7, 0)],
    ];
    const raws: Raw[] = [];
    for (const [, hello] of cases) {
      const raw = await Raw.open(node.port);
      raw.send(hello);
      raws.push(raw);
    }
    await waitFor(() => raws.every((r) => r.closed), 'every bad hello to be closed');
    expect(node.status().hellosRejectedByReason).toEqual({ wrong_node: 1, bad_mac: 3, replayed: 1, stale: 1, unknown_identity: 2 });
    expect(accepted.closed).toBe(false);
  });
});

describe('peer messages', () => {
  // Node 1 of a toy cluster of 3: the test plays node 0 (the toy's primary, whose ORDERs node 1
  // executes) and node 2.
  const signers = [createAuthenticator(SECRET, 0, 3), createAuthenticator(SECRET, 1, 3), createAuthenticator(SECRET, 2, 3)];
  const order = (seq: number, from = 0): Message => signers[from]?.sign({ type: 'ORDER', from, seq, request: request(100 + seq, 1) }) as Message;
  const forged = (seq: number): Message => ({ ...(JSON.parse(JSON.stringify(order(seq))) as Message), mac: 'Zm9yZ2Vk' });

  it('closes a peer connection after authFailuresMax messages that fail verification, counting each', async () => {
    const node = await startToyNode(3, 1, { authFailuresMax: 5, authFailureWindowMs: 600_000 });
    const peer0 = await Raw.open(node.port);
    peer0.send(peerHello(0, 1), { t: 'msg', m: order(1) });
    await waitFor(() => node.status().executed === 1, 'the signed ORDER to execute');

    peer0.send(...[2, 3, 4, 5].map((seq) => ({ t: 'msg', m: forged(seq) })));
    await waitFor(() => node.status().messagesAuthFailed === 4, 'four failures to be counted');
    expect(peer0.closed).toBe(false);
    // Validly signed, but by node 2 on node 0's connection: a peer speaks only for itself.
    peer0.send({ t: 'msg', m: order(2, 2) });
    await waitFor(() => peer0.closed, 'the peer to be disconnected');
    expect(node.status()).toMatchObject({ messagesAuthFailed: 5, connectionsClosedAuth: 1, executed: 1 });

    // A relayed message keeps its signer's MAC: node 2 may forward node 0's ORDER.
    const peer2 = await Raw.open(node.port);
    peer2.send(peerHello(2, 1), { t: 'fwd', m: order(2) }, { t: 'fwd', m: forged(3) });
    await waitFor(() => node.status().executed === 2 && node.status().messagesAuthFailed === 6, 'the relayed ORDER to execute and the forged relay to be counted');
    expect(peer2.closed).toBe(false);
  });

  it('counts the peer messages it refuses for a bad MAC in its metrics snapshots', async () => {
    const ports = await findFreePorts(3);
    const sink = new MemorySink();
    const node = await startNode({ id: 1, protocol: toyProtocol, ports, runId: `hardening-snap-${randomBytes(3).toString('hex')}`, clusterSecret: SECRET, traceSink: sink, snapshotIntervalMs: 20 });
    nodes.push(node);
    const peer0 = await Raw.open(node.port);
    peer0.send(peerHello(0, 1), { t: 'msg', m: order(1) }, ...[2, 3, 4].map((seq) => ({ t: 'msg', m: forged(seq) })));
    await waitFor(() => node.status().messagesAuthFailed === 3, 'three failures to be counted');
    await node.stop();
    nodes.splice(nodes.indexOf(node), 1);
    expect(sink.snapshots.length).toBeGreaterThan(0);
    expect(sink.snapshots.every((snap) => validateMetricsSnapshot(snap).ok)).toBe(true);
    expect(sink.snapshots.reduce((n, snap) => n + snap.rejected_bad_mac, 0)).toBe(3);
    expect(sink.snapshots.reduce((n, snap) => n + snap.received_from[snap.peers.indexOf(0)]!, 0)).toBe(1);
  });

  it('takes protocol messages only from authenticated peers', async () => {
    const node = await startToyNode(3, 1);
    const client = await Raw.open(node.port);
    client.send(clientHello([5], 1), { t: 'msg', m: order(1) }, { t: 'req', r: request(5, 1) });
    const admin = await Raw.open(node.port);
    admin.send(adminHello(1), { t: 'msg', m: order(1) }, { t: 'status' });
    await waitFor(() => admin.frames.some((f) => f.t === 'status_ok'), 'the status answer');
    await waitFor(() => node.status().framesRejected === 2, 'both misplaced messages to be rejected');
    expect(node.status().executed).toBe(0);
  });
});

describe('admin connections', () => {
  it('answers status only after an admin hello under the cluster secret', async () => {
    const node = await startToyNode(2, 1);
    const status = await queryStatus({ host: '127.0.0.1', port: node.port, node: 1, clusterSecret: SECRET });
    expect(status).toMatchObject({ node: 1, hellosRejected: 0, connectionsRejected: 0, connectionsClosedMemory: 0, connectionsClosedAuth: 0, inboundBufferedBytes: 0 });
    await expect(queryStatus({ host: '127.0.0.1', port: node.port, node: 1, clusterSecret: 'wrong' })).rejects.toMatchObject({ code: 'TRANSPORT_UNAVAILABLE' });
    const forged = await Raw.open(node.port);
    forged.send(adminHello(1, 'wrong'), { t: 'status' });
    await waitFor(() => forged.closed, 'the forged admin to be closed');
    expect(forged.frames).toEqual([]);
    expect(node.status().hellosRejectedByReason).toEqual({ bad_mac: 2 });
  });
});

describe('the production clients', () => {
  it('the load generator authenticates more clients than one hello may carry', async () => {
    const node = await startToyNode(1, 0);
    const result = await runLoad({ ports: [node.port], protocol: 'toy', clusterSecret: SECRET, clients: 300, ops: 600 });
    expect(result).toMatchObject({ completed: 600, errors: 0 });
    expect(node.status()).toMatchObject({ hellosRejected: 0, framesRejected: 0, executed: 600 });
  });
});

describe('connection limits', () => {
  it('have defaults, and are validated with every bad field named', () => {
    expect(resolveConnectionLimits({})).toEqual(DEFAULT_CONNECTION_LIMITS);
    let error: unknown;
    try {
      resolveConnectionLimits({ connectionsMax: 0, inboundBytesMax: 1024, authFailureWindowMs: -1, helloClientsMax: 10_000 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const paths = (error as ConfigError).fieldErrors.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['connectionsMax', 'inboundBytesMax', 'authFailureWindowMs', 'helloClientsMax']));
  });
});

describe('lattice cluster up --listen-host / load / status / down', () => {
  const run = promisify(execFile);
  const CLI = resolve(import.meta.dirname, '../../bin/lattice.js');
  const workDir = mkdtempSync(join(tmpdir(), 'lattice-hardening-cli-'));
  afterAll(() => rmSync(workDir, { recursive: true, force: true }));
  const lattice = (args: string[]) => run(process.execPath, [CLI, ...args], { cwd: workDir, env: { ...process.env, LATTICE_LOG_LEVEL: 'warn' } });

  it('runs a PBFT cluster on loopback with the new counters in its status', async () => {
    const up = JSON.parse((await lattice(['cluster', 'up', '--protocol', 'pbft', '--trace', 'off', '--listen-host', '127.0.0.1', '--json'])).stdout) as { ports: number[]; host: string };
    try {
      expect(up.host).toBe('127.0.0.1');
      for (const port of up.ports) expect(listeningAddresses(port)).toEqual(['127.0.0.1']);
      const load = JSON.parse((await lattice(['cluster', 'load', '--duration-ms', '1000', '--clients', '4', '--json'])).stdout) as { completed: number; errors: number };
      expect(load.errors).toBe(0);
      expect(load.completed).toBeGreaterThan(10);
      const status = JSON.parse((await lattice(['cluster', 'status', '--json'])).stdout) as { nodes: NodeStatus[]; unreachable: number[] };
      expect(status.unreachable).toEqual([]);
      for (const s of status.nodes) {
        expect(s).toMatchObject({ hellosRejected: 0, connectionsRejected: 0, connectionsClosedMemory: 0, connectionsClosedAuth: 0, messagesAuthFailed: 0, framesRejected: 0 });
        expect(s.connectionsOpenByRole.peer).toBe(3);
      }
      const text = (await lattice(['cluster', 'status'])).stdout;
      expect(text).toContain('hellosRejected');
    } finally {
      await lattice(['cluster', 'down', '--json']);
    }
  });
});
