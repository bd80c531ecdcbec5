// From a TrainConfig to the objects a run needs: the model (a MoE, or for JTDMoE a dual model
// of two MoEs with the same architecture), the training and validation splits, and each
// level's optimizer and learning-rate schedule.
import { existsSync } from "node:fs";
import type { ImageDataset } from "../data/dataset.js";
import { Subset } from "../data/dataset.js";
import { mixSeed, Rng, shuffleInPlace } from "../data/rng.js";
import { loadEvalDataset } from "../eval/datasets.js";
import { loadSafetensors } from "../io/safetensors.js";
import { buildModel, type ExpertConfig, type Model, type ModelConfig, type MoEConfig } from "../models/config.js";
import { DualModel } from "../models/dual.js";
import type { MoE } from "../models/moe.js";
import { CIFAR10_MEAN, CIFAR10_STD } from "../models/normalize.js";
import { loadTimmViT } from "../models/pretrained.js";
import type { ViT } from "../models/vit.js";
import { Adam, AdamW } from "../optim/adam.js";
import { CosineAnnealingLR, CyclicLR, type LRScheduler, MultiStepLR, WarmupCosineLR } from "../optim/lr-scheduler.js";
import type { Optimizer } from "../optim/optimizer.js";
import { SGD } from "../optim/sgd.js";
import { dispose } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import type { TrainConfig } from "./config.js";
import { ConfigError } from "./schema.js";

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

function datasetGeometry(c: TrainConfig): { shape: [number, number, number]; classes: number; mean: number[]; std: number[] } {
  const side = c.data.resize > 0 ? c.data.resize : c.data.dataset === "cifar10" ? 32 : 64;
  if (c.data.dataset === "cifar10")
    return { shape: [3, side, side], classes: 10, mean: [...CIFAR10_MEAN], std: [...CIFAR10_STD] };
  return { shape: [3, side, side], classes: 200, mean: IMAGENET_MEAN, std: IMAGENET_STD };
}

/** The config of one MoE as the training config describes it. */
export function moeConfig(c: TrainConfig): MoEConfig {
  const g = datasetGeometry(c);
  const m = c.model;
  // Each expert normalises its own input, as the reference models do: the MoE passes the raw
  // [0, 1] image to the experts and normalises only the router's copy.
  const normalize = { mean: g.mean, std: g.std };
  const expert: ExpertConfig =
    m.expert === "resnet18"
      ? { kind: "resnet18", numClasses: g.classes, width: m.width, normalize }
      : { kind: "vit", numClasses: g.classes, imageSize: g.shape[1], channels: 3, normalize, ...m.vit };
  return {
    kind: "moe",
    experts: Array.from({ length: m.experts }, () => ({ ...expert })),
    k: m.k,
    gating: m.gating,
    renormalize: m.renormalize,
    router: m.router,
    routerNoise: m.routerNoise,
    imageShape: g.shape,
    normalize: { mean: g.mean, std: g.std },
  };
}

/** The model a method trains: a MoE, or for 'jtdmoe' the dual model (standard, robust). */
export function modelConfig(c: TrainConfig): ModelConfig {
  const moe = moeConfig(c);
  if (c.method === "jtdmoe")
    return { kind: "dual", standard: moe, robust: structuredClone(moe), alpha: c.alpha, space: "logits" };
  return moe;
}

/** Builds the model (weights drawn from the global generator: seed it first). */
export function buildTrainModel(c: TrainConfig): Model {
  const model = buildModel(modelConfig(c));
  if (c.model.pretrained !== null) loadPretrainedExperts(model, c.model.pretrained);
  return model;
}

function loadPretrainedExperts(model: Model, path: string): void {
  if (!existsSync(path)) throw new ConfigError(`model.pretrained: no file at ${path}`);
  const { tensors } = loadSafetensors(path);
  try {
    const moes: MoE[] = model instanceof DualModel ? [model.standard as MoE, model.robust as MoE] : [model as MoE];
    for (const moe of moes) for (const e of moe.experts) loadTimmViT(e as ViT, tensors);
  } finally {
    dispose(tensors);
  }
}

/**
 * The training and validation splits of the dataset's training split: a fixed permutation
 * (independent of the run's seed, so every run of a preset validates on the same images)
 * puts valSize images aside; the training set is the next trainSize (or all the rest).
 */
export function trainSplits(c: TrainConfig, root?: string): { train: ImageDataset; val: ImageDataset } {
  const full = loadEvalDataset(c.data.dataset, "train", root);
  const n = full.length;
  if (c.data.valSize >= n) throw new ConfigError(`data.valSize (${c.data.valSize}) must be below the ${n} training images`);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  shuffleInPlace(order, new Rng(mixSeed(0x5641_4c31, n)));
  const rest = n - c.data.valSize;
  const trainSize = c.data.trainSize === 0 ? rest : c.data.trainSize;
  if (trainSize > rest)
    throw new ConfigError(`data.trainSize (${trainSize}) exceeds the ${rest} training images left after data.valSize`);
  const val = order.slice(0, c.data.valSize).sort();
  const train = order.slice(c.data.valSize, c.data.valSize + trainSize).sort();
  return { train: new Subset(full, train), val: new Subset(full, val) };
}

export function buildOptimizer(params: readonly Tensor[], c: TrainConfig): Optimizer {
  const o = c.optimizer;
  const betas = [o.betas[0] as number, o.betas[1] as number] as const;
  switch (o.name) {
    case "sgd":
      return new SGD(params, { lr: o.lr, momentum: o.momentum, nesterov: o.nesterov, weightDecay: o.weightDecay });
    case "adam":
      return new Adam(params, { lr: o.lr, betas, weightDecay: o.weightDecay });
    case "adamw":
      return new AdamW(params, { lr: o.lr, betas, weightDecay: o.weightDecay });
  }
}

/**
 * The schedule, stepped once per batch: cosine over the whole run (after an optional linear
 * warm-up), multistep at epoch milestones, or the paper's triangular cyclic rate between
 * cycleLow and optimizer.lr with halfCycle iterations per half cycle. Null for 'constant'.
 */
export function buildScheduler(opt: Optimizer, c: TrainConfig, stepsPerEpoch: number): LRScheduler | null {
  const s = c.schedule;
  const total = c.epochs * stepsPerEpoch;
  switch (s.name) {
    case "constant":
      return null;
    case "cosine": {
      const warm = s.warmupEpochs * stepsPerEpoch;
      if (warm === 0) return new CosineAnnealingLR(opt, { tMax: total });
      if (warm >= total) throw new ConfigError(`schedule.warmupEpochs (${s.warmupEpochs}) must be below epochs (${c.epochs})`);
      return new WarmupCosineLR(opt, { warmupSteps: warm, cosineSteps: total - warm });
    }
    case "multistep":
      return new MultiStepLR(opt, { milestones: s.milestones.map((m) => m * stepsPerEpoch), gamma: s.gamma });
    case "cyclic":
      // No momentum cycling: PyTorch 1.13 refuses it for Adam, and the paper cycles the rate only.
      return new CyclicLR(opt, {
        baseLr: s.cycleLow,
        maxLr: c.optimizer.lr,
        stepSizeUp: s.halfCycle,
        mode: "triangular",
        cycleMomentum: false,
      });
  }
}
