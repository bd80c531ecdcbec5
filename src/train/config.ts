// Training configuration: the schema, the defaults, presets (JSON files under presets/) and
// CLI overrides. A preset is a partial config merged over the defaults; `--set key=value` and
// the shortcut flags are merged over the preset; the result is validated as a whole and
// stored in the run directory's config.json, which is what --resume reads back.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { METHOD_NAMES } from "./methods/index.js";
import { ConfigError, type FieldSpec, type Json, merge, parseOverride, setPath, validate } from "./schema.js";

export interface TrainConfig {
  description: string;
  method: string;
  data: {
    dataset: "cifar10" | "tinyimagenet";
    /** Training images (0: every image not held out for validation). */
    trainSize: number;
    /** Images held out from the training split for validation (never the test set). */
    valSize: number;
    /** Resize batches to this side (0: keep the dataset's size); e.g. 224 for a pretrained ViT. */
    resize: number;
    augment: { flip: boolean; translate: number; cutout: number };
    /** Loader worker threads (0: assemble batches on the training thread). */
    workers: number;
  };
  model: {
    experts: number;
    expert: "resnet18" | "vit";
    /** ResNet18 width factor (64 = the standard ResNet18). */
    width: number;
    vit: { patchSize: number; dim: number; depth: number; heads: number; mlpRatio: number };
    /** timm ViT weights (safetensors) to initialise every expert from; null: from scratch. */
    pretrained: string | null;
    k: number;
    gating: "topk" | "dense" | "hard";
    renormalize: boolean;
    router: "linear" | "conv";
    routerNoise: number;
  };
  epochs: number;
  batchSize: number;
  optimizer: {
    name: "sgd" | "adam" | "adamw";
    lr: number;
    momentum: number;
    nesterov: boolean;
    weightDecay: number;
    betas: number[];
  };
  schedule: {
    name: "constant" | "cosine" | "multistep" | "cyclic";
    /** multistep: epochs at which the lr is multiplied by gamma. */
    milestones: number[];
    gamma: number;
    /** Linear warm-up (epochs) before cosine. */
    warmupEpochs: number;
    /** cyclic (triangular): the lower lr; the upper one is optimizer.lr. */
    cycleLow: number;
    /** cyclic: iterations per half cycle. */
    halfCycle: number;
  };
  /** Max global gradient norm per level (0: no clipping). */
  gradClip: number;
  attack: { eps: number; stepSize: number; steps: number; randomStart: boolean };
  beta: number;
  alpha: number;
  loadBalancing: number;
  seed: number;
  /** Intra-op threads (0: every core). */
  threads: number;
  /**
   * Training arithmetic: "fp32", or "bf16" (the loss's forward, training attacks included,
   * under bfloat16 autocast; float32 master weights, gradients and optimizer state).
   * Validation always runs in fp32.
   */
  precision: "fp32" | "bf16";
  /**
   * Layout of the model's convolution weights and the batches: "contiguous" (NCHW) or
   * "channelsLast" (NHWC), used only where the crash table allows it (nn/channels-last.ts),
   * else NCHW with a one-line notice.
   */
  memoryFormat: "contiguous" | "channelsLast";
  validation: { every: number; attackSteps: number; eps: number; stepSize: number; batchSize: number; seed: number };
  /** Log a metrics line every this many steps. */
  logEvery: number;
  /** Write the resumable `last` checkpoint every this many steps (and at every epoch end). */
  checkpointEvery: number;
}

const nonNeg = { type: "number", min: 0 } as const;
const nonNegInt = { type: "number", min: 0, integer: true } as const;
const posInt = { type: "number", min: 1, integer: true } as const;
const fraction = { type: "number", min: 0, fraction: true } as const;

