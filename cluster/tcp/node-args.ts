/**
 * The command line of one node process, shared by the manager (which builds it) and node-main
 * (which parses it), so the two cannot drift apart.
 */
import { parseArgs } from 'node:util';
import { ConfigError, type FieldError } from '../../core/errors.ts';
import { DEFAULT_PROTOCOL_OPTIONS, type ProtocolOptions } from '../protocol.ts';
import { resolveConnectionLimits, type ConnectionLimits } from './limits.ts';
import { isTcpProtocolName, type TcpProtocolName } from './protocols.ts';

export type TraceMode = 'ndjson' | 'off';

export interface NodeArgs {
  readonly node: number;
  readonly protocol: TcpProtocolName;
  readonly ports: readonly number[];
  /** Where the other replicas are reached. */
  readonly host: string;
  /** The address this node listens on (127.0.0.1 unless told otherwise). */
  readonly listenHost: string;
  readonly runId: string;
  readonly runDir: string;
  readonly trace: TraceMode;
  /** Module exporting `createTraceSink` (see trace-output.ts); overrides `trace`. */
  readonly traceSinkModule: string | null;
  readonly options: ProtocolOptions;
  /** Overrides of the connection limits (limits.ts); {} for the defaults. */
  readonly limits: Partial<ConnectionLimits>;
  /** Exit when this process is gone (a cluster owned by a test or a bench must not outlive it). */
  readonly exitWithParent: number | null;
}

/** Env var carrying the cluster secret directly, or the path of a file holding it. */
export const SECRET_ENV = 'LATTICE_CLUSTER_SECRET';
export const SECRET_FILE_ENV = 'LATTICE_CLUSTER_SECRET_FILE';

export function formatNodeArgs(args: NodeArgs): string[] {
  const argv = [
    '--node', String(args.node),
    '--protocol', args.protocol,
    '--ports', args.ports.join(','),
    '--host', args.host,
    '--listen-host', args.listenHost,
    '--run-id', args.runId,
    '--run-dir', args.runDir,
    '--trace', args.trace,
    '--options', JSON.stringify(args.options),
  ];
  if (args.traceSinkModule !== null) argv.push('--trace-sink-module', args.traceSinkModule);
  if (Object.keys(args.limits).length > 0) argv.push('--limits', JSON.stringify(args.limits));
  if (args.exitWithParent !== null) argv.push('--exit-with-parent', String(args.exitWithParent));
  return argv;
}

export function parseNodeArgs(argv: readonly string[]): NodeArgs {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      node: { type: 'string' },
      protocol: { type: 'string' },
      ports: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      'listen-host': { type: 'string', default: '127.0.0.1' },
      'run-id': { type: 'string' },
      'run-dir': { type: 'string' },
      trace: { type: 'string', default: 'ndjson' },
      'trace-sink-module': { type: 'string' },
      options: { type: 'string' },
      limits: { type: 'string' },
      'exit-with-parent': { type: 'string' },
    },
    strict: true,
  });
  const errors: FieldError[] = [];
  const node = Number(values.node);
  const ports = (values.ports ?? '').split(',').map(Number);
  if (!ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536)) errors.push({ path: 'ports', message: 'expected a comma-separated list of TCP ports' });
  if (!Number.isInteger(node) || node < 0 || node >= ports.length) errors.push({ path: 'node', message: `expected an integer in 0..${ports.length - 1}` });
  const protocol = values.protocol ?? '';
  if (!isTcpProtocolName(protocol)) errors.push({ path: 'protocol', message: 'expected pbft, epaxos or toy' });
  if (!values['run-id']) errors.push({ path: 'run-id', message: 'is required' });
  if (!values['run-dir']) errors.push({ path: 'run-dir', message: 'is required' });
  const trace = values.trace;
  if (trace !== 'ndjson' && trace !== 'off') errors.push({ path: 'trace', message: 'expected ndjson or off' });
  let options: ProtocolOptions = DEFAULT_PROTOCOL_OPTIONS;
  if (values.options !== undefined) {
    try {
      options = { ...DEFAULT_PROTOCOL_OPTIONS, ...(JSON.parse(values.options) as Partial<ProtocolOptions>) };
    } catch {
      errors.push({ path: 'options', message: 'expected JSON protocol options' });
    }
  }
  let limits: Partial<ConnectionLimits> = {};
  if (values.limits !== undefined) {
    try {
      const parsed: unknown = JSON.parse(values.limits);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new TypeError('not an object');
      limits = parsed as Partial<ConnectionLimits>;
    } catch {
      errors.push({ path: 'limits', message: 'expected a JSON object of connection limits' });
    }
    try {
      resolveConnectionLimits(limits);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const e of error.fieldErrors) errors.push({ path: `limits.${e.path}`, message: e.message });
    }
  }
  const exitWithParent = values['exit-with-parent'] === undefined ? null : Number(values['exit-with-parent']);
  if (exitWithParent !== null && !(Number.isInteger(exitWithParent) && exitWithParent > 0)) errors.push({ path: 'exit-with-parent', message: 'expected a pid' });
  if (errors.length > 0) throw new ConfigError(errors, 'the node command line');
  return {
    node,
    protocol: protocol as TcpProtocolName,
    ports,
    host: values.host ?? '127.0.0.1',
    listenHost: values['listen-host'] ?? '127.0.0.1',
    runId: values['run-id'] as string,
    runDir: values['run-dir'] as string,
    trace: trace as TraceMode,
    traceSinkModule: values['trace-sink-module'] ?? null,
    options,
    limits,
    exitWithParent,
  };
}
