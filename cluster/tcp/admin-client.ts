/** One-shot status query to a node over its TCP port (readiness checks, tests, `cluster status`). */
import { Socket } from 'node:net';
import { TransportError } from '../../core/errors.ts';
import type { NodeId } from '../protocol.ts';
import { FrameDecoder, encodeFrame } from './framing.ts';
import { adminHello, helloKeysFromSecret } from './hello-auth.ts';
import { parseFrame, type NodeStatus } from './wire.ts';

export interface StatusTarget {
  readonly host: string;
  readonly port: number;
  /** The node listening there: the admin hello is addressed to it. */
  readonly node: NodeId;
  /** A node answers only an admin hello under a key derived from this. */
  readonly clusterSecret: string;
}

export function queryStatus(target: StatusTarget, timeoutMs = 1000): Promise<NodeStatus> {
  const { host, port } = target;
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
      const hello = adminHello(helloKeysFromSecret(target.clusterSecret), target.node);
      socket.write(Buffer.concat([encodeFrame(hello), encodeFrame({ t: 'status' })]));
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
    // A node closes at once on a hello it refuses (wrong secret, wrong node): retriable, as the
    // usual cause is a node that is still starting or a cluster file from an earlier run.
    socket.on('close', () => finish(new TransportError('TRANSPORT_UNAVAILABLE', `${host}:${port} closed the connection before answering (not up yet, or it refused the admin hello)`, { retriable: true })));
    socket.connect(port, host);
  });
}
