// Data parallelism as PyTorch's DistributedDataParallel does it, over any ProcessGroup:
// rank 0's parameters and buffers at the start, rank 0's buffers before every training
// forward (DDP's broadcast_buffers=True: BatchNorm normalises with each rank's own batch
// statistics, the running averages follow rank 0), gradients summed over the ranks in
// buckets and divided by the world size (each rank's loss is a mean over an equal share of
// the global batch, so this is the gradient of the global batch's mean loss).
//
// The collectives are waited for with Work.waitSync (bounded by the group's timeout): the
// training step is synchronous compute on this thread, there is nothing else for the event
// loop to do meanwhile, and a dead peer surfaces as an error naming rank and operation.
import type { Module } from "../nn/module.js";
import { noGrad } from "../tensor/autograd.js";
import { cat } from "../tensor/combine.js";
import { tensor } from "../tensor/creation.js";
import { keep, scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { assignBuckets, type Bucket } from "./buckets.js";
import { GradReadyHooks } from "./grad-ready.js";
import type { ProcessGroup } from "./process-group.js";
import { syncBatchNorm } from "./sync-batch-norm.js";
import type { Work } from "./work.js";

export interface DataParallelOptions {
  /** Gradient bucket size (default 25 MiB, as DDP). */
  bucketCapMB?: number;
  /** The first (last-layer) bucket's size (default 1 MiB, as DDP). */
  firstBucketCapMB?: number;
  /** Broadcast rank 0's buffers before each training forward (default true, as DDP). */
  broadcastBuffers?: boolean;
  /** BatchNorm over the global batch (torch.nn.SyncBatchNorm) instead of each rank's share (default false). */
  syncBatchNorm?: boolean;
  /**
   * Start a bucket's allreduce during the backward pass as soon as its gradients are final
   * (default true, as DDP); needs beforeBackward() before the (single) backward of a step.
   */
  overlap?: boolean;
}

// One backward pass with overlap: which gradients are final, which buckets are started.
interface Pass {
  params: readonly Tensor[];
  buckets: Bucket[];
  /** Position in params of each module parameter index (registration order), or -1. */
  position: Int32Array;
  bucketOf: Int32Array;
  ready: Uint8Array;
  remaining: number[];
  next: number;
  started: { bucket: Bucket; flat: Tensor; work: Work }[];
  /** Buckets started while backward was still running. */
  early: number;
}

export interface DataParallelStats {
  /** Gradient allreduce calls and their bytes since construction. */
  allreduces: number;
  bytes: number;
  /**
   * Seconds spent after backward waiting for the gradient collectives (buckets and the
   * unused-parameter map): the communication not hidden, plus waiting for slower ranks.
   */
  waitSeconds: number;
  /** Buckets whose allreduce started during the backward pass (overlap). */
  earlyBuckets: number;
}

export class DataParallel {
  readonly group: ProcessGroup;
  readonly module: Module;
  readonly broadcastBuffers: boolean;
  readonly #capBytes: number;
  readonly #firstCapBytes: number;
  // Bucket layouts by the set of parameters that have a gradient (a MoE's unrouted experts have none).
  readonly #layouts = new Map<string, Bucket[]>();
  readonly stats: DataParallelStats = { allreduces: 0, bytes: 0, waitSeconds: 0, earlyBuckets: 0 };
  readonly #overlap: boolean;
  readonly #moduleParams: Tensor[];
  #hooks: GradReadyHooks | null = null;
  #pass: Pass | null = null;
  // Bucket layouts of whole parameter lists, by the list's positions among the module's parameters.
  readonly #full = new Map<string, Bucket[]>();

  constructor(group: ProcessGroup, module: Module, options: DataParallelOptions = {}) {
    this.group = group;
    this.module = module;
    this.broadcastBuffers = options.broadcastBuffers ?? true;
    const cap = options.bucketCapMB ?? 25;
    const first = options.firstBucketCapMB ?? 1;
    if (!(cap > 0) || !(first > 0)) throw new RangeError("DataParallel: bucket sizes must be positive");
    this.#capBytes = cap * 2 ** 20;
    this.#firstCapBytes = first * 2 ** 20;
    if (options.syncBatchNorm === true) syncBatchNorm(module, group);
    this.#overlap = (options.overlap ?? true) && group.worldSize > 1;
    this.#moduleParams = module.parameters();
  }

  /** Removes the gradient hooks (the module stays usable without data parallelism). */
  dispose(): void {
    this.#hooks?.remove();
    this.#hooks = null;
  }

  /**
   * Arms the overlap for the backward pass about to run on `params` (a level's parameters):
   * every gradient that becomes final starts its bucket's allreduce once the buckets before
   * it have started (the same order on every rank, whatever order the gradients come in).
   */
  beforeBackward(params: readonly Tensor[]): void {
    if (!this.#overlap) return;
    if (this.#hooks === null) {
      const hooked = this.#moduleParams.filter((p) => p.requiresGrad);
      this.#hooks = new GradReadyHooks(hooked, (i) => this.#onReady(i));
      this.#hookedParams = hooked;
    }
    const key = params.map((p) => this.#moduleParams.indexOf(p)).join(",");
    let buckets = this.#full.get(key);
    if (buckets === undefined) {
      buckets = assignBuckets(
        params.map((p, index) => ({ index, numel: p.numel, dtype: p.dtype, bytes: p.numel * bytesPer(p.dtype) })),
        this.#capBytes,
        this.#firstCapBytes,
      );
      this.#full.set(key, buckets);
    }
    const where = new Map(params.map((p, i) => [p, i]));
    const position = Int32Array.from(this.#hookedParams, (p) => where.get(p) ?? -1);
    const bucketOf = new Int32Array(params.length).fill(-1);
    for (const [k, b] of buckets.entries()) for (const i of b.indices) bucketOf[i] = k;
    this.#hooks.drain();
    this.#pass = {
      params,
      buckets,
      position,
      bucketOf,
      ready: new Uint8Array(params.length),
      remaining: buckets.map((b) => b.indices.length),
      next: 0,
      started: [],
      early: 0,
    };
  }

  #hookedParams: Tensor[] = [];

  #onReady(hookIndex: number): void {
    const pass = this.#pass;
    if (pass === null) return;
    const i = pass.position[hookIndex] as number;
    if (i < 0 || pass.ready[i] === 1) return;
    pass.ready[i] = 1;
    const k = pass.bucketOf[i] as number;
    pass.remaining[k] = (pass.remaining[k] as number) - 1;
    while (pass.next < pass.buckets.length && pass.remaining[pass.next] === 0) {
      this.#start(pass, pass.next++);
      pass.early += 1;
    }
  }

  // Flattens a bucket (zeros for a gradient this rank does not have) and starts its allreduce.
  #start(pass: Pass, k: number): void {
    const bucket = pass.buckets[k] as Bucket;
    const flat = noGrad(() =>
      scope(() => {
        const parts = bucket.indices.map((i) => {
          const p = pass.params[i] as Tensor;
          const g = p.grad;
          return g === null ? p.detach().mul(0).reshape(-1) : g.reshape(-1);
        });
        // Always a copy: the bucket must not alias a gradient this thread still writes.
        return cat(parts);
      }),
    );
    keep(flat);
    this.stats.allreduces += 1;
    this.stats.bytes += flat.numel * bytesPer(flat.dtype);
    pass.started.push({ bucket, flat, work: this.group.allreduce(flat, { op: "sum" }) });
  }

  // The end of an overlapped pass: the remaining buckets in order, the unused-parameter map,
  // then the waits and the copies back into the gradients.
  #finishPass(pass: Pass): void {
    this.#pass = null;
    const world = this.group.worldSize;
    try {
      for (const i of this.#hooks?.drain() ?? []) {
        this.#pass = pass;
        this.#onReady(i);
        this.#pass = null;
      }
      this.stats.earlyBuckets += pass.early;
      while (pass.next < pass.buckets.length) this.#start(pass, pass.next++);
      noGrad(() =>
        scope(() => {
          const mask = tensor(Float32Array.from(pass.params, (p) => (p.grad === null ? 0 : 1)));
          const maskWork = this.group.allreduce(mask, { op: "max" });
          for (const { bucket, flat, work } of pass.started) {
            const t0 = performance.now();
            work.waitSync();
            this.stats.waitSeconds += (performance.now() - t0) / 1000;
            flat.div_(world);
            for (const [k, i] of bucket.indices.entries()) {
              const p = pass.params[i] as Tensor;
              const slice = flat.narrow(0, bucket.offsets[k] as number, p.numel).view(...p.shape);
              const g = p.grad;
              if (g === null) p.grad = slice.clone();
              else g.copy_(slice);
            }
          }
          const m0 = performance.now();
          maskWork.waitSync();
          this.stats.waitSeconds += (performance.now() - m0) / 1000;
          // A parameter no rank has a gradient for keeps none (the optimizer skips it).
          for (const [i, v] of mask.toFlatArray().entries()) if (v === 0) (pass.params[i] as Tensor).grad = null;
        }),
      );
    } finally {
      for (const s of pass.started) s.flat.dispose();
    }
  }

  get rank(): number {
    return this.group.rank;
  }

  get worldSize(): number {
    return this.group.worldSize;
  }

  /** Rank 0's parameters and buffers on every rank (what DDP's constructor does). */
  syncModule(): void {
    this.#broadcast([...this.module.parameters(), ...this.module.buffers()]);
  }

  /** Rank 0's buffers on every rank, before a training forward (broadcast_buffers). */
  syncBuffers(): void {
    if (this.broadcastBuffers) this.#broadcast(this.module.buffers());
  }

  /**
   * After backward: every parameter's gradient becomes the mean over the ranks. A parameter
   * without a gradient on some rank counts as zero there; one without a gradient on every
   * rank keeps none (the optimizer skips it, as in a single process).
   */
  reduceGradients(params: readonly Tensor[]): void {
    const world = this.group.worldSize;
    if (world === 1) return;
    noGrad(() =>
      scope(() => {
        const grads = params.map((p) => p.grad);
        // Which parameters have a gradient anywhere: one small allreduce (DDP's unused-parameter map).
        const mask = tensor(Float32Array.from(grads, (g) => (g === null ? 0 : 1)));
        const m0 = performance.now();
        this.group.allreduce(mask, { op: "max" }).waitSync();
        this.stats.waitSeconds += (performance.now() - m0) / 1000;
        const anywhere = mask.toFlatArray().map((v) => v > 0);
        const key = anywhere.map((v) => (v ? "1" : "0")).join("");
        let buckets = this.#layouts.get(key);
        if (buckets === undefined) {
          const items = params.flatMap((p, index) => {
            if (!anywhere[index]) return [];
            const numel = p.numel;
            const bytes = numel * (p.dtype === "float64" || p.dtype === "int64" ? 8 : p.dtype === "float32" ? 4 : 2);
            return [{ index, numel, dtype: p.dtype, bytes }];
          });
          buckets = assignBuckets(items, this.#capBytes, this.#firstCapBytes);
          this.#layouts.set(key, buckets);
        }
        // Start every bucket's allreduce before waiting for any: c10d works on bucket k
        // while this thread flattens bucket k + 1.
        const inFlight: { bucket: Bucket; flat: Tensor; work: Work }[] = [];
        for (const bucket of buckets) {
          const parts = bucket.indices.map((i) => {
            const g = grads[i];
            const p = params[i] as Tensor;
            return g === null ? p.detach().mul(0).reshape(-1) : g.reshape(-1);
          });
          const flat = parts.length === 1 ? (parts[0] as Tensor).contiguous() : cat(parts);
          this.stats.allreduces += 1;
          this.stats.bytes += flat.numel * (flat.dtype === "float64" ? 8 : flat.dtype === "float32" ? 4 : 2);
          inFlight.push({ bucket, flat, work: this.group.allreduce(flat, { op: "sum" }) });
        }
        for (const { bucket, flat, work } of inFlight) {
          const t0 = performance.now();
          work.waitSync();
          this.stats.waitSeconds += (performance.now() - t0) / 1000;
          flat.div_(world);
          for (const [k, i] of bucket.indices.entries()) {
            const p = params[i] as Tensor;
            const slice = flat.narrow(0, bucket.offsets[k] as number, p.numel).view(...p.shape);
            const g = grads[i];
            if (g === null) p.grad = slice.clone();
            else g.copy_(slice);
          }
        }
      }),
    );
  }

  /** The Trainer's hooks (trainStep's dataParallel option). */
  beforeForward(): void {
    this.syncBuffers();
  }

  afterBackward(params: readonly Tensor[]): void {
    const pass = this.#pass;
    if (pass === null) this.reduceGradients(params);
    else if (sameList(pass.params, params)) this.#finishPass(pass);
    else throw new Error("DataParallel: afterBackward got other parameters than beforeBackward");
  }

  /** The mean of each number over the ranks (the step's loss and accuracy: equal shares). */
  averageMetrics(metrics: Record<string, number>): Record<string, number> {
    if (this.group.worldSize === 1) return metrics;
    const keys = Object.keys(metrics).sort();
    const values = this.allreduceNumbers(
      keys.map((k) => metrics[k] as number),
      "sum",
    );
    const mean = new Map(keys.map((k, i) => [k, (values[i] as number) / this.group.worldSize]));
    // The caller's key order (the log's column order); sorted only for the reduction.
    return Object.fromEntries(Object.keys(metrics).map((k) => [k, mean.get(k) as number]));
  }

  /** Numbers reduced over the ranks (float64), synchronously. */
  allreduceNumbers(values: readonly number[], op: "sum" | "max" | "min"): number[] {
    return scope(() => {
      const t = tensor(Float64Array.from(values));
      this.group.allreduce(t, { op }).waitSync();
      return t.toFlatArray();
    });
  }

  /** Rank src's numbers on every rank; asynchronous, for waits as long as a validation pass. */
  async broadcastNumbers(values: readonly number[], src: number, timeoutMs?: number): Promise<number[]> {
    const t = tensor(Float64Array.from(values));
    try {
      await this.group.broadcast(t, { src, ...(timeoutMs !== undefined ? { timeoutMs } : {}) }).wait();
      return t.toFlatArray();
    } finally {
      t.dispose();
    }
  }

  // Coalesced per dtype: one broadcast per dtype instead of one per tensor.
  #broadcast(tensors: readonly Tensor[]): void {
    if (this.group.worldSize === 1 || tensors.length === 0) return;
    noGrad(() =>
      scope(() => {
        const byDtype = new Map<string, Tensor[]>();
        for (const t of tensors) {
          const list = byDtype.get(t.dtype) ?? [];
          list.push(t);
          byDtype.set(t.dtype, list);
        }
        const pending: { list: Tensor[]; flat: Tensor; work: Work }[] = [];
        for (const list of byDtype.values()) {
          const flat = cat(list.map((t) => t.detach().reshape(-1)));
          pending.push({ list, flat, work: this.group.broadcast(flat, { src: 0 }) });
        }
        for (const { list, flat, work } of pending) {
          work.waitSync();
          let off = 0;
          for (const t of list) {
            t.copy_(flat.narrow(0, off, t.numel).view(...t.shape));
            off += t.numel;
          }
        }
      }),
    );
  }
}

function bytesPer(dtype: string): number {
  return dtype === "float64" || dtype === "int64" ? 8 : dtype === "float32" || dtype === "int32" ? 4 : 2;
}

function sameList(a: readonly Tensor[], b: readonly Tensor[]): boolean {
  return a === b || (a.length === b.length && a.every((t, i) => t === b[i]));
}
