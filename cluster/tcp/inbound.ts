/**
 * A node's accepted connections, and everything it refuses on them. What a stranger can cost a
 * node is bounded before it says who it is: at most unauthenticatedConnectionsMax of them, each
 * closed unless its first frame, at most unauthenticatedFrameBytesMax, is a hello that verifies
 * (hello-auth.ts) within helloTimeoutMs. Only then does the connection get the full frame limit
 * and a role, and the role decides which frames it may send:
 *
 *   unauthenticated ──hello──▶ peer    msg (its own messages), fwd (another replica's, relayed)
 *                   ──hello──▶ client  req for the ids it proved, further client hellos
 *                   ──hello──▶ admin   status
 *   any state ──▶ closed
 *
 * Across all connections the bytes held in partial frames stay within inboundBytesMax: the
 * connection whose data would take the total past it is closed, so the budget holds whatever the
 * number of connections (the issue that led here: 100 connections each holding a 16 MiB partial
 * frame took a node to 1.7 GB). The bound is on bytes held between reads; one socket read (64 KiB
 * in Node) may sit on top while it is being taken apart.
 *
 * A peer's messages are verified here, against the peer the connection proved to be, before the
 * protocol sees them: the protocol drops a bad MAC silently, so only here can a peer that keeps
 * sending them be noticed and cut off (authFailuresMax within authFailureWindowMs). The protocol
 * verifies again; that second check finds the verdict cached (auth.ts) and costs a lookup.
 */
import type { Socket } from 'node:net';
import { systemClock } from '../../core/clock.ts';
import { invariant } from '../../core/errors.ts';
import type { ClientRequest, Message, NodeId } from '../protocol.ts';
import { FrameTooLargeError, NO_FRAME, FrameDecoder, encodeFrame } from './framing.ts';
import { FrameWriter } from './frame-writer.ts';
import { HelloVerifier, type HelloKeys } from './hello-auth.ts';
import type { ConnectionLimits } from './limits.ts';
import { parseFrame, type HelloRejectReason, type InboundStatus, type NodeStatus } from './wire.ts';

/** What the node does with what its connections deliver. */
export interface InboundHandler {
  /** A message from an authenticated peer whose MAC verified under its sender's key. */
  onMessage(message: Message): void;
  /** A request on a connection that proved it speaks for the request's client id. */
  onClientRequest(request: ClientRequest): void;
  status(): NodeStatus;
}

export interface InboundOptions {
  readonly self: NodeId;
  readonly replicaCount: number;
  readonly limits: ConnectionLimits;
  readonly keys: HelloKeys;
  /** The protocol's own check (env.auth.verify): MAC valid under the key of `message.from`. */
  readonly verifyMessage: (message: Message) => boolean;
  readonly handler: InboundHandler;
  readonly log?: (line: string) => void;
}

type ConnectionState = 'unauthenticated' | 'peer' | 'client' | 'admin' | 'closed';

const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  unauthenticated: ['peer', 'client', 'admin', 'closed'],
  peer: ['closed'],
  client: ['closed'],
  admin: ['closed'],
  closed: [],
};

class Connection {
  state: ConnectionState = 'unauthenticated';
  /** The replica a peer connection proved to be. */
  peer: NodeId = -1;
  /** The client ids a client connection proved it speaks for. */
  readonly clients = new Set<number>();
  /** Bytes of this connection in the node's total (its decoder's, as of the last read). */
  buffered = 0;
  /** When recent messages failed verification (ms), oldest first; never more than authFailuresMax. */
  readonly authFailures: number[] = [];
  helloTimer: NodeJS.Timeout | null = null;
  readonly writer: FrameWriter;

