// The Trainer owns the loop around a method's per-batch losses: modes (the level's modules in
// training mode, the rest in eval; attacks switch to eval and back themselves), each level's
// zeroGrad / backward / clip / step / schedule, the NaN guard, the metrics log, the progress
// display, validation, and the checkpoints that make a run resumable bit for bit.
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { DataLoader } from "../data/loader.js";
import { DataParallel, type DataParallelOptions } from "../dist/data-parallel.js";
import type { ProcessGroup } from "../dist/process-group.js";
import { saveCheckpoint } from "../io/checkpoint.js";
import type { Model } from "../models/config.js";
import { channelsLastSupport, resolveMemoryFormat } from "../nn/channels-last.js";
import { clipGradNorm } from "../optim/grad-clip.js";
import type { LRScheduler } from "../optim/lr-scheduler.js";
import type { Optimizer } from "../optim/optimizer.js";
import { type Precision, withPrecision } from "../tensor/autocast.js";
import { noGrad } from "../tensor/autograd.js";
import { manualSeed, memoryStats, setNumThreads } from "../tensor/runtime.js";
import { dispose, scope } from "../tensor/scope.js";
import type { MemoryFormat, Tensor } from "../tensor/tensor.js";
import type { TrainConfig } from "./config.js";
import type { BatchLoss, TrainBatch, TrainingMethod } from "./method.js";
import { methodSpec } from "./methods/index.js";
import { TrainProgress } from "./progress.js";
import { appendMetrics, runPath, truncateMetrics, writeRunConfig } from "./run-dir.js";
import { buildOptimizer, buildScheduler, buildTrainModel, trainSplits } from "./setup.js";
import { type BestResult, loadTrainState, saveTrainState, type TrainState } from "./train-state.js";
import { type ValidationResult, validate } from "./validate.js";

/** A loss that is NaN or infinite: the run stops, the last good checkpoint stays. */
export class TrainingDivergedError extends Error {
  override name = "TrainingDivergedError";
}

export interface TrainerOptions {
  config: TrainConfig;
  /** The run directory (created if missing). */
  out: string;
  /** Continue the run in `out` from its last checkpoint. */
  resume?: boolean;
  /** The command line, for config.json. */
  command?: readonly string[];
  /** Data cache root (default: $RMOE_DATA or ~/.cache/robust-moe). */
  dataRoot?: string;
  /** Where the progress display goes (default stderr); null: silent. */
  progress?: (NodeJS.WritableStream & { isTTY?: boolean; columns?: number }) | null;
  /** Stop after this many steps in total (tests and benchmarks); the run stays resumable. */
  maxSteps?: number;
  /**
   * Data parallelism over a process group (docs/DISTRIBUTED.md): config.batchSize is the
   * global batch, each rank trains on its share; rank 0 writes the run directory.
   */
  dataParallel?: { group: ProcessGroup } & DataParallelOptions;
}

export interface TrainSummary {
  steps: number;
  epochs: number;
  seconds: number;
  best: BestResult | null;
  lastValidation: ValidationResult | null;
  out: string;
}

interface LevelRuntime {
  optimizer: Optimizer;
  scheduler: LRScheduler | null;
}

const what = (name: string) => (name === "gradient norm" ? "the gradient norm" : `loss term '${name}'`);

function finiteOrThrow(step: number, level: string, name: string, value: number, out: string): never {
  const last = runPath(out, "last");
  const kept = existsSync(last) ? `the last good checkpoint ${last} is kept` : "no checkpoint was written yet";
  throw new TrainingDivergedError(
    `step ${step + 1}: ${what(name)}${level === "" ? "" : ` of level '${level}'`} is ${value}; stopping (${kept})`,
  );
}

export class Trainer {
  readonly config: TrainConfig;
  readonly out: string;
  readonly model: Model;
  readonly method: TrainingMethod;
  /** The layout training uses: config.memoryFormat where the crash table allows it, else NCHW. */
  readonly memoryFormat: MemoryFormat;
  /** Why a channels-last request fell back to NCHW (null: it did not). */
  readonly memoryFormatNotice: string | null;
  /** Validation (fp32) needs the model in NCHW: channels-last is allowed in training's precision only. */
  readonly #validateInNchw: boolean;
  readonly #levels: LevelRuntime[];
  readonly #loader: DataLoader;
  readonly #val: import("../data/dataset.js").ImageDataset;
  readonly #options: TrainerOptions;
  readonly #dp: DataParallel | null;
  #state: TrainState = { step: 0, epoch: 0, batch: 0, best: null, elapsed: 0 };

