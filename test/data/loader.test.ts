import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ArrayDataset, type ImageDataset } from "../../src/data/dataset.js";
import { type ByteBatch, DataLoader, type LoaderOptions } from "../../src/data/loader.js";
import { interpolate } from "../../src/nn/functional.js";
import { dispose, fromBytes, memoryStats, scope } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { repoRoot } from "../helpers/paths.js";
import { randomBytes } from "./synth.js";

const N = 103;
const SHAPE = [3, 8, 8] as const;
const SIZE = 3 * 8 * 8;
const images = randomBytes(N * SIZE, 42);
const labels = Array.from({ length: N }, (_, i) => (i * 7) % 5);
const ds = ArrayDataset.fromArrays(images, labels, SHAPE, ["a", "b", "c", "d", "e"]);
const AUG = { translate: 2, flip: true, cutout: 4 } as const;

function collect(loader: DataLoader, epoch: number): ByteBatch[] {
  return [...loader.epochBytes(epoch)];
}

function withLoader<T>(options: LoaderOptions, fn: (l: DataLoader) => T, dataset: ImageDataset = ds): T {
  const l = new DataLoader(dataset, options);
  try {
    return fn(l);
  } finally {
    l.close();
  }
}

describe("DataLoader", () => {
  let startLive = 0;
  before(() => {
    startLive = memoryStats().liveTensors;
  });
  after(() => {
    assert.equal(memoryStats().liveTensors, startLive, "tests leaked tensors");
  });

  it("shuffles with the seed: same seed and epoch, same order; a permutation; new order each epoch", () => {
    const a = withLoader({ batchSize: 10, seed: 3, workers: 0 }, (l) => [l.order(0), l.order(1)]);
    const b = withLoader({ batchSize: 10, seed: 3, workers: 0 }, (l) => [l.order(0), l.order(1)]);
    const c = withLoader({ batchSize: 10, seed: 4, workers: 0 }, (l) => l.order(0));
    assert.deepEqual(a, b);
    assert.notDeepEqual(a[0], a[1]);
    assert.notDeepEqual(a[0], c);
    assert.deepEqual(
      [...(a[0] as Int32Array)].sort((x, y) => x - y),
      Array.from({ length: N }, (_, i) => i),
    );
    const plain = withLoader({ batchSize: 10, shuffle: false, workers: 0 }, (l) => l.order(5));
    assert.deepEqual(
      [...plain],
      Array.from({ length: N }, (_, i) => i),
    );
  });

  it("batches hold the right images and labels; dropLast drops the short batch", () => {
    withLoader({ batchSize: 10, seed: 1, workers: 0 }, (l) => {
      const bs = collect(l, 2);
      assert.equal(bs.length, 11);
      assert.equal(l.length, 11);
      assert.deepEqual(
        bs.map((b) => b.shape[0]),
        [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3],
      );
      const order = l.order(2);
      for (const b of bs) {
        for (let k = 0; k < b.shape[0]; k++) {
          const i = b.indices[k] as number;
          assert.equal(i, order[b.index * 10 + k]);
          assert.equal(b.labels[k], labels[i]);
          assert.deepEqual(b.images.subarray(k * SIZE, (k + 1) * SIZE), images.subarray(i * SIZE, (i + 1) * SIZE));
        }
      }
    });
    withLoader({ batchSize: 10, dropLast: true, workers: 0 }, (l) => {
      assert.equal(l.length, 10);
      assert.equal(collect(l, 0).length, 10);
    });
  });

  it("augmented batches are identical for 0, 1 and 3 workers and any prefetch depth", () => {
    const ref = withLoader({ batchSize: 16, seed: 9, augment: AUG, workers: 0 }, (l) => [collect(l, 0), collect(l, 1)]);
    for (const [workers, prefetch] of [
      [1, 1],
      [1, 4],
      [3, 2],
      [3, 8],
    ] as const) {
      withLoader({ batchSize: 16, seed: 9, augment: AUG, workers, prefetch }, (l) => {
        for (const e of [0, 1]) {
          const got = collect(l, e);
          assert.equal(got.length, ref[e]!.length);
          for (const [b, batch] of got.entries()) {
            const want = ref[e]![b]!;
            assert.deepEqual(batch.indices, want.indices, `workers ${workers}: epoch ${e} batch ${b} indices`);
            assert.ok(
              Buffer.from(batch.images).equals(Buffer.from(want.images)),
              `workers ${workers}: epoch ${e} batch ${b} bytes`,
            );
          }
        }
      });
    }
    const other = withLoader({ batchSize: 16, seed: 10, augment: AUG, workers: 0 }, (l) => collect(l, 0));
    assert.ok(!Buffer.from(other[0]!.images).equals(Buffer.from(ref[0]![0]!.images)), "another seed augments differently");
  });

  it("yields float32 NCHW in [0, 1] (bytes / 255) and int64 labels, without leaking tensors", () => {
    const live = memoryStats().liveTensors;
    for (const workers of [0, 2]) {
      withLoader({ batchSize: 32, seed: 2, augment: AUG, workers }, (l) => {
        const bytes = collect(l, 3);
        let b = 0;
        for (const batch of l.epoch(3)) {
          const n = bytes[b]!.shape[0];
          assert.deepEqual(batch.x.shape, [n, 3, 8, 8]);
          assert.equal(batch.x.dtype, "float32");
          assert.deepEqual(batch.y.shape, [n]);
          assert.equal(batch.y.dtype, "int64");
          assertClose(
            batch.x.toFlatArray(),
            Array.from(bytes[b]!.images, (v) => Math.fround(v / 255)),
            { atol: 0, rtol: 0 },
            "x",
          );
          assert.deepEqual(batch.y.toFlatArray(), Array.from(bytes[b]!.labels));
          dispose(batch);
          b++;
        }
        assert.equal(b, 4);
      });
    }
    assert.equal(memoryStats().liveTensors, live);
  });

  it("scope frees batches made inside it; breaking out early and starting again works", () => {
    const live = memoryStats().liveTensors;
    withLoader({ batchSize: 8, workers: 1 }, (l) => {
      scope(() => {
        for (const batch of l.epoch(0)) {
          assert.equal(batch.x.shape[0], 8);
          break;
        }
      });
      assert.equal(memoryStats().liveTensors, live);
      const it0 = l.epoch(1);
      const first = it0.next();
      assert.ok(!first.done);
      dispose(first.value);
      let count = 0;
      for (const batch of l.epoch(2)) {
        dispose(batch);
        count++;
      }
      assert.equal(count, 13);
      assert.throws(() => it0.next(), /ended by starting another/);
    });
    assert.equal(memoryStats().liveTensors, live);
  });

  it("resizes on the tensor with antialiased bilinear interpolation", () => {
    withLoader({ batchSize: 5, shuffle: false, workers: 0, resize: { size: 20 } }, (l) => {
      assert.deepEqual(l.outputShape, [3, 20, 20]);
      const it0 = l.epoch(0);
      const batch = it0.next().value!;
      const expected = scope(() => {
        const u8 = fromBytes(images.subarray(0, 5 * SIZE), [5, 3, 8, 8], "uint8");
        return interpolate(u8.float().div(255), { size: [20, 20], mode: "bilinear", antialias: true }).toFlatArray();
      });
      assert.deepEqual(batch.x.shape, [5, 3, 20, 20]);
      assertClose(batch.x.toFlatArray(), expected, { atol: 1e-6 }, "resized");
      dispose(batch);
      it0.return();
    });
  });

  it("take, subset and stratified subsets; loaders read through them", () => {
    assert.equal(ds.take(7).length, 7);
    assert.deepEqual(ds.take(7).get(6), ds.get(6));
    assert.equal(ds.take(1000).length, N);
    const strat = ds.stratified(3, 11);
    assert.equal(strat.length, 15);
    assert.deepEqual(strat.classCounts(), [3, 3, 3, 3, 3]);
    assert.deepEqual(ds.stratified(3, 11).view().indices, strat.view().indices, "same seed, same subset");
    assert.notDeepEqual(ds.stratified(3, 12).view().indices, strat.view().indices);
    const idx = [...(strat.view().indices as Int32Array)];
    assert.deepEqual(
      idx,
      [...idx].sort((a, b) => a - b),
      "kept in dataset order",
    );
    assert.throws(() => ds.stratified(30, 0), /has 21 examples, fewer than 30/);
    const nested = strat.subset([14, 0, 5]);
    assert.deepEqual(nested.get(0), ds.get(idx[14]!));
    assert.equal(nested.label(2), labels[idx[5]!]);
    withLoader(
      { batchSize: 4, workers: 1, seed: 5 },
      (l) => {
        const seen: number[] = [];
        for (const b of l.epochBytes(0)) {
          for (let k = 0; k < b.shape[0]; k++) {
            const pos = b.indices[k] as number;
            seen.push(pos);
            assert.equal(b.labels[k], nested.label(pos));
            assert.deepEqual(b.images.subarray(k * SIZE, (k + 1) * SIZE), nested.get(pos).image);
          }
        }
        assert.deepEqual(seen.sort(), [0, 1, 2]);
      },
      nested,
    );
  });

  it("workers start whatever flags the process has (node --input-type=module -e ...)", () => {
    const code = `
      const { ArrayDataset } = await import(${JSON.stringify(join(repoRoot, "dist/src/data/dataset.js"))});
      const { DataLoader } = await import(${JSON.stringify(join(repoRoot, "dist/src/data/loader.js"))});
      const ds = ArrayDataset.fromArrays(new Uint8Array(4 * 12), [0, 1, 0, 1], [3, 2, 2], ["a", "b"]);
      const l = new DataLoader(ds, { batchSize: 2, workers: 1, timeoutMs: 20000 });
      let n = 0;
      for (const b of l.epochBytes(0)) n += b.shape[0];
      l.close();
      console.log("batches ok", n);`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /batches ok 4/);
  });

  it("rejects bad options and use after close", () => {
    assert.throws(() => new DataLoader(ds, { batchSize: 0 }), /batchSize must be a positive integer/);
    assert.throws(() => new DataLoader(ds, { batchSize: 4, workers: -1 }), /workers/);
    assert.throws(() => new DataLoader(ds, { batchSize: 4, seed: -2 }), /seed/);
    const l = new DataLoader(ds, { batchSize: 4, workers: 1 });
    l.close();
    assert.throws(() => l.epoch(0).next(), /after close/);
    assert.throws(() => ds.get(N), /out of range/);
  });
});
