/**
 * Length-prefixed JSON frames: a 4-byte big-endian payload length, then that many bytes of UTF-8
 * JSON. The length is checked against a maximum before anything is buffered, so a corrupt or
 * hostile peer cannot make a node allocate an arbitrary amount of memory.
 */
import { TransportError } from '../../core/errors.ts';

export const FRAME_HEADER_BYTES = 4;
/** Large enough for a PBFT NEW-VIEW with certificates or a state-transfer snapshot. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

export class FrameTooLargeError extends TransportError {
  constructor(
    readonly frameBytes: number,
    readonly maxFrameBytes: number,
  ) {
    super('TRANSPORT_FAILED', `frame of ${frameBytes} bytes exceeds the limit of ${maxFrameBytes} bytes`);
  }
}

export class FrameDecodeError extends TransportError {
  constructor(message: string, cause?: unknown) {
    super('TRANSPORT_FAILED', message, { cause });
  }
}

export function encodeFrame(value: unknown, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const json = JSON.stringify(value);
  const payloadBytes = Buffer.byteLength(json, 'utf8');
  if (payloadBytes > maxFrameBytes) throw new FrameTooLargeError(payloadBytes, maxFrameBytes);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes);
  frame.writeUInt32BE(payloadBytes, 0);
  frame.write(json, FRAME_HEADER_BYTES, 'utf8');
  return frame;
}

/** What `FrameDecoder.next` returns when no complete frame is buffered. */
export const NO_FRAME: unique symbol = Symbol('lattice.framing.no-frame');

/**
 * Turns a byte stream into frames. `push` returns the complete frames in the chunk (possibly none)
 * and keeps a partial tail for the next chunk; `append` and `next` do the same one frame at a
 * time, for a reader whose limit changes between frames (a node raises it once a connection has
 * authenticated, which may be in the middle of a chunk). Both throw FrameTooLargeError or
 * FrameDecodeError, after which the stream is out of sync and the connection must be dropped.
 */
export class FrameDecoder {
  /** Unconsumed bytes, kept as chunks so a large frame arriving in pieces is copied once. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Payload length of the frame being assembled, once its header is known. */
  private expected = -1;

  constructor(private maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  /** The limit for frames whose header has not been read yet. */
  setMaxFrameBytes(maxFrameBytes: number): void {
    this.maxFrameBytes = maxFrameBytes;
  }

  push(chunk: Buffer): unknown[] {
    this.append(chunk);
    const frames: unknown[] = [];
    for (let frame = this.next(); frame !== NO_FRAME; frame = this.next()) frames.push(frame);
    return frames;
  }

  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  next(): unknown {
    if (this.expected < 0) {
      if (this.buffered < FRAME_HEADER_BYTES) return NO_FRAME;
      const header = this.take(FRAME_HEADER_BYTES);
      const payloadBytes = header.readUInt32BE(0);
      if (payloadBytes > this.maxFrameBytes) throw new FrameTooLargeError(payloadBytes, this.maxFrameBytes);
      this.expected = payloadBytes;
    }
    if (this.buffered < this.expected) return NO_FRAME;
    const payload = this.take(this.expected);
    this.expected = -1;
    try {
      return JSON.parse(payload.toString('utf8'));
    } catch (error) {
      throw new FrameDecodeError(`frame of ${payload.length} bytes is not valid JSON`, error);
    }
  }

  /** Bytes held back waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Removes exactly `bytes` from the front (the caller checked they are there). */
  private take(bytes: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= bytes) {
      this.buffered -= bytes;
      if (first.length === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
      return first.subarray(0, bytes);
    }
    const all = Buffer.concat(this.chunks, this.buffered);
    this.buffered -= bytes;
    this.chunks = this.buffered === 0 ? [] : [all.subarray(bytes)];
    return all.subarray(0, bytes);
  }
}