  constructor(options: TrainerOptions) {
    this.#options = options;
    const c = options.config;
    this.config = c;
    this.out = options.out;
    // RMOE_NUM_THREADS: the share of the cores `rmoe train --nproc` gives each of the
    // LOCAL_WORLD_SIZE processes on this machine; a preset's thread count (meant for one
    // process) does not exceed it there.
    const env = Number(process.env.RMOE_NUM_THREADS);
    const share = Number.isInteger(env) && env > 0 ? env : 0;
    const local = Number(process.env.LOCAL_WORLD_SIZE);
    const threads = c.threads > 0 ? c.threads : share > 0 ? share : availableParallelism();
    setNumThreads(share > 0 && local > 1 ? Math.min(threads, share) : threads);
    const { train, val } = trainSplits(c, options.dataRoot);
    this.#val = val;
    // The model's initial weights come from the seed alone.
    manualSeed(c.seed);
    this.model = buildTrainModel(c);
    // Channels-last only where the table of tested configurations allows it (a crash in
    // LibTorch cannot be caught); the request falls back to NCHW with a one-line notice.
    const kind = c.model.expert === "vit" ? "vit" : "moe";
    const layout = resolveMemoryFormat(c.memoryFormat, { model: kind, width: c.model.width, precision: c.precision });
    this.memoryFormat = layout.format;
    this.memoryFormatNotice = layout.notice;
    const stream = options.progress === undefined ? process.stderr : options.progress;
    if (layout.notice !== null) stream?.write(`${layout.notice}\n`);
    if (layout.format === "channelsLast") this.model.to({ memoryFormat: "channelsLast" });
    this.#validateInNchw =
      layout.format === "channelsLast" && !channelsLastSupport({ model: kind, width: c.model.width, precision: "fp32" }).allowed;
    const dpo = options.dataParallel;
    this.#dp = dpo === undefined ? null : new DataParallel(dpo.group, this.model, dpo);
    this.method = methodSpec(c.method).create(this.model, {
      attack: c.attack,
      beta: c.beta,
      alpha: c.alpha,
      loadBalancing: c.loadBalancing,
    });
    this.#loader = new DataLoader(train, {
      batchSize: c.batchSize,
      seed: c.seed,
      // Equal batches: BatchNorm never sees a batch of one, and every epoch has the same steps.
      dropLast: true,
      augment: {
        flip: c.data.augment.flip,
        ...(c.data.augment.translate > 0 ? { translate: c.data.augment.translate } : {}),
        ...(c.data.augment.cutout > 0 ? { cutout: c.data.augment.cutout } : {}),
      },
      workers: c.data.workers,
      ...(c.data.resize > 0 ? { resize: { size: c.data.resize } } : {}),
      ...(this.#dp !== null ? { shard: { rank: this.#dp.rank, worldSize: this.#dp.worldSize } } : {}),
      memoryFormat: this.memoryFormat,
    });
    if (this.#loader.length === 0) throw new Error(`data: ${train.length} training images make no batch of ${c.batchSize}`);
    this.#levels = this.method.levels.map((level) => {
      const optimizer = buildOptimizer(level.parameters, c);
      return { optimizer, scheduler: buildScheduler(optimizer, c, this.#loader.length) };
    });
    if (options.resume === true) {
      const last = runPath(this.out, "last");
      if (!existsSync(last)) throw new Error(`${this.out}: nothing to resume (no ${last})`);
      this.#state = loadTrainState(last, this.#trainable());
      if (this.#isWriter) truncateMetrics(this.out, this.#state.step, this.#state.epoch);
    } else if (this.#isWriter) {
      writeRunConfig(this.out, c, options.command ?? []);
      truncateMetrics(this.out, -1, -1);
    }
    // As DDP's constructor: every rank starts from rank 0's weights and buffers.
    this.#dp?.syncModule();
  }

  /** Rank 0 (or the only process) writes the run directory and shows progress. */
  get #isWriter(): boolean {
    return this.#dp === null || this.#dp.rank === 0;
  }

