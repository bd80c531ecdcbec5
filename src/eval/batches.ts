// The data of an evaluation as batches: a dataset read in order (no shuffling, no
// augmentation) or batches the caller made, cut to the first `limit` samples, and for a
// shard only the batches the shard owns (shard.ts), each with its global batch index and
// the position of its first sample, which seed the attacks and place the per-sample flags.
import { checkBatch } from "../attacks/attack.js";
import { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import type { Tensor } from "../tensor/tensor.js";
import { inShard, type Shard } from "./shard.js";

/** A batch of images in [0, 1] ([N, ...], float32 or float64) and int64 labels [N]; the caller owns both. */
export interface EvalBatch {
  x: Tensor;
  y: Tensor;
}

/** A dataset (evaluated in order, in batches) or batches the caller makes. */
export type EvalData = ImageDataset | Iterable<EvalBatch>;

export const DEFAULT_EVAL_BATCH = 100;

export interface BatchOptions {
  /** At most this many samples (default all). */
  limit?: number;
  /** Dataset only. Default 100. */
  batchSize?: number;
  /** Dataset only: resize to size x size (bilinear, antialiased), as the loader does for training. */
  resize?: number;
  /** Only the batches of this shard (default: all). */
  shard?: Shard | null;
}

/** A batch, whether the generator made its tensors (then the consumer disposes them), and where it sits. */
export interface OwnedBatch extends EvalBatch {
  owned: boolean;
  /** Global batch index (0-based, counting the batches of every shard). */
  index: number;
  /** Position of its first sample among all the evaluation's samples. */
  start: number;
}

/** Counts filled in as the batches are read: every sample and batch under the limit, in every shard. */
export interface BatchCount {
  samples: number;
  batches: number;
}

/** Samples the data will yield under limit (all shards), or null when the batches are not counted in advance. */
export function sampleCount(data: EvalData, limit?: number): number | null {
  if (data instanceof ImageDataset) return Math.min(limit ?? Number.POSITIVE_INFINITY, data.length);
  return null;
}

/** Samples of a dataset a shard evaluates (null for caller-made batches). */
export function shardSampleCount(data: EvalData, o: BatchOptions): number | null {
  const total = sampleCount(data, o.limit);
  if (total === null) return null;
  const size = o.batchSize ?? DEFAULT_EVAL_BATCH;
  let n = 0;
  for (let b = 0; b * size < total; b++) if (inShard(o.shard ?? null, b)) n += Math.min(size, total - b * size);
  return n;
}

export function* batchesOf(data: EvalData, o: BatchOptions, what: string, count?: BatchCount): Generator<OwnedBatch> {
  const limit = o.limit ?? Number.POSITIVE_INFINITY;
  const shard = o.shard ?? null;
  if (data instanceof ImageDataset) {
    const total = Math.min(limit, data.length);
    const size = o.batchSize ?? DEFAULT_EVAL_BATCH;
    const batches: number[] = [];
    const positions: number[] = [];
    for (let b = 0; b * size < total; b++) {
      if (!inShard(shard, b)) continue;
      batches.push(b);
      for (let i = b * size; i < Math.min(total, (b + 1) * size); i++) positions.push(i);
    }
    if (count !== undefined) {
      count.samples = total;
      count.batches = Math.ceil(total / size);
    }
    if (batches.length === 0) return;
    // Every batch but the evaluation's last is full, and the last is also the shard's
    // last, so the loader cuts the shard's positions at exactly the global batch edges.
    const loader = new DataLoader(data.subset(Int32Array.from(positions)), {
      batchSize: size,
      shuffle: false,
      workers: 0,
      ...(o.resize === undefined ? {} : { resize: { size: o.resize } }),
    });
    try {
      let k = 0;
      for (const b of loader.epoch(0)) {
        const index = batches[k++] as number;
        yield { x: b.x, y: b.y, owned: true, index, start: index * size };
      }
    } finally {
      loader.close();
    }
    return;
  }
  let seen = 0;
  let index = 0;
  for (const b of data) {
    if (seen >= limit) break;
    checkBatch(what, b.x, b.y);
    const take = Math.min(b.x.size(0), limit - seen);
    const start = seen;
    seen += take;
    const i = index++;
    if (count !== undefined) {
      count.samples = seen;
      count.batches = index;
    }
    if (!inShard(shard, i)) continue;
    if (take === b.x.size(0)) yield { x: b.x, y: b.y, owned: false, index: i, start };
    else yield { x: b.x.narrow(0, 0, take), y: b.y.narrow(0, 0, take), owned: true, index: i, start };
  }
}
