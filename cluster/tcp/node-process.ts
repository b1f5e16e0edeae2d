/**
 * One replica as a real process: implements `ReplicaEnv` on the wall clock (core/clock.ts
 * `systemClock`), Node timers and TCP sockets, so the unchanged protocol code that runs in the
 * simulator runs here. One listening port per node serves peers (protocol messages), clients
 * (requests in, replies out) and admin status queries; see wire.ts. Who may connect, and what it
 * may cost the node, is inbound.ts's business.
 *
 * This is the effectful edge of the cluster: setTimeout is allowed here and only here.
 */
import { createServer, type Server } from 'node:net';
import { systemClock } from '../../core/clock.ts';
import { createRng } from '../../core/rng.ts';
import type { TraceSink } from '../../core/sink.ts';
import { traceRecordOf } from '../trace-record.ts';
import { LatticeError } from '../../core/errors.ts';
import { createAuthenticator } from '../auth.ts';
import {
  DEFAULT_PROTOCOL_OPTIONS,
  type Authenticator,
  type ClientReply,
  type Message,
  type NodeId,
  type ProtocolDefinition,
  type ProtocolOptions,
  type Replica,
  type ReplicaEnv,
  type TimerHandle,
  type Transition,
} from '../protocol.ts';
import { initBlake3 } from '../state/blake3.ts';
import { VerifiedStateMachine } from '../state/verified-state-machine.ts';
import { encodeFrame } from './framing.ts';
import { helloKeysFromSecret, peerHello } from './hello-auth.ts';
import { InboundConnections } from './inbound.ts';
import { resolveConnectionLimits, type ConnectionLimits } from './limits.ts';
import { OutboundLink } from './outbound-link.ts';
import { TraceBuffer, type TraceStatus } from './trace-output.ts';
import { protocolState, ReplicaTelemetry, SNAPSHOT_INTERVAL_US } from '../telemetry.ts';
import type { NodeStatus } from './wire.ts';

export interface NodeConfig {
  readonly id: NodeId;
  readonly protocol: ProtocolDefinition;
  /** Listening port of every replica, indexed by node id. */
  readonly ports: readonly number[];
  /** Where the other replicas are reached; default 127.0.0.1. */
  readonly host?: string;
  /** The address this node listens on; default 127.0.0.1 (loopback only). */
  readonly listenHost?: string;
  readonly runId: string;
  readonly clusterSecret: string;
  readonly options?: ProtocolOptions;
  /** Where trace records go; null: no trace (e.g. a raw throughput benchmark). */
  readonly traceSink: TraceSink | null;
  /** Bounds on connections, frames and inbound memory; defaults in limits.ts. */
  readonly limits?: Partial<ConnectionLimits>;
  /** Called on transport-level problems worth a log line (bad frames); default: silent. */
  readonly log?: (line: string) => void;
  /** Wall-clock interval of the metrics snapshots, milliseconds (default 100; 0: none). */
  readonly snapshotIntervalMs?: number;
}

export interface RunningNode {
  readonly id: NodeId;
  readonly port: number;
  readonly listenHost: string;
  status(): NodeStatus;
  /** Stops timers and sockets, flushes the trace. */
  stop(): Promise<void>;
}

const NO_TRACE: TraceStatus = { traceRecords: 0, traceDropped: 0, traceSpooled: 0, traceReplayed: 0, traceGaps: 0, traceSpoolBytes: 0 };

export async function startNode(config: NodeConfig): Promise<RunningNode> {
  await initBlake3();
  const node = new TcpNode(config);
  await node.listen();
  return node;
}

class TcpNode implements ReplicaEnv, RunningNode {
  readonly id: NodeId;
  readonly replicas: readonly NodeId[];
  readonly f: number;
  readonly rng;
  readonly auth: Authenticator;
  readonly stateMachine = new VerifiedStateMachine({ keepLog: false });
  readonly port: number;
  readonly listenHost: string;
  private readonly replica: Replica;
  private readonly links = new Map<NodeId, OutboundLink>();
  private readonly server: Server;
  private readonly inbound: InboundConnections;
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly traceBuffer: TraceBuffer | null;
  private readonly maxFrameBytes: number;
  private nextTimerId = 1;
  private lastEncoded: { readonly message: Message; readonly frame: Buffer } | null = null;
  private nodeSeq = 0;
  private sentSinceRecord = 0;
  private receivedSinceRecord = 0;
  private messagesSent = 0;
  private messagesReceived = 0;
  private stopped = false;
  /** Counters for this node's metrics snapshots (cluster/telemetry.ts), taken on a wall-clock interval. */
  readonly telemetry: ReplicaTelemetry;
  private readonly snapshotTimer: NodeJS.Timeout | null;
  private snapshotsFailed = 0;

