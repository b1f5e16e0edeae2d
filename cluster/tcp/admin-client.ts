/** One-shot status query to a node over its TCP port (readiness checks, tests, `cluster status`). */
import { Socket } from 'node:net';
import { TransportError } from '../../core/errors.ts';
import { FrameDecoder, encodeFrame } from './framing.ts';
import { parseFrame, type NodeStatus } from './wire.ts';

export function queryStatus(host: string, port: number, timeoutMs = 1000): Promise<NodeStatus> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const decoder = new FrameDecoder();
    let settled = false;
    const finish = (error: Error | null, status?: NodeStatus): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error !== null) reject(error);
      else resolve(status as NodeStatus);
    };
    const timer = setTimeout(() => finish(new TransportError('TRANSPORT_UNAVAILABLE', `no status from ${host}:${port} within ${timeoutMs} ms`, { retriable: true })), timeoutMs);
    socket.on('connect', () => {
      socket.write(Buffer.concat([encodeFrame({ t: 'hello', role: 'admin' }), encodeFrame({ t: 'status' })]));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const raw of decoder.push(chunk)) {
          const frame = parseFrame(raw);
          if (frame?.t === 'status_ok') finish(null, frame.s);
        }
      } catch (error) {
        finish(error as Error);
      }
    });
    socket.on('error', (error) => finish(new TransportError('TRANSPORT_UNAVAILABLE', `status query to ${host}:${port} failed: ${error.message}`, { retriable: true, cause: error })));
    socket.on('close', () => finish(new TransportError('TRANSPORT_UNAVAILABLE', `${host}:${port} closed the connection before answering`, { retriable: true })));
    socket.connect(port, host);
  });
}
