// The loader's distributed sampler (shard option): the ranks' batches of step k, interleaved,
// are the single process's batch k, bytes for bytes after augmentation (on this thread and
// in worker threads), labels and dataset indices included; the ranks' shares of an epoch
// are disjoint; bad shard settings are refused.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ArrayDataset } from "../../src/data/dataset.js";
import { type ByteBatch, DataLoader, type LoaderOptions } from "../../src/data/loader.js";
import { randomBytes } from "../data/synth.js";

const N = 103;
const SIZE = 3 * 8 * 8;
const ds = ArrayDataset.fromArrays(
  randomBytes(N * SIZE, 7),
  Array.from({ length: N }, (_, i) => (i * 3) % 5),
  [3, 8, 8],
  ["a", "b", "c", "d", "e"],
);
const BASE: LoaderOptions = { batchSize: 12, seed: 5, dropLast: true, augment: { translate: 2, flip: true, cutout: 4 } };

function epoch(options: LoaderOptions, e: number): ByteBatch[] {
  const l = new DataLoader(ds, options);
  try {
    return [...l.epochBytes(e)];
  } finally {
    l.close();
  }
}

describe("DataLoader shard (distributed sampler)", () => {
  for (const workers of [0, 2]) {
    it(`the ranks' shares interleave into the whole batch (${workers} workers), world 3`, () => {
      const whole = epoch({ ...BASE, workers }, 2);
      const ranks = [0, 1, 2].map((rank) => epoch({ ...BASE, workers, shard: { rank, worldSize: 3 } }, 2));
      assert.equal(whole.length, Math.floor(N / 12));
      for (const [b, w] of whole.entries()) {
        for (const [rank, batches] of ranks.entries()) {
          const mine = batches[b] as ByteBatch;
          assert.equal(mine.labels.length, 4);
          for (let k = 0; k < 4; k++) {
            const at = rank + 3 * k;
            assert.equal(mine.indices[k], w.indices[at]);
            assert.equal(mine.labels[k], w.labels[at]);
            assert.deepEqual(mine.images.subarray(k * SIZE, (k + 1) * SIZE), w.images.subarray(at * SIZE, (at + 1) * SIZE));
          }
        }
      }
      const seen = ranks.flatMap((bs) => bs.flatMap((b) => [...b.indices]));
      assert.equal(new Set(seen).size, seen.length, "an image in two ranks' shares");
    });
  }

  it("bad shards are refused", () => {
    assert.throws(() => new DataLoader(ds, { ...BASE, shard: { rank: 0, worldSize: 5 } }), /12 is not divisible by the 5 ranks/);
    assert.throws(
      () => new DataLoader(ds, { ...BASE, shard: { rank: 3, worldSize: 3 } }),
      /shard.rank must be an integer in \[0, 2\]/,
    );
    assert.throws(() => new DataLoader(ds, { ...BASE, dropLast: false, shard: { rank: 0, worldSize: 2 } }), /needs dropLast/);
  });
});