  constructor(private readonly config: NodeConfig) {
    const n = config.ports.length;
    if (!Number.isInteger(config.id) || config.id < 0 || config.id >= n) {
      throw new LatticeError('CONFIG_INVALID', `node id ${config.id} is not in a cluster of ${n}`);
    }
    const port = config.ports[config.id];
    if (port === undefined) throw new LatticeError('CONFIG_INVALID', `no port for node ${config.id}`);
    if (n < config.protocol.minReplicas) {
      throw new LatticeError('CONFIG_INVALID', `${config.protocol.name} needs at least ${config.protocol.minReplicas} replicas, got ${n}`);
    }
    this.id = config.id;
    this.port = port;
    this.replicas = config.ports.map((_, i) => i);
    this.f = config.protocol.faultTolerance(n);
    this.rng = createRng(`${config.runId}/node/${config.id}`);
    this.auth = createAuthenticator(config.clusterSecret, config.id, n);
    const limits = resolveConnectionLimits(config.limits, `node ${config.id}'s connection limits`);
    this.maxFrameBytes = limits.frameBytesMax;
    this.listenHost = config.listenHost ?? '127.0.0.1';
    this.traceBuffer = config.traceSink === null ? null : new TraceBuffer(config.traceSink, { onError: (e) => this.log(`trace sink write failed: ${String(e)}`) });
    const host = config.host ?? '127.0.0.1';
    const keys = helloKeysFromSecret(config.clusterSecret);
    for (const peer of this.replicas) {
      if (peer === this.id) continue;
      const peerPort = config.ports[peer] as number;
      this.links.set(peer, new OutboundLink({ host, port: peerPort, hello: () => [peerHello(keys, this.id, peer)], maxFrameBytes: this.maxFrameBytes }));
    }
    this.inbound = new InboundConnections({
      self: this.id,
      replicaCount: n,
      limits,
      keys,
      // A bad MAC is refused here, before the replica sees the message: counted for the snapshots
      // as the simulator's replicas count their own.
      verifyMessage: (message) => {
        const ok = this.auth.verify(message);
        if (!ok) this.telemetry.rejected('bad_mac');
        return ok;
      },
      handler: {
        onMessage: (message) => {
          if (this.stopped) return;
          this.receivedSinceRecord++;
          this.messagesReceived++;
          this.telemetry.received(message.from);
          this.replica.onMessage(message);
        },
        onClientRequest: (request) => {
          if (this.stopped) return;
          this.receivedSinceRecord++;
          this.replica.onClientRequest(request);
        },
        status: () => this.status(),
      },
      log: (line) => this.log(line),
    });
    this.server = createServer((socket) => this.inbound.accept(socket));
    this.telemetry = new ReplicaTelemetry(this.id, this.replicas, systemClock.nowUs());
    const intervalMs = config.snapshotIntervalMs ?? SNAPSHOT_INTERVAL_US / 1000;
    this.snapshotTimer = config.traceSink === null || intervalMs <= 0 ? null : setInterval(() => void this.shipSnapshot(), intervalMs);
    this.snapshotTimer?.unref();
    this.replica = config.protocol.createReplica(this, config.options ?? DEFAULT_PROTOCOL_OPTIONS);
    this.replica.start();
  }

