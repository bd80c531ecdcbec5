// The data of an evaluation as batches: a dataset read in order (no shuffling, no
// augmentation) or batches the caller made, cut to the first `limit` samples.
import { checkBatch } from "../attacks/attack.js";
import { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import type { Tensor } from "../tensor/tensor.js";

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
}

/** A batch and whether the generator made its tensors (then the consumer disposes them). */
export interface OwnedBatch extends EvalBatch {
  owned: boolean;
}

/** Samples the data will yield under limit, or null when the batches are not counted in advance. */
export function sampleCount(data: EvalData, limit?: number): number | null {
  if (data instanceof ImageDataset) return Math.min(limit ?? Number.POSITIVE_INFINITY, data.length);
  return null;
}

export function* batchesOf(data: EvalData, o: BatchOptions, what: string): Generator<OwnedBatch> {
  const limit = o.limit ?? Number.POSITIVE_INFINITY;
  if (data instanceof ImageDataset) {
    const loader = new DataLoader(data.take(Math.min(limit, data.length)), {
      batchSize: o.batchSize ?? DEFAULT_EVAL_BATCH,
      shuffle: false,
      workers: 0,
      ...(o.resize === undefined ? {} : { resize: { size: o.resize } }),
    });
    try {
      for (const b of loader.epoch(0)) yield { x: b.x, y: b.y, owned: true };
    } finally {
      loader.close();
    }
    return;
  }
  let seen = 0;
  for (const b of data) {
    if (seen >= limit) return;
    checkBatch(what, b.x, b.y);
    const take = Math.min(b.x.size(0), limit - seen);
    seen += take;
    if (take === b.x.size(0)) yield { x: b.x, y: b.y, owned: false };
    else yield { x: b.x.narrow(0, 0, take), y: b.y.narrow(0, 0, take), owned: true };
  }
}
