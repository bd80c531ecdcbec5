// DataLoader: seeded shuffling, batching, augmentation off the training thread, and the
// turn of uint8 batches into float [0, 1] NCHW tensors with int64 labels.
//
// Iteration is synchronous, for a synchronous training loop:
//   for (const batch of loader.epoch(e)) { ...; dispose(batch); }
// Worker threads assemble the next batches while the loop trains on the current one; when
// the loop asks for a batch that is not ready yet it blocks in Atomics.wait (no event-loop
// turn is needed). Normalisation is not done here: models normalise inside.
import { availableParallelism } from "node:os";
import { interpolate } from "../nn/functional.js";
import { fromBytes } from "../tensor/creation.js";
import type { MemoryFormat, Tensor } from "../tensor/tensor.js";
import { type AugmentOptions, type AugmentPlan, assembleBatch, type BatchSelection, makePlan, selectedCount } from "./augment.js";
import type { ImageDataset, StorageView } from "./dataset.js";
import { WorkerPool } from "./loader-pool.js";
import { checkSeed, mixSeed, Rng, shuffleInPlace } from "./rng.js";

export interface LoaderOptions {
  batchSize: number;
  /** Reshuffle every epoch (default true); the order depends only on (seed, epoch). */
  shuffle?: boolean;
  /** Seed of shuffling and augmentation (default 0). */
  seed?: number;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
  /** Augmentations, drawn per image from (seed, epoch, batch index). */
  augment?: AugmentOptions;
  /**
   * Resize every batch to this size after augmentation, on the float tensor (main thread)
   * with bilinear interpolation, antialiased by default (as torchvision's Resize); e.g.
   * TinyImageNet 64 -> 224 for a pretrained ViT.
   */
  resize?: { size: number | readonly [number, number]; antialias?: boolean };
  /** Worker threads that assemble batches (default: cores - 1, between 1 and 4); 0 = on this thread. */
  workers?: number;
  /** Batches requested ahead of the one being consumed (default 2 per worker, at least 2). */
  prefetch?: number;
  /** Milliseconds to wait for a worker before giving up (default 60000). */
  timeoutMs?: number;
  /**
   * Data parallelism (torch's DistributedSampler): this rank's share of every batch. batchSize
   * stays the global batch; rank r gets positions r, r + worldSize, ... of each one, i.e. of
   * the epoch order, so the ranks' batches of step k together are the single process's batch
   * k, with the same augmentation. Needs dropLast and batchSize divisible by worldSize.
   */
  shard?: { rank: number; worldSize: number };
  /**
   * Layout of x in memory (default "contiguous", NCHW): "channelsLast" gives NHWC storage
   * with the same [N, C, H, W] shape, for a model converted with
   * `Module.to({ memoryFormat: "channelsLast" })` (nn/channels-last.ts says where that is safe).
   */
  memoryFormat?: MemoryFormat;
}

/** A batch as tensors: x float32 [N, C, H, W] in [0, 1], y int64 [N]. The caller disposes both. */
export interface Batch {
  x: Tensor;
  y: Tensor;
  /** Dataset positions of the N examples. */
  indices: Int32Array;
}

/** A batch as bytes: images NCHW uint8, before the tensor conversion and any resize. */
export interface ByteBatch {
  images: Uint8Array;
  labels: Int32Array;
  indices: Int32Array;
  shape: [number, number, number, number];
  epoch: number;
  index: number;
}

export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1) throw new TypeError(`DataLoader: ${what} must be a positive integer, got ${v}`);
  return v;
}

export class DataLoader {
  readonly dataset: ImageDataset;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  readonly workers: number;
  readonly prefetch: number;
  readonly memoryFormat: MemoryFormat;
  /** Shape of x per batch without N: [C, H, W] after augmentation and resize. */
  readonly outputShape: readonly [number, number, number];
  private readonly plan: AugmentPlan;
  private readonly resize: { size: [number, number]; antialias: boolean } | null;
  private readonly source: StorageView;
  private readonly timeoutMs: number;
  private readonly select: BatchSelection | null;
  private pool: WorkerPool | null = null;
  private gen = 0;
  private closed = false;

