/**
 * Where a process of a TCP cluster finds the cluster secret (replica and client keys derive from
 * it): $LATTICE_CLUSTER_SECRET, else the file a caller names (a cluster file's `secret_file`),
 * else the file named by $LATTICE_CLUSTER_SECRET_FILE (set by `cluster up` for its nodes).
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../core/errors.ts';
import { SECRET_ENV, SECRET_FILE_ENV } from './node-args.ts';

export function readClusterSecret(secretFile?: string): string {
  const direct = process.env[SECRET_ENV];
  if (direct !== undefined && direct.length > 0) return direct;
  const file = secretFile ?? process.env[SECRET_FILE_ENV];
  if (file === undefined || file.length === 0) {
    throw new ConfigError([{ path: SECRET_ENV, message: `set ${SECRET_ENV} or ${SECRET_FILE_ENV} (or start the cluster with \`lattice cluster up\`)` }], 'the environment');
  }
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError([{ path: SECRET_FILE_ENV, message: `cannot read the cluster secret from ${file}: ${(error as Error).message}` }], 'the environment');
  }
}
