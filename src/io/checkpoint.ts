// Model checkpoints: a safetensors file whose tensor names are the model's PyTorch-style state
// dict, plus the model's config as JSON in the metadata so `loadCheckpoint` can rebuild it.
import { buildModel, configOf, type Model, type ModelConfig } from "../models/config.js";
import { StateDictError } from "../nn/module.js";
import { dispose } from "../tensor/scope.js";
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from "./safetensors.js";

export const CONFIG_KEY = "robust-moe.model";
export const FORMAT_KEY = "robust-moe.format";
const FORMAT = "1";

export interface Checkpoint {
  model: Model;
  config: ModelConfig;
  metadata: Record<string, string>;
}

export function saveCheckpoint(path: string, model: Model, metadata: Record<string, string> = {}): void {
  const meta = { ...metadata, [FORMAT_KEY]: FORMAT, [CONFIG_KEY]: JSON.stringify(configOf(model)) };
  saveSafetensors(path, model.stateDict(), meta);
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function fail(path: string, field: string, problem: string): never {
  throw new Error(`${path}: model config field '${field}' ${problem}`);
}

function obj(v: Json | undefined, path: string, field: string): { [k: string]: Json } {
  if (v === null || typeof v !== "object" || Array.isArray(v)) fail(path, field, "must be an object");
  return v;
}

function int(v: Json | undefined, path: string, field: string, min = 1): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min)
    fail(path, field, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function num(v: Json | undefined, path: string, field: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) fail(path, field, `must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function oneOf<T extends string>(v: Json | undefined, options: readonly T[], path: string, field: string): T {
  if (typeof v !== "string" || !options.includes(v as T))
    fail(path, field, `must be one of ${options.join(", ")}, got ${JSON.stringify(v)}`);
  return v as T;
}

function numbers(v: Json | undefined, path: string, field: string): number[] {
  if (!Array.isArray(v) || v.some((e) => typeof e !== "number")) fail(path, field, "must be an array of numbers");
  return v as number[];
}

function normalization(v: Json | undefined, path: string, field: string): { mean: number[]; std: number[] } | false {
  if (v === false) return false;
  const o = obj(v, path, field);
  return { mean: numbers(o.mean, path, `${field}.mean`), std: numbers(o.std, path, `${field}.std`) };
}

/** Validates a config parsed from JSON, naming the first field that is wrong. */
export function parseModelConfig(v: Json, path: string, field = "model"): ModelConfig {
  const o = obj(v, path, field);
  const kind = oneOf(o.kind, ["resnet18", "vit", "moe", "dual"] as const, path, `${field}.kind`);
  switch (kind) {
    case "resnet18":
      return {
        kind,
        numClasses: int(o.numClasses, path, `${field}.numClasses`),
        width: int(o.width, path, `${field}.width`),
        normalize: normalization(o.normalize, path, `${field}.normalize`),
      };
    case "vit":
      return {
        kind,
        numClasses: int(o.numClasses, path, `${field}.numClasses`),
        imageSize: int(o.imageSize, path, `${field}.imageSize`),
        patchSize: int(o.patchSize, path, `${field}.patchSize`),
        dim: int(o.dim, path, `${field}.dim`),
        depth: int(o.depth, path, `${field}.depth`),
        heads: int(o.heads, path, `${field}.heads`),
        mlpRatio: num(o.mlpRatio, path, `${field}.mlpRatio`),
        channels: int(o.channels ?? 3, path, `${field}.channels`),
        normalize: normalization(o.normalize, path, `${field}.normalize`),
      };
    case "moe": {
      if (!Array.isArray(o.experts) || o.experts.length === 0) fail(path, `${field}.experts`, "must be a non-empty array");
      const experts = o.experts.map((e, i) => parseModelConfig(e, path, `${field}.experts[${i}]`));
      if (experts.some((e) => e.kind !== "resnet18" && e.kind !== "vit"))
        fail(path, `${field}.experts`, "must be resnet18 or vit experts");
      const shape = numbers(o.imageShape, path, `${field}.imageShape`);
      if (shape.length !== 3) fail(path, `${field}.imageShape`, "must be [channels, height, width]");
      const norm = normalization(o.normalize, path, `${field}.normalize`);
      if (norm === false) fail(path, `${field}.normalize`, "is required for a MoE");
      return {
        kind,
        experts: experts as Extract<ModelConfig, { kind: "resnet18" | "vit" }>[],
        k: int(o.k, path, `${field}.k`),
        gating: oneOf(o.gating, ["topk", "dense", "hard"] as const, path, `${field}.gating`),
        renormalize: o.renormalize === true,
        router: oneOf(o.router, ["linear", "conv"] as const, path, `${field}.router`),
        routerNoise: num(o.routerNoise ?? 0, path, `${field}.routerNoise`),
        imageShape: shape as [number, number, number],
        normalize: norm,
      };
    }
    case "dual": {
      const standard = parseModelConfig(o.standard ?? null, path, `${field}.standard`);
      const robust = parseModelConfig(o.robust ?? null, path, `${field}.robust`);
      if (standard.kind === "dual" || robust.kind === "dual") fail(path, field, "cannot nest dual models");
      return {
        kind,
        standard,
        robust,
        alpha: num(o.alpha, path, `${field}.alpha`),
        space: oneOf(o.space, ["logits", "probs"] as const, path, `${field}.space`),
      };
    }
  }
}

export function readCheckpointConfig(path: string): { config: ModelConfig; metadata: Record<string, string> } {
  const { metadata } = readSafetensorsHeader(path);
  const raw = metadata[CONFIG_KEY];
  if (raw === undefined) {
    throw new Error(
      `${path}: not a robust-moe checkpoint (no '${CONFIG_KEY}' in the safetensors metadata); load its tensors with loadSafetensors and Module.loadStateDict`,
    );
  }
  let parsed: Json;
  try {
    parsed = JSON.parse(raw) as Json;
  } catch (e) {
    throw new Error(`${path}: metadata '${CONFIG_KEY}' is not valid JSON (${(e as Error).message})`);
  }
  return { config: parseModelConfig(parsed, path), metadata: { ...metadata } };
}

export function loadCheckpoint(path: string): Checkpoint {
  const { config, metadata } = readCheckpointConfig(path);
  const { tensors } = loadSafetensors(path);
  const model = buildModel(config);
  try {
    model.loadStateDict(tensors);
  } catch (e) {
    model.dispose();
    if (e instanceof StateDictError) throw new Error(`${path}: ${e.message}`);
    throw e;
  } finally {
    dispose(tensors);
  }
  return { model, config, metadata };
}
