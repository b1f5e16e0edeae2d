/**
 * Resident memory of one node process under issue 13's attack: C connections each holding a
 * partial frame just under the 16 MiB frame limit. Two phases: (a) strangers, who send the frame
 * before any hello; (b) authenticated clients (valid hellos), who may send full-size frames, so
 * only the inbound-memory budget bounds them. RSS and peak RSS (VmHWM) from /proc, in MB, next to
 * the idle figure; the node's own counters when it reports them. Prints one JSON object.
 *
 * Standalone (not part of `npm run bench`: it pushes C × 16 MiB through loopback per phase):
 *   node --import tsx bench/tcp-inbound-memory.ts      LATTICE_BENCH_ATTACK_CONNECTIONS=100
 * The same file runs against an older checkout for the "before" figure (phase b then skips).
 */
import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { startCluster, statusOf } from '../cluster/tcp/cluster-manager.ts';
import { encodeFrame } from '../cluster/tcp/framing.ts';
import { readClusterSecret } from '../cluster/tcp/secret.ts';

const CONNECTIONS = Number(process.env.LATTICE_BENCH_ATTACK_CONNECTIONS ?? 100);
const FRAME_BYTES = 16 * 1024 * 1024;

function memoryMb(pid: number): { rss_mb: number; peak_rss_mb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss_mb: Math.round(kb('VmRSS') / 1024), peak_rss_mb: Math.round(kb('VmHWM') / 1024) };
}

const sleep = (ms: number): Promise<void> => new Promise((ok) => setTimeout(ok, ms));

/** Opens `count` connections to `port`, each sending `prefix()` then a frame header of
 * FRAME_BYTES and FRAME_BYTES - 1 payload bytes; resolves when every one has either been handed
 * to the kernel in full or closed by the node. (Which of the two says little: a write can
 * complete into the socket buffer before the node's close arrives; the node's counters tell.) */
async function attack(port: number, count: number, prefix: (i: number) => Buffer): Promise<Socket[]> {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(FRAME_BYTES, 0);
  const payload = Buffer.alloc(FRAME_BYTES - 1, 0x20);
  const sockets: Socket[] = [];
  await Promise.all(
    Array.from({ length: count }, (_, i) => new Promise<void>((done) => {
      const socket = new Socket();
      sockets.push(socket);
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        done();
      };
      socket.on('error', () => {});
      socket.on('close', settle);
      socket.connect(port, '127.0.0.1', () => {
        socket.write(Buffer.concat([prefix(i), header]));
        socket.write(payload, (error) => {
          if (error === undefined || error === null) settle();
        });
      });
    })),
  );
  return sockets;
}

async function main(): Promise<void> {
  const cluster = await startCluster({ protocol: 'toy', nodes: 1, trace: 'off' });
  const pid = cluster.info.pids[0] as number;
  const port = cluster.info.ports[0] as number;
  const secret = readClusterSecret(cluster.info.secret_file);
  const counters = async (): Promise<Record<string, unknown>> => {
    const [status] = await statusOf(cluster.info, 2000).catch(() => []);
    if (status === undefined) return {};
    const { connectionsRejected, connectionsClosedMemory, hellosRejected, inboundBufferedBytesPeak } = status as unknown as Record<string, unknown>;
    return { connectionsRejected, connectionsClosedMemory, hellosRejected, inboundBufferedBytesPeak };
  };
  const result: Record<string, unknown> = { connections: CONNECTIONS, frame_bytes: FRAME_BYTES };
  try {
    await sleep(500);
    result.idle = memoryMb(pid);

    const strangers = await attack(port, CONNECTIONS, () => Buffer.alloc(0));
    await sleep(500);
    result.strangers = { ...memoryMb(pid), ...(await counters()) };
    for (const socket of strangers) socket.destroy();
    await sleep(500);

    let helloAuth: typeof import('../cluster/tcp/hello-auth.ts') | null = null;
    try {
      helloAuth = await import('../cluster/tcp/hello-auth.ts');
    } catch {
      result.authenticated = 'skipped: this checkout has no hello authentication';
    }
    if (helloAuth !== null) {
      const keys = helloAuth.helloKeysFromSecret(secret);
      const clients = await attack(port, CONNECTIONS, (i) => encodeFrame(helloAuth.clientHellos(keys, [1_000_000 + i], 0)[0]));
      await sleep(500);
      result.authenticated = { ...memoryMb(pid), ...(await counters()), note: 'counters are cumulative over both phases' };
      for (const socket of clients) socket.destroy();
    }
  } finally {
    await cluster.stop();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
