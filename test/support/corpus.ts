/** A small corpus specification for tests (4 short runs: 2 seeds × 2 protocols, one of each fault-free). */
/** A valid spec; tests override what they exercise. */
export const TINY_SPEC = {
  name: 'tiny',
  protocols: ['pbft', 'epaxos'],
  seeds: { base: 7, count: 2 },
  duration_ms: 4000,
  fault_free_share: 0.5,
  episodes: { count: [2, 2], duration_ms: [200, 400], lead_ms_min: 600, gap_ms_min: 800, tail_ms_min: 1000, recovery_ms: 300 },
  families: [
    { name: 'crash', faults: [{ kind: 'crash' }] },
    { name: 'lossy', faults: [{ kind: 'drop', target: 'all', rate: [0.05, 0.1] }] },
    { name: 'cut-off', faults: [{ kind: 'partition' }] },
  ],
  loads: [{ name: 'steady', clients: [2, 3], think_ms: [0.5, 1], keys: [4, 8], read_share: [0.3, 0.5] }],
  noise: { drop: [0, 0.001], jitter: [0.2, 0.4] },
};