  constructor(dataset: ImageDataset, options: LoaderOptions) {
    this.dataset = dataset;
    this.batchSize = positiveInt(options.batchSize, "batchSize");
    this.shuffle = options.shuffle ?? true;
    this.seed = checkSeed(options.seed ?? 0, "DataLoader");
    this.dropLast = options.dropLast ?? false;
    this.workers = options.workers ?? defaultWorkerCount();
    if (!Number.isInteger(this.workers) || this.workers < 0) {
      throw new TypeError(`DataLoader: workers must be a non-negative integer, got ${this.workers}`);
    }
    this.prefetch = positiveInt(options.prefetch ?? Math.max(2, 2 * this.workers), "prefetch");
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.select = null;
    if (options.shard !== undefined) {
      const { rank, worldSize } = options.shard;
      positiveInt(worldSize, "shard.worldSize");
      if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
        throw new TypeError(`DataLoader: shard.rank must be an integer in [0, ${worldSize - 1}], got ${rank}`);
      if (this.batchSize % worldSize !== 0)
        throw new TypeError(`DataLoader: the global batch size ${this.batchSize} is not divisible by the ${worldSize} ranks`);
      // A last partial batch would give the ranks unequal (or empty) shares.
      if (!this.dropLast) throw new TypeError("DataLoader: a sharded loader needs dropLast: true");
      if (worldSize > 1) this.select = { offset: rank, stride: worldSize };
    }
    this.memoryFormat = options.memoryFormat ?? "contiguous";
    if (this.memoryFormat !== "contiguous" && this.memoryFormat !== "channelsLast") {
      throw new TypeError(`DataLoader: memoryFormat must be "contiguous" or "channelsLast", got ${String(this.memoryFormat)}`);
    }
    this.source = dataset.view();
    this.plan = makePlan(options.augment ?? {}, this.source.storage.shape);
    if (options.resize !== undefined) {
      const s = options.resize.size;
      const size: [number, number] = typeof s === "number" ? [s, s] : [s[0], s[1]];
      positiveInt(size[0], "resize height");
      positiveInt(size[1], "resize width");
      this.resize = { size, antialias: options.resize.antialias ?? true };
      this.outputShape = [this.plan.channels, size[0], size[1]];
    } else {
      this.resize = null;
      this.outputShape = [this.plan.channels, this.plan.outHeight, this.plan.outWidth];
    }
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Dataset positions in the order epoch e visits them (a function of seed and e only). */
  order(epoch: number): Int32Array {
    checkEpoch(epoch);
    const a = new Int32Array(this.dataset.length);
    for (let i = 0; i < a.length; i++) a[i] = i;
    if (this.shuffle) shuffleInPlace(a, new Rng(mixSeed(this.seed, 0x53485546, epoch)));
    return a;
  }

  /**
   * Epoch e as tensors, from batch `from` on (default 0: a resumed run skips the batches it
   * already trained without assembling them; a batch's content does not depend on where the
   * epoch started). Each batch's x and y belong to the caller: dispose them (dispose(batch))
   * or create them inside a scope. Starting another epoch ends this one.
   */
  *epoch(epoch: number, from = 0): Generator<Batch, void, undefined> {
    for (const raw of this.run(epoch, true, from)) {
      const [n, c, h, w] = raw.shape;
      const u8 = fromBytes(raw.images, [n, c, h, w], "uint8");
      let x = u8.to("float32");
      u8.dispose();
      x.div_(255);
      if (this.resize !== null) {
        const r = interpolate(x, { size: this.resize.size, mode: "bilinear", antialias: this.resize.antialias });
        x.dispose();
        x = r;
      }
      if (this.memoryFormat === "channelsLast") {
        // One more copy of a small tensor; the augmentation workers keep writing NCHW bytes.
        const nhwc = x.contiguous("channelsLast");
        x.dispose();
        x = nhwc;
      }
      const y64 = new BigInt64Array(n);
      for (let k = 0; k < n; k++) y64[k] = BigInt(raw.labels[k] as number);
      const y = fromBytes(new Uint8Array(y64.buffer), [n], "int64");
      this.recycle(raw.images);
      yield { x, y, indices: raw.indices };
    }
  }

  /** Epoch e as uint8 batches (no tensors, no resize); the arrays belong to the caller. */
  *epochBytes(epoch: number): Generator<ByteBatch, void, undefined> {
    yield* this.run(epoch, false);
  }

  /** Stops the workers. The loader cannot be used afterwards. */
  close(): void {
    this.closed = true;
    this.pool?.close();
    this.pool = null;
  }

  private *run(epoch: number, reuse: boolean, from = 0): Generator<ByteBatch, void, undefined> {
    if (this.closed) throw new Error("DataLoader: used after close()");
    if (!Number.isInteger(from) || from < 0) throw new TypeError(`DataLoader: from must be a non-negative integer, got ${from}`);
    const gen = ++this.gen;
    const order = this.order(epoch);
    const { storage, indices: map } = this.source;
    const base = map === null ? order : order.map((p) => map[p] as number);
    const nb = this.length;
    const n = this.dataset.length;
    const { channels: C, outHeight: OH, outWidth: OW } = this.plan;
    const outSize = C * OH * OW;
    const slice = (b: number): [number, number] => [b * this.batchSize, Math.min(n, (b + 1) * this.batchSize)];
    const pool = this.workers > 0 ? this.ensurePool() : null;
    let asked = from;
    let scratch: ArrayBuffer | null = null;
    for (let b = from; b < nb; b++) {
      if (this.gen !== gen) throw new Error("DataLoader: this epoch was ended by starting another one");
      const [from, to] = slice(b);
      const count = selectedCount(to - from, this.select);
      let images: Uint8Array;
      if (pool !== null) {
        for (; asked < nb && asked < b + this.prefetch; asked++) {
          const [f, t] = slice(asked);
          pool.request(gen, epoch, asked, base.slice(f, t), this.select);
        }
        const r = pool.wait(gen, b, this.timeoutMs);
        images = new Uint8Array(r.buffer, 0, r.bytes);
      } else {
        if (!reuse || scratch === null || scratch.byteLength < count * outSize) scratch = new ArrayBuffer(count * outSize);
        images = new Uint8Array(scratch, 0, count * outSize);
        assembleBatch(storage.images, base.subarray(from, to), this.plan, this.seed, epoch, b, images, this.select);
        if (!reuse) scratch = null;
      }
      // This rank's positions of the batch (all of them without a shard).
      const offset = this.select?.offset ?? 0;
      const stride = this.select?.stride ?? 1;
      const labels = new Int32Array(count);
      const indices = new Int32Array(count);
      for (let k = 0; k < count; k++) {
        const at = from + offset + k * stride;
        labels[k] = storage.labels[base[at] as number] as number;
        indices[k] = order[at] as number;
      }
      yield { images, labels, indices, shape: [count, C, OH, OW], epoch, index: b };
    }
  }

  private recycle(images: Uint8Array): void {
    if (this.pool !== null && this.workers > 0) this.pool.release(images.buffer as ArrayBuffer);
  }

  private ensurePool(): WorkerPool {
    if (this.pool === null) this.pool = new WorkerPool(this.workers, this.source.storage.images, this.plan, this.seed);
    return this.pool;
  }
}

function checkEpoch(epoch: number): void {
  if (!Number.isSafeInteger(epoch) || epoch < 0)
    throw new TypeError(`DataLoader: epoch must be a non-negative integer, got ${epoch}`);
}