  constructor(
    readonly socket: Socket,
    readonly decoder: FrameDecoder,
  ) {
    this.writer = new FrameWriter(socket);
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  get label(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}${this.state === 'peer' ? ` (node ${this.peer})` : ''}`;
  }
}

const nowMs = (): number => systemClock.nowUs() / 1000;

export class InboundConnections {
  private readonly connections = new Set<Connection>();
  /** Which connection carries replies for a client id: the last one that proved it. */
  private readonly routes = new Map<number, Connection>();
  private readonly verifier: HelloVerifier;
  private readonly limits: ConnectionLimits;
  private unauthenticatedOpen = 0;
  private bufferedTotal = 0;
  private bufferedPeak = 0;
  private closedWriterWrites = 0;
  private stopped = false;
  private counts = { connectionsRejected: 0, connectionsClosedMemory: 0, connectionsClosedAuth: 0, hellosRejected: 0, messagesAuthFailed: 0, framesRejected: 0 };
  private readonly hellosRejectedByReason: Partial<Record<HelloRejectReason, number>> = {};

  constructor(private readonly options: InboundOptions) {
    this.limits = options.limits;
    this.verifier = new HelloVerifier(options.keys, options.self, options.replicaCount, options.limits);
  }

  accept(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.limits.connectionsMax || this.unauthenticatedOpen >= this.limits.unauthenticatedConnectionsMax) {
      this.counts.connectionsRejected++;
      this.log(`refusing a connection from ${socket.remoteAddress}:${socket.remotePort}: ${this.connections.size} open, ${this.unauthenticatedOpen} of them unauthenticated`);
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const conn = new Connection(socket, new FrameDecoder(this.limits.unauthenticatedFrameBytesMax));
    this.connections.add(conn);
    this.unauthenticatedOpen++;
    conn.helloTimer = setTimeout(() => {
      conn.helloTimer = null;
      if (conn.state === 'unauthenticated') this.rejectHello(conn, 'timeout');
    }, this.limits.helloTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', () => {});
    socket.on('close', () => this.close(conn));
  }

  /** The connection replies for `clientId` go to, if one proved that id and is still open. */
  writerFor(clientId: number): FrameWriter | undefined {
    return this.routes.get(clientId)?.writer;
  }

  get framesRejected(): number {
    return this.counts.framesRejected;
  }

  /** Socket writes on accepted connections so far, closed ones included. */
  get socketWrites(): number {
    let writes = this.closedWriterWrites;
    for (const conn of this.connections) writes += conn.writer.writes;
    return writes;
  }

  status(): InboundStatus {
    const byRole = { unauthenticated: 0, peer: 0, client: 0, admin: 0 };
    for (const conn of this.connections) if (conn.state !== 'closed') byRole[conn.state]++;
    const { framesRejected: _frames, ...counts } = this.counts;
    return {
      connectionsOpen: this.connections.size,
      connectionsOpenByRole: byRole,
      ...counts,
      hellosRejectedByReason: { ...this.hellosRejectedByReason },
      inboundBufferedBytes: this.bufferedTotal,
      inboundBufferedBytesPeak: this.bufferedPeak,
    };
  }

  closeAll(): void {
    this.stopped = true;
    for (const conn of [...this.connections]) this.close(conn);
  }

  private onData(conn: Connection, chunk: Buffer): void {
    if (conn.closed) return;
    conn.decoder.append(chunk);
    // One frame at a time: a hello raises the frame limit for the frames behind it in the chunk.
    for (;;) {
      let raw: unknown;
      try {
        raw = conn.decoder.next();
      } catch (error) {
        this.onFramingError(conn, error);
        return;
      }
      if (raw === NO_FRAME) break;
      this.onFrame(conn, raw);
      if (conn.closed) return;
    }
    this.account(conn);
  }

  /** Brings the node's total up to date with what this connection holds now, or closes it. */
  private account(conn: Connection): void {
    const held = conn.decoder.bufferedBytes;
    const total = this.bufferedTotal - conn.buffered + held;
    if (total > this.limits.inboundBytesMax) {
      this.counts.connectionsClosedMemory++;
      this.log(`closing ${conn.label}: ${held} bytes buffered would take the node to ${total} of ${this.limits.inboundBytesMax}`);
      this.close(conn);
      return;
    }
    this.bufferedTotal = total;
    conn.buffered = held;
    if (total > this.bufferedPeak) this.bufferedPeak = total;
  }

  private onFramingError(conn: Connection, error: unknown): void {
    if (conn.state === 'unauthenticated') {
      this.rejectHello(conn, error instanceof FrameTooLargeError ? 'frame_too_large' : 'bad_frame');
      return;
    }
    // The stream is out of sync after a bad header: nothing later on it can be trusted.
    this.counts.framesRejected++;
    this.log(`closing ${conn.label}: ${(error as Error).message}`);
    this.close(conn);
  }

  private onFrame(conn: Connection, raw: unknown): void {
    switch (conn.state) {
      case 'unauthenticated':
        return this.onHello(conn, raw);
      case 'peer':
        return this.onPeerFrame(conn, raw);
      case 'client':
        return this.onClientFrame(conn, raw);
      case 'admin':
        return this.onAdminFrame(conn, raw);
      case 'closed':
        return;
    }
  }

  private onHello(conn: Connection, raw: unknown): void {
    const verdict = this.verifier.verify(raw);
    if (!verdict.ok) {
      this.rejectHello(conn, verdict.reason);
      return;
    }
    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    conn.decoder.setMaxFrameBytes(this.limits.frameBytesMax);
    const identity = verdict.identity;
    this.enter(conn, identity.role);
    if (identity.role === 'peer') conn.peer = identity.node;
    else if (identity.role === 'client') this.addClients(conn, identity.clients);
  }

  private onPeerFrame(conn: Connection, raw: unknown): void {
    const frame = parseFrame(raw);
    if (frame?.t === 'msg' || frame?.t === 'fwd') {
      const message = frame.m;
      // Own messages only under `msg`: a peer speaks for itself, relays are marked as such.
      if (frame.t === 'msg' && message.from !== conn.peer) return this.authFailure(conn, `a message from ${message.from}`);
      if (!this.options.verifyMessage(message)) return this.authFailure(conn, `a ${message.type} from ${message.from} with a bad MAC`);
      this.options.handler.onMessage(message);
      return;
    }
    this.counts.framesRejected++;
  }

  private onClientFrame(conn: Connection, raw: unknown): void {
    if (typeof raw === 'object' && raw !== null && (raw as { t?: unknown }).t === 'hello') {
      // More ids than one hello may carry come in further hellos, each checked like the first.
      const verdict = this.verifier.verify(raw);
      if (verdict.ok && verdict.identity.role === 'client') this.addClients(conn, verdict.identity.clients);
      else this.rejectHello(conn, verdict.ok ? 'malformed' : verdict.reason);
      return;
    }
    const frame = parseFrame(raw);
    if (frame?.t === 'req' && conn.clients.has(frame.r.clientId)) {
      this.routes.set(frame.r.clientId, conn);
      this.options.handler.onClientRequest(frame.r);
      return;
    }
    this.counts.framesRejected++;
  }

  private onAdminFrame(conn: Connection, raw: unknown): void {
    if (parseFrame(raw)?.t === 'status') {
      conn.writer.write(encodeFrame({ t: 'status_ok', s: this.options.handler.status() }, this.limits.frameBytesMax));
      return;
    }
    this.counts.framesRejected++;
  }

  private addClients(conn: Connection, clients: readonly number[]): void {
    for (const clientId of clients) {
      conn.clients.add(clientId);
      this.routes.set(clientId, conn);
    }
  }

  private authFailure(conn: Connection, what: string): void {
    this.counts.messagesAuthFailed++;
    const now = nowMs();
    const failures = conn.authFailures;
    failures.push(now);
    while ((failures[0] as number) < now - this.limits.authFailureWindowMs) failures.shift();
    if (failures.length < this.limits.authFailuresMax) return;
    this.counts.connectionsClosedAuth++;
    this.log(`closing ${conn.label}: ${failures.length} messages failed verification within ${this.limits.authFailureWindowMs} ms, the last ${what}`);
    this.close(conn);
  }

  private rejectHello(conn: Connection, reason: HelloRejectReason): void {
    this.counts.hellosRejected++;
    this.hellosRejectedByReason[reason] = (this.hellosRejectedByReason[reason] ?? 0) + 1;
    this.log(`closing ${conn.label}: hello rejected (${reason})`);
    this.close(conn);
  }

  private enter(conn: Connection, state: ConnectionState): void {
    invariant(TRANSITIONS[conn.state].includes(state), `connection ${conn.label}: no transition from ${conn.state} to ${state}`);
    if (conn.state === 'unauthenticated') this.unauthenticatedOpen--;
    conn.state = state;
  }

  /** Idempotent: the socket's own 'close' event comes back here. */
  private close(conn: Connection): void {
    if (conn.closed) return;
    this.enter(conn, 'closed');
    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    this.bufferedTotal -= conn.buffered;
    conn.buffered = 0;
    for (const clientId of conn.clients) if (this.routes.get(clientId) === conn) this.routes.delete(clientId);
    this.connections.delete(conn);
    this.closedWriterWrites += conn.writer.writes;
    conn.socket.destroy();
  }

  private log(line: string): void {
    this.options.log?.(`node ${this.options.self}: ${line}`);
  }
}
