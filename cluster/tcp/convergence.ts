/**
 * Waits until the reachable nodes of a cluster agree: same number of executed operations and the
 * same state digest. Clients finish after a quorum of replies, so slower replicas may still be
 * executing when a load run returns; this is the check to run before comparing states.
 */
import { systemClock } from '../../core/clock.ts';
import { LatticeError } from '../../core/errors.ts';
import type { NodeStatus } from './wire.ts';

export interface Convergence {
  readonly converged: boolean;
  readonly statuses: readonly NodeStatus[];
}

export async function waitForConvergence(
  statusOf: () => Promise<readonly NodeStatus[]>,
  opts: { readonly expectNodes: number; readonly timeoutMs?: number },
): Promise<Convergence> {
  const deadlineUs = systemClock.nowUs() + (opts.timeoutMs ?? 10_000) * 1000;
  for (;;) {
    const statuses = await statusOf();
    const first = statuses[0];
    const agreed =
      first !== undefined &&
      statuses.length === opts.expectNodes &&
      statuses.every((s) => s.executed === first.executed && s.stateDigest === first.stateDigest && s.digestsMatch);
    if (agreed) return { converged: true, statuses };
    if (systemClock.nowUs() > deadlineUs) return { converged: false, statuses };
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

export function assertConverged(result: Convergence): readonly NodeStatus[] {
  if (!result.converged) {
    const summary = result.statuses.map((s) => `node ${s.node}: executed ${s.executed}, digest ${s.stateDigest.slice(0, 12)}`).join('; ');
    throw new LatticeError('CLUSTER_INVARIANT_VIOLATED', `nodes did not converge: ${summary}`);
  }
  return result.statuses;
}
