/**
 * Every bound on what a node accepts from its connections, in one validated object. The defaults
 * keep a node's inbound memory to about inboundBytesMax (64 MiB) whatever connects to it, and
 * what an unauthenticated party can make it hold to unauthenticatedConnectionsMax ×
 * unauthenticatedFrameBytesMax (64 × 16 KiB = 1 MiB), far inside that budget, so strangers cannot
 * use the budget up and starve the peers.
 */
import { ConfigError, type FieldError } from '../../core/errors.ts';
import { DEFAULT_MAX_FRAME_BYTES } from './framing.ts';

export interface ConnectionLimits {
  /** Largest frame on an authenticated connection: a PBFT NEW-VIEW with certificates or a
   * state-transfer snapshot must fit. Also the largest frame this node sends. */
  readonly frameBytesMax: number;
  /** Largest frame before the connection has authenticated: a hello of helloClientsMax ids. */
  readonly unauthenticatedFrameBytesMax: number;
  /** Accepted connections open at once (peers, clients, admin, not yet authenticated). */
  readonly connectionsMax: number;
  /** Of those, connections that have not yet sent a valid hello. */
  readonly unauthenticatedConnectionsMax: number;
  /** Bytes held in partial frames across all connections; the connection that would pass it is
   * closed. */
  readonly inboundBytesMax: number;
  /** A connection must authenticate within this long of being accepted. */
  readonly helloTimeoutMs: number;
  /** Client ids one client hello may claim (each with its own MAC). */
  readonly helloClientsMax: number;
  /** How far a hello's timestamp may be from this node's clock (either way). */
  readonly helloFreshnessMs: number;
  /** Nonces of accepted hellos remembered (for helloFreshnessMs) to refuse replays. */
  readonly helloNoncesMax: number;
  /** Messages failing verification on one peer connection within authFailureWindowMs that
   * close it. */
  readonly authFailuresMax: number;
  readonly authFailureWindowMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = Object.freeze({
  frameBytesMax: DEFAULT_MAX_FRAME_BYTES,
  unauthenticatedFrameBytesMax: 16 * 1024,
  connectionsMax: 256,
  unauthenticatedConnectionsMax: 64,
  inboundBytesMax: 64 * 1024 * 1024,
  helloTimeoutMs: 5_000,
  helloClientsMax: 256,
  helloFreshnessMs: 60_000,
  helloNoncesMax: 65_536,
  authFailuresMax: 10,
  authFailureWindowMs: 10_000,
});

/**
 * Upper bound on the encoded size of a client hello with `clients` ids: each id at most 16 digits
 * (2^53), each tag 22 base64url characters, plus the fixed fields. Used to check that the
 * unauthenticated frame limit admits the largest hello the id limit allows.
 */
export function clientHelloBytesBound(clients: number): number {
  const perClient = 16 + 1 + (22 + 2 + 1);
  const fixed = 4 + 200;
  return fixed + clients * perClient;
}

/** Defaults overridden by `overrides`, checked field by field; throws ConfigError naming each. */
export function resolveConnectionLimits(overrides: Partial<ConnectionLimits> = {}, source = 'the connection limits'): ConnectionLimits {
  const limits: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, ...overrides };
  const errors: FieldError[] = [];
  const valid = new Set<keyof ConnectionLimits>();
  for (const key of Object.keys(DEFAULT_CONNECTION_LIMITS) as Array<keyof ConnectionLimits>) {
    const value = limits[key];
    if (Number.isSafeInteger(value) && value > 0) valid.add(key);
    else errors.push({ path: key, message: `expected a positive integer, got ${String(value)}` });
  }
  for (const key of Object.keys(overrides)) {
    if (!(key in DEFAULT_CONNECTION_LIMITS)) errors.push({ path: key, message: 'is not a connection limit' });
  }
  const both = (a: keyof ConnectionLimits, b: keyof ConnectionLimits): boolean => valid.has(a) && valid.has(b);
  if (both('unauthenticatedFrameBytesMax', 'frameBytesMax') && limits.unauthenticatedFrameBytesMax > limits.frameBytesMax) {
    errors.push({ path: 'unauthenticatedFrameBytesMax', message: `must not exceed frameBytesMax (${limits.frameBytesMax})` });
  }
  // One frame of the largest size must be able to arrive, or big legitimate frames never could.
  if (both('frameBytesMax', 'inboundBytesMax') && limits.frameBytesMax > limits.inboundBytesMax) {
    errors.push({ path: 'inboundBytesMax', message: `must be at least frameBytesMax (${limits.frameBytesMax})` });
  }
  if (both('unauthenticatedConnectionsMax', 'connectionsMax') && limits.unauthenticatedConnectionsMax > limits.connectionsMax) {
    errors.push({ path: 'unauthenticatedConnectionsMax', message: `must not exceed connectionsMax (${limits.connectionsMax})` });
  }
  const helloBytes = clientHelloBytesBound(limits.helloClientsMax);
  if (both('helloClientsMax', 'unauthenticatedFrameBytesMax') && helloBytes > limits.unauthenticatedFrameBytesMax) {
    errors.push({ path: 'helloClientsMax', message: `a hello of ${limits.helloClientsMax} ids can take ${helloBytes} bytes, over unauthenticatedFrameBytesMax (${limits.unauthenticatedFrameBytesMax})` });
  }
  if (errors.length > 0) throw new ConfigError(errors, source);
  return Object.freeze(limits);
}