  private shipSnapshot(): Promise<void> {
    const sink = this.config.traceSink;
    if (sink === null || this.stopped) return Promise.resolve();
    const nowUs = systemClock.nowUs();
    const snapshot = this.telemetry.take({
      runId: this.config.runId,
      protocol: this.config.protocol.name,
      tsUs: nowUs,
      nodeClockUs: nowUs,
      ...protocolState(this.replica.progressReport()),
      faults: [],
      faultyNodes: [],
      recovering: false,
    });
    return sink.writeSnapshots([snapshot]).catch((error: unknown) => {
      // Counted and logged: a snapshot is telemetry, and a later one carries the counters on.
      this.snapshotsFailed++;
      this.log(`metrics snapshot write failed: ${String(error)}`);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, this.listenHost, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  // ReplicaEnv --------------------------------------------------------------------------------

  nowUs(): number {
    return systemClock.nowUs();
  }

  send(to: NodeId, message: Message): void {
    const link = this.links.get(to);
    if (link === undefined || this.stopped) return;
    this.sentSinceRecord++;
    this.messagesSent++;
    this.telemetry.sent(to);
    link.sendEncoded(this.encodeMessage(message));
  }

  /**
   * A protocol often signs one message and sends it to several peers in a loop (EPaxos
   * PRE-ACCEPT, ACCEPT, COMMIT): the frame is encoded once. Signed messages are immutable by
   * contract (see auth.ts), and the cache lives only until the current callback returns.
   */
  private encodeMessage(message: Message): Buffer {
    const cached = this.lastEncoded;
    if (cached !== null && cached.message === message) return cached.frame;
    // Another replica's signed message (PBFT relays NEW-VIEW and checkpoint votes) goes as `fwd`:
    // the receiver checks a `msg` against the sending peer, a `fwd` against its signer.
    const frame = encodeFrame({ t: message.from === this.id ? 'msg' : 'fwd', m: message }, this.maxFrameBytes);
    if (cached === null) queueMicrotask(() => (this.lastEncoded = null));
    this.lastEncoded = { message, frame };
    return frame;
  }

  broadcast(message: Message): void {
    if (this.stopped) return;
    const frame = this.encodeMessage(message);
    for (const [peer, link] of this.links) {
      this.sentSinceRecord++;
      this.messagesSent++;
      this.telemetry.sent(peer);
      link.sendEncoded(frame);
    }
  }

  replyToClient(reply: ClientReply): void {
    const writer = this.inbound.writerFor(reply.clientId);
    if (writer === undefined || this.stopped) return;
    this.sentSinceRecord++;
    writer.write(encodeFrame({ t: 'reply', r: reply }, this.maxFrameBytes));
  }

  setTimer(afterUs: number, name: string, data?: unknown): TimerHandle {
    const id = this.nextTimerId++;
    const timeout = setTimeout(
      () => {
        this.timers.delete(id);
        if (this.stopped) return;
        this.telemetry.timerFired(name);
        this.replica.onTimer(name, data);
      },
      Math.max(0, afterUs / 1000),
    );
    this.timers.set(id, timeout);
    return { id };
  }

  cancelTimer(handle: TimerHandle): void {
    const timeout = this.timers.get(handle.id);
    if (timeout === undefined) return;
    clearTimeout(timeout);
    this.timers.delete(handle.id);
  }

  trace(transition: Transition): void {
    const buffer = this.traceBuffer;
    if (buffer === null) return;
    const check = this.stateMachine.check();
    const nodeSeq = this.nodeSeq++;
    const nowUs = systemClock.nowUs();
    const runId = this.config.runId;
    // Real processes share the host's clock: true time and node time coincide (no skew fault).
    const record = traceRecordOf(
      {
        runId,
        node: this.id,
        nodeSeq,
        protocol: this.config.protocol.name,
        tsUs: nowUs,
        nodeClockUs: nowUs,
        msgsSent: this.sentSinceRecord,
        msgsReceived: this.receivedSinceRecord,
        runtimeHash: check.runtime,
        shadowHash: check.shadow,
        // No chaos engine over TCP: no labels, no Byzantine hooks.
        faults: [],
        faultyNodes: [],
        byzantineAltered: 0,
        recovering: false,
      },
      transition,
    );
    this.sentSinceRecord = 0;
    this.receivedSinceRecord = 0;
    buffer.push(record);
  }

  status(): NodeStatus {
    const check = this.stateMachine.check();
    let connectedPeers = 0;
    let dropped = 0;
    for (const link of this.links.values()) {
      if (link.isConnected) connectedPeers++;
      dropped += link.dropped;
    }
    return {
      node: this.id,
      protocol: this.config.protocol.name,
      pid: process.pid,
      port: this.port,
      connectedPeers,
      executed: this.stateMachine.executedCount,
      stateDigest: check.runtime,
      shadowDigest: check.shadow,
      digestsMatch: check.match,
      messagesSent: this.messagesSent,
      messagesReceived: this.messagesReceived,
      messagesDropped: dropped,
      framesRejected: this.inbound.framesRejected,
      ...(this.traceBuffer?.status() ?? NO_TRACE),
      socketWrites: this.socketWrites(),
      ...this.inbound.status(),
    };
  }

  private socketWrites(): number {
    let writes = 0;
    for (const link of this.links.values()) writes += link.writes;
    return writes + this.inbound.socketWrites;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    // The last interval's counters go out before the sink closes.
    if (this.snapshotTimer !== null) await this.shipSnapshot();
    this.stopped = true;
    if (this.snapshotTimer !== null) clearInterval(this.snapshotTimer);
    for (const timeout of this.timers.values()) clearTimeout(timeout);
    this.timers.clear();
    for (const link of this.links.values()) link.close();
    this.inbound.closeAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.traceBuffer?.close();
    const sink = this.config.traceSink as (TraceSink & { close?: () => Promise<void> }) | null;
    await sink?.close?.();
  }

  private log(line: string): void {
    this.config.log?.(line);
  }
}
