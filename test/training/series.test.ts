/** Node rows become one series per run: a window's score is its nodes' largest (warming-up NaN never wins), its labels the cluster's. */
import { describe, expect, it } from 'vitest';
import { featureNames } from '../../store/feature-registry.ts';
import { createMatrix } from '../../models/matrix.ts';
import type { Dataset } from '../../training/read.ts';
import { seriesOf } from '../../training/series.ts';

describe('series of a node-level dataset', () => {
  it('takes the max over the nodes of each window, per run', () => {
    const names = featureNames('node');
    // run 0: windows 0 and 100 ms, 2 nodes each; run 1: window 0, 2 nodes.
    const run = Uint32Array.of(0, 0, 0, 0, 1, 1);
    const start = Float64Array.of(0, 0, 100, 100, 0, 0);
    const dataset: Dataset = {
      runs: [
        { runId: 'a', protocol: 'pbft', nodes: 4 },
        { runId: 'b', protocol: 'epaxos', nodes: 5 },
      ],
      matrix: createMatrix({ level: 'node', windowMs: 100, featureNames: names, values: new Float64Array(6 * names.length), contextIds: Uint16Array.of(0, 0, 0, 0, 1, 1), contexts: ['pbft/n4', 'epaxos/n5'], seriesIds: Uint32Array.of(0, 1, 0, 1, 2, 3), windowStartMs: start }),
      labels: { run, node: Int32Array.of(0, 1, 0, 1, 0, 1), faultActive: Uint8Array.of(0, 0, 1, 1, 0, 0), recovering: new Uint8Array(6), nodeFaulty: Uint8Array.of(0, 0, 1, 0, 0, 0), activeFaults: [[], [], ['crash'], ['crash'], [], []] },
    };
    const s = seriesOf(dataset, Float64Array.of(1, 3, Number.NaN, 2, 5, 4));
    expect(s.map((x) => x.runId)).toEqual(['a', 'b']);
    expect(Array.from(s[0]!.score)).toEqual([3, 2]);
    expect(Array.from(s[0]!.faultActive)).toEqual([0, 1]);
    expect(s[0]!.kinds).toEqual([[], ['crash']]);
    expect(Array.from(s[1]!.score)).toEqual([5]);
    expect(s[1]!.protocol).toBe('epaxos');
  });
});