export const TRAIN_SCHEMA: FieldSpec = {
  type: "object",
  fields: {
    description: { type: "string", doc: "what this preset is for" },
    method: { type: "string", enum: METHOD_NAMES, doc: "training method" },
    data: {
      type: "object",
      fields: {
        dataset: { type: "string", enum: ["cifar10", "tinyimagenet"] },
        trainSize: { ...nonNegInt, doc: "training images (0: all not held out)" },
        valSize: { ...posInt, doc: "validation images held out from the training split" },
        resize: nonNegInt,
        augment: { type: "object", fields: { flip: { type: "boolean" }, translate: nonNegInt, cutout: nonNegInt } },
        workers: nonNegInt,
      },
    },
    model: {
      type: "object",
      fields: {
        experts: posInt,
        expert: { type: "string", enum: ["resnet18", "vit"] },
        width: posInt,
        vit: {
          type: "object",
          fields: { patchSize: posInt, dim: posInt, depth: posInt, heads: posInt, mlpRatio: { type: "number", min: 0.25 } },
        },
        pretrained: { type: "string", nullable: true },
        k: posInt,
        gating: { type: "string", enum: ["topk", "dense", "hard"] },
        renormalize: { type: "boolean" },
        router: { type: "string", enum: ["linear", "conv"] },
        routerNoise: nonNeg,
      },
    },
    epochs: posInt,
    batchSize: posInt,
    optimizer: {
      type: "object",
      fields: {
        name: { type: "string", enum: ["sgd", "adam", "adamw"] },
        lr: { type: "number", min: 0, fraction: true },
        momentum: { type: "number", min: 0, max: 1 },
        nesterov: { type: "boolean" },
        weightDecay: nonNeg,
        betas: { type: "numbers", min: 0 },
      },
    },
    schedule: {
      type: "object",
      fields: {
        name: { type: "string", enum: ["constant", "cosine", "multistep", "cyclic"] },
        milestones: { type: "numbers", min: 1, integer: true },
        gamma: nonNeg,
        warmupEpochs: nonNegInt,
        cycleLow: { type: "number", min: 0, fraction: true },
        halfCycle: posInt,
      },
    },
    gradClip: nonNeg,
    attack: { type: "object", fields: { eps: fraction, stepSize: fraction, steps: nonNegInt, randomStart: { type: "boolean" } } },
    beta: nonNeg,
    alpha: { type: "number", min: 0, max: 1 },
    loadBalancing: nonNeg,
    seed: nonNegInt,
    threads: nonNegInt,
    precision: { type: "string", enum: ["fp32", "bf16"], doc: "fp32, or bf16 autocast with fp32 master weights" },
    memoryFormat: { type: "string", enum: ["contiguous", "channelsLast"], doc: "NCHW, or channels-last where allowed" },
    validation: {
      type: "object",
      fields: { every: posInt, attackSteps: nonNegInt, eps: fraction, stepSize: fraction, batchSize: posInt, seed: nonNegInt },
    },
    logEvery: posInt,
    checkpointEvery: posInt,
  },
};

/** Every value a preset may leave out. */
export const DEFAULT_CONFIG: TrainConfig = {
  description: "",
  method: "rt-er",
  data: {
    dataset: "cifar10",
    trainSize: 0,
    valSize: 1000,
    resize: 0,
    augment: { flip: true, translate: 2, cutout: 0 },
    workers: 1,
  },
  model: {
    experts: 4,
    expert: "resnet18",
    width: 64,
    vit: { patchSize: 16, dim: 384, depth: 12, heads: 6, mlpRatio: 4 },
    pretrained: null,
    k: 1,
    gating: "topk",
    renormalize: false,
    router: "linear",
    routerNoise: 0,
  },
  epochs: 10,
  batchSize: 128,
  optimizer: { name: "sgd", lr: 0.1, momentum: 0.9, nesterov: false, weightDecay: 5e-4, betas: [0.9, 0.999] },
  schedule: { name: "cosine", milestones: [], gamma: 0.1, warmupEpochs: 0, cycleLow: 5e-5, halfCycle: 500 },
  gradClip: 0,
  attack: { eps: 8 / 255, stepSize: 2 / 255, steps: 10, randomStart: true },
  beta: 6,
  alpha: 0.5,
  loadBalancing: 0,
  seed: 0,
  threads: 0,
  precision: "fp32",
  memoryFormat: "contiguous",
  validation: { every: 1, attackSteps: 10, eps: 8 / 255, stepSize: 2 / 255, batchSize: 256, seed: 0 },
  logEvery: 20,
  checkpointEvery: 200,
};

