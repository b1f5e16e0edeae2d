import { describe, expect, it } from 'vitest';
import { validateMetricsSnapshot } from '../../core/metrics-snapshot.ts';
import { makeSnapshot } from '../support/snapshots.ts';

function errorsFor(input: unknown) {
  const result = validateMetricsSnapshot(input);
  if (result.ok) throw new Error('expected the snapshot to be rejected');
  return result.errors;
}

describe('metrics snapshot validator', () => {
  it('accepts replica and client snapshots', () => {
    expect(validateMetricsSnapshot(makeSnapshot()).ok).toBe(true);
    const client = makeSnapshot({ source: 'client', node: 7, peers: [], sent_to: [], received_from: [], quorum_last_peer: [], votes_from: [], vote_wait_us_sum: [], timer_names: [], timer_fired: [], quorums_completed: 0, quorum_wait_us_sum: 0, quorum_wait_us_max: 0, client_ops_completed: 12, client_latency_us_sum: 40_000, client_latency_us_max: 9_000, client_retries: 1 });
    expect(validateMetricsSnapshot(client).ok).toBe(true);
  });

  const badValues: Array<[string, unknown, RegExp]> = [
    ['record_type', 'metric', /metrics/],
    ['schema_version', 2, /expected 1/],
    ['source', 'server', /replica, client/],
    ['node', 70_000, /<= 65535/],
    ['snap_seq', -1, />= 0/],
    ['interval_us', 1.5, /integer/],
    ['peers', [1, -2], />= 0/],
    ['sent_to', 'many', /array/],
    ['rejected_bad_mac', -3, />= 0/],
    ['rejected_conflicting_pre_prepare', '2', /number/],
    ['timer_names', ['\ud800'], /surrogate/],
    ['faults', ['meteor'], /one of/],
    ['recovering', 'no', /true or false/],
  ];
  it.each(badValues)('rejects a bad %s (%j) naming the field', (field, value, reason) => {
    const errors = errorsFor({ ...makeSnapshot(), [field]: value });
    const error = errors.find((e) => e.path === field || e.path.startsWith(`${field}.`));
    expect(error, JSON.stringify(errors)).toBeDefined();
    expect(error!.message).toMatch(reason);
  });

  it('checks the rules between fields: id, one count per peer and per timer, max within sum', () => {
    expect(errorsFor(makeSnapshot({ snapshot_id: 'x' })).map((e) => e.path)).toEqual(['snapshot_id']);
    expect(errorsFor(makeSnapshot({ sent_to: [1, 2] }))[0]).toMatchObject({ path: 'sent_to', message: expect.stringMatching(/one entry per peer \(3\), got 2/) });
    expect(errorsFor(makeSnapshot({ quorum_last_peer: [1, 2, 3, 4] }))[0]?.path).toBe('quorum_last_peer');
    expect(errorsFor(makeSnapshot({ timer_fired: [] }))[0]).toMatchObject({ path: 'timer_fired' });
    expect(errorsFor(makeSnapshot({ quorum_wait_us_max: 5_000 }))[0]).toMatchObject({ path: 'quorum_wait_us_max' });
  });

  it('reports missing and unknown fields by name', () => {
    const { backlog: _backlog, ...missing } = makeSnapshot();
    expect(errorsFor(missing)).toContainEqual({ path: 'backlog', message: 'is required' });
    expect(errorsFor({ ...makeSnapshot(), cpu: 1 })).toContainEqual({ path: 'cpu', message: 'unknown field(s): cpu' });
  });
});
