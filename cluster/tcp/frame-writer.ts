/**
 * Writes frames to an accepted socket, coalescing all frames of one tick into one write (many
 * small replies otherwise cost one syscall each) and shedding frames once the socket's backlog
 * passes a bound: a client that stops reading must not grow a replica's memory.
 */
import type { Socket } from 'node:net';

export class FrameWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  dropped = 0;
  /** Socket writes so far (one per flushed batch of frames). */
  writes = 0;

  constructor(
    private readonly socket: Socket,
    private readonly maxBacklogBytes = 32 * 1024 * 1024,
  ) {}

  write(frame: Buffer): void {
    if (this.socket.destroyed) return;
    if (this.socket.writableLength + this.pendingBytes + frame.length > this.maxBacklogBytes) {
      this.dropped++;
      return;
    }
    this.pending.push(frame);
    this.pendingBytes += frame.length;
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0 || this.socket.destroyed) return;
    const batch = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    this.writes++;
    this.socket.write(batch);
  }
}
