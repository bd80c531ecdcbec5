// The resumable `last` checkpoint of a run: one safetensors file (written atomically) with the
// model's state dict under `model.`, every level's optimizer tensors under `optim.<level>.`,
// the global generator's state as `rng.default` (uint8), and as JSON metadata the rest:
// step, epoch and position in the epoch (the loader's order is a function of seed and epoch,
// so the position is all the data state there is), the optimizers' numbers and groups, the
// schedules, the best validation result so far, and the training time spent.
import { loadSafetensors, saveSafetensors } from "../io/safetensors.js";
import type { Model } from "../models/config.js";
import type { LRScheduler, SchedulerStateDict } from "../optim/lr-scheduler.js";
import type { Optimizer, OptimizerStateDict } from "../optim/optimizer.js";
import { fromBytes } from "../tensor/creation.js";
import { defaultGenerator } from "../tensor/generator.js";
import { dispose, scope } from "../tensor/scope.js";
import { Tensor } from "../tensor/tensor.js";

export const TRAIN_STATE_KEY = "robust-moe.train-state";

/** Where the run is: the next batch to train is batch `batch` of epoch `epoch`. */
export interface Position {
  /** Optimisation steps done (batches trained). */
  step: number;
  epoch: number;
  batch: number;
}

export interface BestResult {
  epoch: number;
  step: number;
  robustAccuracy: number;
  cleanAccuracy: number;
}

export interface TrainState extends Position {
  best: BestResult | null;
  /** Seconds of training so far (across resumes). */
  elapsed: number;
}

interface OptimizerJson {
  paramGroups: OptimizerStateDict["paramGroups"];
  numbers: { [index: string]: { [key: string]: number } };
}

interface StateJson extends TrainState {
  format: 1;
  optimizers: OptimizerJson[];
  schedulers: (SchedulerStateDict | null)[];
}

export interface Trainable {
  model: Model;
  optimizers: readonly Optimizer[];
  schedulers: readonly (LRScheduler | null)[];
}

export function saveTrainState(path: string, t: Trainable, state: TrainState): void {
  scope(() => {
    const tensors = new Map<string, Tensor>();
    for (const [k, v] of t.model.stateDict()) tensors.set(`model.${k}`, v);
    const optimizers: OptimizerJson[] = t.optimizers.map((opt, level) => {
      const sd = opt.stateDict();
      const numbers: OptimizerJson["numbers"] = {};
      for (const [idx, entry] of Object.entries(sd.state)) {
        for (const [k, v] of Object.entries(entry)) {
          if (v instanceof Tensor) tensors.set(`optim.${level}.${idx}.${k}`, v);
          else {
            numbers[idx] ??= {};
            (numbers[idx] as { [key: string]: number })[k] = v;
          }
        }
      }
      return { paramGroups: sd.paramGroups, numbers };
    });
    const rng = defaultGenerator.getState();
    tensors.set("rng.default", fromBytes(rng, [rng.length], "uint8"));
    const json: StateJson = { format: 1, ...state, optimizers, schedulers: t.schedulers.map((s) => s?.stateDict() ?? null) };
    saveSafetensors(path, tensors, { [TRAIN_STATE_KEY]: JSON.stringify(json) });
  });
}

/** Restores model, optimizers, schedules and the global generator; returns the position and best result. */
export function loadTrainState(path: string, t: Trainable): TrainState {
  const { tensors, metadata } = loadSafetensors(path);
  try {
    const raw = metadata[TRAIN_STATE_KEY];
    if (raw === undefined) throw new Error(`${path}: not a robust-moe training state (no '${TRAIN_STATE_KEY}' metadata)`);
    const json = JSON.parse(raw) as StateJson;
    if (json.format !== 1) throw new Error(`${path}: training-state format ${String(json.format)} is not supported (expected 1)`);
    if (json.optimizers.length !== t.optimizers.length)
      throw new Error(`${path}: ${json.optimizers.length} optimizers saved, the method has ${t.optimizers.length} levels`);
    const modelState = new Map<string, Tensor>();
    for (const [k, v] of tensors) if (k.startsWith("model.")) modelState.set(k.slice(6), v);
    try {
      t.model.loadStateDict(modelState);
    } catch (e) {
      throw new Error(`${path}: the saved model does not fit this run's model (${(e as Error).message})`);
    }
    json.optimizers.forEach((o, level) => {
      const state: OptimizerStateDict["state"] = {};
      for (const [idx, nums] of Object.entries(o.numbers)) state[Number(idx)] = { ...nums };
      const prefix = `optim.${level}.`;
      for (const [k, v] of tensors) {
        if (!k.startsWith(prefix)) continue;
        const rest = k.slice(prefix.length);
        const dot = rest.indexOf(".");
        const idx = Number(rest.slice(0, dot));
        state[idx] ??= {};
        (state[idx] as { [key: string]: Tensor | number })[rest.slice(dot + 1)] = v;
      }
      (t.optimizers[level] as Optimizer).loadStateDict({ state, paramGroups: o.paramGroups });
    });
    json.schedulers.forEach((s, i) => {
      const sched = t.schedulers[i] ?? null;
      if ((s === null) !== (sched === null)) throw new Error(`${path}: schedule ${i} does not match the run's config`);
      if (s !== null) sched?.loadStateDict(s);
    });
    const rng = tensors.get("rng.default");
    if (rng === undefined) throw new Error(`${path}: no 'rng.default' generator state`);
    defaultGenerator.setState(new Uint8Array(rng.toBytes()));
    return { step: json.step, epoch: json.epoch, batch: json.batch, best: json.best, elapsed: json.elapsed };
  } finally {
    dispose(tensors);
  }
}
