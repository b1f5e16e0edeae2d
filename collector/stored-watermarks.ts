/**
 * What a collector knows about which records the store may already hold: per node of a run, the
 * highest node_seq that may be stored. A record above it cannot duplicate a stored one, so it
 * needs no look-up, and in steady consumption (one owner per partition, reading on from its own
 * commits) no batch needs one at all. The knowledge is kept per partition and forgotten as soon
 * as a partition's batches stop following on from each other — a redelivery, a rebalance, a
 * restart — because someone else may have written meanwhile.
 */
export interface NodeKey {
  readonly runId: string;
  readonly node: number;
}

export const nodeKeyOf = (runId: string, node: number): string => `${runId}\u0000${node}`;

export class StoredWatermarks {
  /** node key → highest node_seq that may be stored, and the partition it was learned through. */
  private readonly byKey = new Map<string, { max: number; slot: string }>();
  /** partition → the offset its next batch starts at, if it follows on. */
  private readonly nextOffset = new Map<string, bigint>();

  /** Before a batch is looked at: forgets what was learned through a partition that jumped. */
  follow(slot: string, firstOffset: string): void {
    const expected = this.nextOffset.get(slot);
    if (expected !== undefined && expected === BigInt(firstOffset)) return;
    this.forget(slot);
  }

  /** Undefined: nothing known, ask the store. -1: known to hold nothing of this node. */
  maxOf(key: string): number | undefined {
    return this.byKey.get(key)?.max;
  }

  learn(key: string, slot: string, max: number): void {
    this.byKey.set(key, { max, slot });
  }

  /** After a batch was handled: its records may now be stored, and the next batch follows on. */
  handled(slot: string, lastOffset: string, maxByKey: ReadonlyMap<string, number>): void {
    for (const [key, max] of maxByKey) {
      const known = this.byKey.get(key);
      this.byKey.set(key, { max: Math.max(max, known?.max ?? -1), slot });
    }
    this.nextOffset.set(slot, BigInt(lastOffset) + 1n);
  }

  forget(slot: string): void {
    this.nextOffset.delete(slot);
    for (const [key, entry] of this.byKey) if (entry.slot === slot) this.byKey.delete(key);
  }
}
