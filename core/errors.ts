/**
 * One small error hierarchy for all of Lattice. Every error carries a stable `code` (for logs,
 * metrics and tests), a `retriable` flag (callers decide whether to back off and try again from
 * this flag alone, never from the message) and an optional `cause`.
 */
export type ErrorCode =
  | 'VALIDATION_FAILED'
  | 'CONFIG_INVALID'
  | 'STORE_UNAVAILABLE'
  | 'STORE_QUERY_FAILED'
  | 'STORE_REJECTED'
  | 'MIGRATION_FAILED'
  | 'TRANSPORT_UNAVAILABLE'
  | 'TRANSPORT_FAILED'
  | 'CLUSTER_INVARIANT_VIOLATED'
  | 'SCENARIO_INVALID'
  | 'FEATURE_SPEC_MISMATCH'
  | 'ARTEFACT_INVALID'
  | 'ARTEFACT_CHECKSUM_MISMATCH'
  | 'NOT_FOUND';

export class LatticeError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** One problem with one field of an input, e.g. `{ path: 'node', message: 'expected an integer >= 0' }`. */
export interface FieldError {
  readonly path: string;
  readonly message: string;
}

export class ValidationError extends LatticeError {
  readonly fieldErrors: readonly FieldError[];

  constructor(what: string, fieldErrors: readonly FieldError[]) {
    super('VALIDATION_FAILED', `${what} is invalid: ${formatFieldErrors(fieldErrors)}`);
    this.fieldErrors = fieldErrors;
  }
}

export class ConfigError extends LatticeError {
  readonly fieldErrors: readonly FieldError[];

  constructor(fieldErrors: readonly FieldError[], source: string) {
    super('CONFIG_INVALID', `configuration from ${source} is invalid: ${formatFieldErrors(fieldErrors)}`);
    this.fieldErrors = fieldErrors;
  }
}

export class StoreError extends LatticeError {}
export class TransportError extends LatticeError {}
export class ClusterInvariantError extends LatticeError {
  constructor(message: string) {
    super('CLUSTER_INVARIANT_VIOLATED', message);
  }
}
export class ScenarioError extends LatticeError {
  readonly fieldErrors: readonly FieldError[];

  constructor(source: string, fieldErrors: readonly FieldError[]) {
    super('SCENARIO_INVALID', `scenario ${source} is invalid: ${formatFieldErrors(fieldErrors)}`);
    this.fieldErrors = fieldErrors;
  }
}

export function formatFieldErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => `${e.path || '(root)'}: ${e.message}`).join('; ');
}

/** Unknown errors are not retriable: retrying a bug only hides it. */
export function isRetriable(error: unknown): boolean {
  return error instanceof LatticeError && error.retriable;
}

/** Asserts an invariant; stays on in production, because continuing past a broken invariant corrupts data. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new ClusterInvariantError(message);
}