/** The presets folder shipped with the package (presets/ at the repository root). */
export function presetsDir(): string {
  // dist/src/train/config.js and src/train/config.ts are both three levels below the root.
  return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "presets");
}

export function presetNames(): string[] {
  try {
    return readdirSync(presetsDir())
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .sort();
  } catch {
    return [];
  }
}

/** A preset by name (presets/NAME.json) or by path (anything with a / or ending in .json). */
export function presetPath(nameOrPath: string): string {
  if (nameOrPath.includes("/") || nameOrPath.endsWith(".json")) return resolve(nameOrPath);
  const names = presetNames();
  if (!names.includes(nameOrPath))
    throw new ConfigError(`unknown preset '${nameOrPath}' (presets: ${names.join(", ")}; or give a path to a JSON file)`);
  return join(presetsDir(), `${nameOrPath}.json`);
}

/** Reads and validates a config file (a preset or a run's config), naming the file in errors. */
export function readConfigFile(path: string): Json {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`${path}: cannot read (${(e as Error).message})`);
  }
  let parsed: Json;
  try {
    parsed = JSON.parse(text) as Json;
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return validate(parsed, TRAIN_SCHEMA, path, "");
}

/**
 * The resolved config: defaults, then the preset, then overrides ([dotted key, raw string]
 * pairs from the command line), each checked against the schema, then cross-field checks.
 */
export function resolveConfig(
  preset: Json | null,
  overrides: readonly (readonly [string, string])[],
  presetSource = "preset",
): TrainConfig {
  // A copy: a resolved config never shares arrays with the defaults.
  let tree = merge(structuredClone(DEFAULT_CONFIG) as unknown as Json, preset ?? {});
  const patch: { [k: string]: Json } = {};
  for (const [key, raw] of overrides) setPath(patch, key, parseOverride(TRAIN_SCHEMA, key, raw, "command line"));
  tree = merge(tree, patch);
  // Errors found after merging name both origins when the command line took part.
  const source = overrides.length > 0 ? `${presetSource} with the command-line settings` : presetSource;
  const config = validate(tree, TRAIN_SCHEMA, source, "") as unknown as TrainConfig;
  checkConsistency(config, source);
  return config;
}

function checkConsistency(c: TrainConfig, source: string): void {
  const bad = (key: string, why: string): never => {
    throw new ConfigError(`${source}: '${key}' ${why}`);
  };
  if (c.model.k > c.model.experts) bad("model.k", `(${c.model.k}) cannot exceed model.experts (${c.model.experts})`);
  if ((c.method === "rt-er" || c.method === "jtdmoe") && c.model.experts < 2)
    bad("model.experts", `must be at least 2 for ${c.method} (it trains the runner-up expert)`);
  if (c.optimizer.betas.length !== 2 || c.optimizer.betas.some((b) => b >= 1))
    bad("optimizer.betas", "must be two numbers in [0, 1)");
  if (c.schedule.name === "cyclic" && c.schedule.cycleLow > c.optimizer.lr)
    bad("schedule.cycleLow", `(${c.schedule.cycleLow}) must not exceed optimizer.lr (${c.optimizer.lr})`);
  if (c.attack.stepSize > c.attack.eps && c.attack.steps > 0 && c.attack.eps > 0)
    bad("attack.stepSize", "is larger than attack.eps");
  if (c.model.pretrained !== null && c.model.expert !== "vit") bad("model.pretrained", "is only for ViT experts (timm weights)");
}

/** The config as JSON (for config.json and the checkpoint metadata). */
export function configJson(c: TrainConfig): Json {
  return c as unknown as Json;
}
