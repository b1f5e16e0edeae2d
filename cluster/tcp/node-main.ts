/**
 * Entry point of one replica process:
 *   node --import tsx cluster/tcp/node-main.ts --node 0 --protocol pbft --ports 7001,7002,7003,7004 \
 *     --run-id R --run-dir .lattice/cluster/R [--trace ndjson|off] [--trace-sink-module M.ts]
 *     [--host 127.0.0.1] [--listen-host 127.0.0.1] [--limits '{"connectionsMax":256,...}']
 * The cluster secret comes from $LATTICE_CLUSTER_SECRET or the file named by
 * $LATTICE_CLUSTER_SECRET_FILE (written by `cluster up`). Prints one `LATTICE_NODE_READY {json}`
 * line once listening; SIGTERM/SIGINT flush the trace and exit 0. A protocol exception is a bug:
 * the process exits 1 rather than continue with a replica in an unknown state.
 */
import type { TraceSink } from '../../core/sink.ts';
import { parseNodeArgs } from './node-args.ts';
import { readClusterSecret } from './secret.ts';
import { startNode } from './node-process.ts';
import { loadProtocol } from './protocols.ts';
import { loadSinkFactory, ndjsonSinkFactory } from './trace-output.ts';

async function main(): Promise<void> {
  const args = parseNodeArgs(process.argv.slice(2));
  const protocol = await loadProtocol(args.protocol);
  const context = { node: args.node, runId: args.runId, runDir: args.runDir, protocol: protocol.name };
  let traceSink: TraceSink | null = null;
  if (args.traceSinkModule !== null) traceSink = await (await loadSinkFactory(args.traceSinkModule))(context);
  else if (args.trace === 'ndjson') traceSink = await ndjsonSinkFactory(context);
  const node = await startNode({
    id: args.node,
    protocol,
    ports: args.ports,
    host: args.host,
    listenHost: args.listenHost,
    runId: args.runId,
    clusterSecret: readClusterSecret(),
    options: args.options,
    traceSink,
    limits: args.limits,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    node.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`node ${args.node}: error while stopping: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  const parent = args.exitWithParent;
  if (parent !== null) {
    setInterval(() => {
      try {
        process.kill(parent, 0);
      } catch {
        shutdown();
      }
    }, 1000).unref();
  }
  process.stdout.write(`LATTICE_NODE_READY ${JSON.stringify({ node: args.node, port: node.port, pid: process.pid })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`lattice node failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(2);
});
