// Serialisable model descriptions: what a checkpoint needs besides its tensors to rebuild
// the model (stored as JSON in the safetensors metadata).
import type { Module, UnaryModule } from "../nn/module.js";
import { DualModel, type MixSpace } from "./dual.js";
import { type GatingMode, MoE } from "./moe.js";
import { ResNet18 } from "./resnet18.js";
import type { RouterKind } from "./router.js";
import { ViT } from "./vit.js";

export interface Normalization {
  mean: number[];
  std: number[];
}

export interface ResNet18Config {
  kind: "resnet18";
  numClasses: number;
  width: number;
  normalize: Normalization | false;
}

export interface ViTConfig {
  kind: "vit";
  numClasses: number;
  imageSize: number;
  patchSize: number;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  channels: number;
  normalize: Normalization | false;
}

export type ExpertConfig = ResNet18Config | ViTConfig;

export interface MoEConfig {
  kind: "moe";
  experts: ExpertConfig[];
  k: number;
  gating: GatingMode;
  renormalize: boolean;
  router: RouterKind;
  routerNoise: number;
  imageShape: [number, number, number];
  normalize: Normalization;
}

export interface DualConfig {
  kind: "dual";
  standard: MoEConfig | ExpertConfig;
  robust: MoEConfig | ExpertConfig;
  alpha: number;
  space: MixSpace;
}

export type ModelConfig = ExpertConfig | MoEConfig | DualConfig;

export type Model = Module & UnaryModule;

export function buildModel(config: ModelConfig): Model {
  switch (config.kind) {
    case "resnet18":
      return new ResNet18({ numClasses: config.numClasses, width: config.width, normalize: config.normalize });
    case "vit":
      return new ViT(config);
    case "moe":
      return new MoE(config.experts.map(buildModel), config);
    case "dual":
      return new DualModel(buildModel(config.standard), buildModel(config.robust), { alpha: config.alpha, space: config.space });
    default:
      throw new TypeError(`unknown model kind '${(config as { kind: unknown }).kind}'`);
  }
}

function normalizationOf(m: Module): Normalization | false {
  const n = (m as { normalize?: Module }).normalize;
  if (n === undefined) return false;
  const sd = n.stateDict();
  const mean = sd.get("mean");
  const std = sd.get("std");
  if (mean === undefined || std === undefined) return false;
  return { mean: mean.toFlatArray(), std: std.toFlatArray() };
}

/** The config that rebuilds `model` (the inverse of buildModel). */
export function configOf(model: Module): ModelConfig {
  if (model instanceof ResNet18) {
    return { kind: "resnet18", numClasses: model.numClasses, width: model.width, normalize: normalizationOf(model) };
  }
  if (model instanceof ViT) {
    return { kind: "vit", ...model.config, normalize: normalizationOf(model) };
  }
  if (model instanceof MoE) {
    const experts = [...model.experts].map((e) => configOf(e));
    if (experts.some((e) => e.kind !== "resnet18" && e.kind !== "vit"))
      throw new TypeError("configOf: MoE experts must be ResNet18 or ViT");
    const norm = normalizationOf(model);
    if (norm === false) throw new TypeError("configOf: MoE without normalisation");
    return {
      kind: "moe",
      experts: experts as ExpertConfig[],
      k: model.k,
      gating: model.gating,
      renormalize: model.renormalize,
      router: model.routerKind,
      routerNoise: model.routerNoise,
      imageShape: [...model.imageShape],
      normalize: norm,
    };
  }
  if (model instanceof DualModel) {
    const standard = configOf(model.standard);
    const robust = configOf(model.robust);
    if (standard.kind === "dual" || robust.kind === "dual") throw new TypeError("configOf: nested dual models are not supported");
    return { kind: "dual", standard, robust, alpha: model.alpha, space: model.space };
  }
  throw new TypeError(`configOf: cannot describe a ${model.constructor.name}`);
}
