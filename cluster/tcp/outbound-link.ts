/**
 * One outbound TCP connection to a node, kept alive across the peer's restarts: it reconnects
 * with capped exponential backoff, sends a freshly made `hello` on every connection (a hello is
 * good for one connection: its nonce may not be used twice), and holds frames
 * written while disconnected in a bounded queue. Consensus protocols retransmit on timeout, so
 * when the queue is full the oldest frames are dropped (and counted) rather than growing memory
 * without bound while a peer is down.
 *
 * Frames written in the same tick are coalesced into one socket write: a broadcast-heavy
 * protocol sends many small frames, and one syscall per frame would dominate the cost.
 */
import { Socket } from 'node:net';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encodeFrame } from './framing.ts';

export interface OutboundLinkOptions {
  readonly host: string;
  readonly port: number;
  /** The frames sent first on every (re)connection, made anew each time (see hello-auth.ts). */
  readonly hello: () => readonly unknown[];
  /** Frames received on this connection (replies, status answers). */
  readonly onFrame?: (frame: unknown) => void;
  readonly onConnectedChange?: (connected: boolean) => void;
  readonly maxQueuedBytes?: number;
  readonly maxFrameBytes?: number;
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
}

const DEFAULT_MAX_QUEUED_BYTES = 32 * 1024 * 1024;

export class OutboundLink {
  private socket: Socket | null = null;
  private connected = false;
  private closed = false;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly maxQueuedBytes: number;
  private readonly maxFrameBytes: number;
  /** Frames dropped because the queue or the socket buffer was full. */
  dropped = 0;
  /** Frames handed to the socket. */
  sent = 0;
  /** Socket writes so far (one per flushed batch of frames). */
  writes = 0;
  /** Connection failures or drops seen so far (a dead peer keeps counting). */
  connectionErrors = 0;

  constructor(private readonly options: OutboundLinkOptions) {
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.retryMs = options.reconnectMinMs ?? 20;
    this.connect();
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** Encodes and sends; see `sendEncoded` for the drop policy. */
  send(frame: unknown): void {
    this.sendEncoded(encodeFrame(frame, this.maxFrameBytes));
  }

  /** Sends an already-encoded frame (a broadcast encodes once for all peers). */
  sendEncoded(frame: Buffer): void {
    if (this.closed) return;
    const socketBacklog = this.socket?.writableLength ?? 0;
    if (this.queuedBytes + socketBacklog + frame.length > this.maxQueuedBytes) {
      if (!this.connected) {
        // Peer down: keep the newest frames, they are the ones a recovering peer can still use.
        while (this.queue.length > 0 && this.queuedBytes + frame.length > this.maxQueuedBytes) {
          const oldest = this.queue.shift();
          if (oldest !== undefined) this.queuedBytes -= oldest.length;
          this.dropped++;
        }
      } else {
        // Peer up but not reading fast enough: shed the new frame, the protocol will retransmit.
        this.dropped++;
        return;
      }
    }
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (this.connected) this.scheduleFlush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.socket?.destroy();
    this.socket = null;
    this.setConnected(false);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const socket = this.socket;
    if (!this.connected || socket === null || this.queue.length === 0) return;
    const batch = this.queue.length === 1 ? (this.queue[0] as Buffer) : Buffer.concat(this.queue, this.queuedBytes);
    this.sent += this.queue.length;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.writes++;
    socket.write(batch);
  }

  private connect(): void {
    if (this.closed) return;
    const socket = new Socket();
    this.socket = socket;
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(this.maxFrameBytes);
    socket.on('connect', () => {
      this.retryMs = this.options.reconnectMinMs ?? 20;
      socket.write(Buffer.concat(this.options.hello().map((frame) => encodeFrame(frame, this.maxFrameBytes))));
      this.setConnected(true);
      this.flush();
    });
    socket.on('data', (chunk: Buffer) => {
      let frames: unknown[];
      try {
        frames = decoder.push(chunk);
      } catch {
        // A peer that breaks framing is out of sync for good on this connection: start over.
        socket.destroy();
        return;
      }
      const onFrame = this.options.onFrame;
      if (onFrame !== undefined) for (const frame of frames) onFrame(frame);
    });
    socket.on('error', () => {
      this.connectionErrors++;
    });
    socket.on('close', () => {
      if (this.socket === socket) this.socket = null;
      this.setConnected(false);
      this.scheduleReconnect();
    });
    socket.connect(this.options.port, this.options.host);
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer !== null) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.options.reconnectMaxMs ?? 500);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  private setConnected(connected: boolean): void {
    if (this.connected === connected) return;
    this.connected = connected;
    this.options.onConnectedChange?.(connected);
  }
}