  #trainable() {
    return {
      model: this.model,
      optimizers: this.#levels.map((l) => l.optimizer),
      schedulers: this.#levels.map((l) => l.scheduler),
    };
  }

  get state(): Readonly<TrainState> {
    return this.#state;
  }

  /** Trains until the configured epochs (or maxSteps) are done; resumable at every checkpoint. */
  async run(): Promise<TrainSummary> {
    const c = this.config;
    const stream = !this.#isWriter ? null : this.#options.progress === undefined ? process.stderr : this.#options.progress;
    const progress = stream === null ? null : new TrainProgress(stream, c.logEvery);
    const batches = this.#loader.length;
    const totalSteps = c.epochs * batches;
    const startStep = this.#state.step;
    const t0 = performance.now();
    const elapsed0 = this.#state.elapsed;
    let lastValidation: ValidationResult | null = null;
    let windowStart = performance.now();
    let windowImages = 0;
    let logged: { loss: number; acc: number } = { loss: Number.NaN, acc: Number.NaN };
    try {
      while (this.#state.epoch < c.epochs) {
        const epoch = this.#state.epoch;
        for (const batch of this.#loader.epoch(epoch, this.#state.batch)) {
          if (this.#options.maxSteps !== undefined && this.#state.step >= this.#options.maxSteps) {
            dispose(batch);
            return this.#summary(t0, elapsed0, lastValidation);
          }
          let metrics: Record<string, number>;
          try {
            metrics = this.#step(batch);
          } finally {
            dispose(batch);
          }
          this.#state.step += 1;
          this.#state.batch += 1;
          windowImages += batch.indices.length * (this.#dp?.worldSize ?? 1);
          logged = { loss: metrics.loss as number, acc: metrics.acc as number };
          const now = performance.now();
          const done = this.#state.step - startStep;
          const perStep = (now - t0) / 1000 / done;
          progress?.update(
            {
              epoch,
              epochs: c.epochs,
              batch: this.#state.batch,
              batches,
              loss: logged.loss,
              accuracy: logged.acc,
              imagesPerSecond: (windowImages * 1000) / Math.max(1, now - windowStart),
              secondsLeft: perStep * (totalSteps - this.#state.step),
            },
            this.#state.step,
          );
          if (this.#state.step % c.logEvery === 0 && this.#isWriter) {
            const imgs = (windowImages * 1000) / Math.max(1e-9, now - windowStart);
            appendMetrics(this.out, {
              type: "step",
              step: this.#state.step,
              epoch,
              ...metrics,
              imagesPerSecond: Math.round(imgs * 10) / 10,
              rssMB: Math.round(process.memoryUsage().rss / 2 ** 20),
              liveTensors: memoryStats().liveTensors,
            });
            windowStart = now;
            windowImages = 0;
          }
          if (this.#state.step % c.checkpointEvery === 0) this.#saveLast(t0, elapsed0);
          // Let the event loop turn: native memory of freed tensor handles is released only then.
          await new Promise<void>((r) => setImmediate(r));
        }
        // End of epoch: validate, log, keep the best model, checkpoint at the next epoch's start.
        if ((epoch + 1) % c.validation.every === 0 || epoch + 1 === c.epochs) {
          lastValidation = await this.#validate(epoch);
          const v = lastValidation;
          const best = this.#state.best;
          if (best === null || v.robustAccuracy > best.robustAccuracy) {
            this.#state.best = {
              epoch,
              step: this.#state.step,
              robustAccuracy: v.robustAccuracy,
              cleanAccuracy: v.cleanAccuracy,
            };
            if (this.#isWriter) saveCheckpoint(runPath(this.out, "best"), this.model, this.#checkpointMetadata());
          }
          if (this.#isWriter)
            appendMetrics(this.out, {
              type: "epoch",
              epoch,
              step: this.#state.step,
              valClean: v.cleanAccuracy,
              valRobust: v.robustAccuracy,
              valN: v.n,
              valAttack: `${v.attack} eps ${v.eps.toFixed(5)}`,
              valSeconds: Math.round(v.seconds * 10) / 10,
              trainLoss: logged.loss,
              trainAcc: logged.acc,
              lr: this.#levels[0]?.optimizer.paramGroups[0]?.lr ?? 0,
            });
          progress?.line(
            `epoch ${epoch + 1}/${c.epochs}: val SA ${(100 * v.cleanAccuracy).toFixed(2)}%  RA ${(100 * v.robustAccuracy).toFixed(2)}% (${v.attack}, n=${v.n})`,
          );
        }
        this.#state.epoch += 1;
        this.#state.batch = 0;
        this.#saveLast(t0, elapsed0);
        await new Promise<void>((r) => setImmediate(r));
      }
      if (this.#isWriter) saveCheckpoint(runPath(this.out, "model"), this.model, this.#checkpointMetadata());
      return this.#summary(t0, elapsed0, lastValidation);
    } finally {
      progress?.finish();
    }
  }

  /** Frees the loader's workers and the optimizers' state (the model stays the caller's). */
  close(): void {
    this.#dp?.dispose();
    this.#loader.close();
    for (const l of this.#levels) l.optimizer.dispose();
  }

  #summary(t0: number, elapsed0: number, lastValidation: ValidationResult | null): TrainSummary {
    return {
      steps: this.#state.step,
      epochs: this.#state.epoch,
      seconds: elapsed0 + (performance.now() - t0) / 1000,
      best: this.#state.best,
      lastValidation,
      out: this.out,
    };
  }

  /**
   * Validation in fp32 (attacks in bf16 can be weaker). A channels-last model whose width is
   * allowed only under bf16 goes back to NCHW for it: the fp32 backward of the attack is
   * what crashes.
   */
  #validateHere(epoch: number): ValidationResult {
    if (!this.#validateInNchw) return validate(this.model, this.#val, this.config, epoch);
    this.model.to({ memoryFormat: "contiguous" });
    try {
      return validate(this.model, this.#val, this.config, epoch);
    } finally {
      this.model.to({ memoryFormat: "channelsLast" });
    }
  }

  #checkpointMetadata(): Record<string, string> {
    return {
      "robust-moe.train": JSON.stringify({
        method: this.config.method,
        step: this.#state.step,
        epoch: this.#state.epoch,
        seed: this.config.seed,
      }),
    };
  }

  #saveLast(t0: number, elapsed0: number): void {
    if (!this.#isWriter) return;
    saveTrainState(runPath(this.out, "last"), this.#trainable(), {
      ...this.#state,
      elapsed: elapsed0 + (performance.now() - t0) / 1000,
    });
  }
  #step(batch: TrainBatch): Record<string, number> {
    const metrics = trainStep(this.model, this.method, this.#levels, batch, {
      gradClip: this.config.gradClip,
      precision: this.config.precision,
      onNonFinite: (level, name, value) => finiteOrThrow(this.#state.step, level, name, value, this.out),
      ...(this.#dp !== null ? { dataParallel: this.#dp } : {}),
    });
    // The log shows the global batch's numbers: the mean over the ranks' equal shares.
    return this.#dp === null ? metrics : this.#dp.averageMetrics(metrics);
  }

  // Validation's PGD draws its random starts as one stream over the batches, so it is not
  // split: rank 0 validates and the others wait for its numbers (a wait as long as a
  // validation pass, hence asynchronous and with a timeout of its own).
  async #validate(epoch: number): Promise<ValidationResult> {
    const dp = this.#dp;
    if (dp === null) return this.#validateHere(epoch);
    const timeoutMs = Math.max(dp.group.timeoutMs, 24 * 3600 * 1000);
    if (dp.rank === 0) {
      const v = this.#validateHere(epoch);
      await dp.broadcastNumbers([v.n, v.cleanAccuracy, v.robustAccuracy, v.seconds], 0, timeoutMs);
      return v;
    }
    const [n, clean, robust, seconds] = await dp.broadcastNumbers([0, 0, 0, 0], 0, timeoutMs);
    return {
      n: n as number,
      cleanAccuracy: clean as number,
      robustAccuracy: robust as number,
      attack: "(validated on rank 0)",
      eps: this.config.validation.eps,
      seconds: seconds as number,
    };
  }
}

/** The global L2 norm of the parameters' gradients (those that have one). */
function gradNorm(params: readonly Tensor[]): number {
  return noGrad(() =>
    scope(() => {
      let sum: Tensor | null = null;
      for (const p of params) {
        const g = p.grad;
        if (g === null) continue;
        const sq = g.pow(2).sum().double();
        sum = sum === null ? sq : sum.add(sq);
      }
      return sum === null ? 0 : Math.sqrt(sum.item());
    }),
  );
}

export interface StepOptions {
  /** Max global gradient norm per level (0: none). */
  gradClip?: number;
  /** Called for a loss term that is NaN or infinite, before any gradient is taken (default: throw). */
  onNonFinite?: (level: string, term: string, value: number) => void;
  /** Data parallelism (src/dist): before each level's forward, and on its gradients after backward. */
  dataParallel?: {
    beforeForward(): void;
    beforeBackward(params: readonly Tensor[]): void;
    afterBackward(params: readonly Tensor[]): void;
  };
  /**
   * "bf16": each level's loss (its forwards, training attacks included) under bfloat16
   * autocast; backward, clipping and the update outside it, on the float32 master weights.
   * Default "fp32".
   */
  precision?: Precision;
}

/**
 * One training step on one batch: every level of the method in order, each with its modules
 * in training mode and the rest of the model in eval mode, its own gradients zeroed, its loss
 * checked, differentiated, clipped, and its optimizer and schedule stepped. Returns the
 * numbers for the log (terms prefixed by the level's name when there are several).
 */
export function trainStep(
  model: Model,
  method: TrainingMethod,
  levels: readonly { optimizer: Optimizer; scheduler?: LRScheduler | null }[],
  batch: TrainBatch,
  options: StepOptions = {},
): Record<string, number> {
  const metrics: Record<string, number> = {};
  const single = method.levels.length === 1;
  const check =
    options.onNonFinite ??
    ((level: string, term: string, value: number) => {
      throw new TrainingDivergedError(`${what(term)}${level === "" ? "" : ` of level '${level}'`} is ${value}`);
    });
  if (levels.length !== method.levels.length)
    throw new RangeError(`trainStep: ${levels.length} optimizers for ${method.levels.length} levels`);
  for (const [i, level] of method.levels.entries()) {
    const rt = levels[i] as { optimizer: Optimizer; scheduler?: LRScheduler | null };
    const prefix = single ? "" : `${level.name}.`;
    const levelName = single ? "" : level.name;
    model.eval();
    for (const m of level.trainModules) m.train();
    rt.optimizer.zeroGrad();
    options.dataParallel?.beforeForward();
    scope(() => {
      const r: BatchLoss = withPrecision(options.precision ?? "fp32", () => level.loss(batch));
      // The terms first, so that a message names the term that went wrong, not just the sum.
      for (const [name, t] of Object.entries(r.terms)) {
        const v = t.item();
        if (!Number.isFinite(v)) check(levelName, name, v);
        metrics[`${prefix}${name}`] = v;
      }
      const loss = r.loss.item();
      if (!Number.isFinite(loss)) check(levelName, "loss", loss);
      metrics[`${prefix}loss`] = loss;
      metrics[`${prefix}acc`] = noGrad(() => r.logits.argmax(1).eq(r.y).double().mean().item());
      options.dataParallel?.beforeBackward(level.parameters);
      r.loss.backward();
    });
    options.dataParallel?.afterBackward(level.parameters);
    // A finite loss can still have a non-finite gradient (an infinite derivative somewhere):
    // check the gradient before it reaches the weights, so the last checkpoint stays good.
    const norm =
      (options.gradClip ?? 0) > 0 ? clipGradNorm(level.parameters, options.gradClip as number) : gradNorm(level.parameters);
    if (!Number.isFinite(norm)) check(levelName, "gradient norm", norm);
    rt.optimizer.step();
    rt.scheduler?.step();
    metrics[`${prefix}lr`] = rt.optimizer.paramGroups[0]?.lr ?? 0;
  }
  // The headline numbers: the last level's (the model the method ends the batch with).
  if (!single) {
    const last = method.levels[method.levels.length - 1]?.name;
    metrics.loss = metrics[`${last}.loss`] as number;
    metrics.acc = metrics[`${last}.acc`] as number;
  }
  model.train();
  return metrics;
}
