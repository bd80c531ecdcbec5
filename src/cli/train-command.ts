// `rmoe train`: train a model with one of the methods (docs/TRAINING.md) into a run directory,
// or continue one with --resume.
import { resolve } from "node:path";
import type { Backend } from "../dist/process-group.js";
import { DEFAULT_TIMEOUT_MS } from "../dist/store.js";
import { presetNames, presetPath, readConfigFile, resolveConfig, type TrainConfig } from "../train/config.js";
import { METHODS } from "../train/methods/index.js";
import { readRunConfig } from "../train/run-dir.js";
import { ConfigError, type Json } from "../train/schema.js";
import { Trainer } from "../train/trainer.js";
import { startDistributed } from "./dist-options.js";
import { runCommand, UsageError } from "./eval-command.js";

/** Shortcut flags and the config keys they set (anything else: --set key=value). */
const SHORTCUTS: Record<string, string> = {
  method: "method",
  epochs: "epochs",
  "batch-size": "batchSize",
  optimizer: "optimizer.name",
  lr: "optimizer.lr",
  "weight-decay": "optimizer.weightDecay",
  schedule: "schedule.name",
  eps: "attack.eps",
  "step-size": "attack.stepSize",
  "attack-steps": "attack.steps",
  beta: "beta",
  alpha: "alpha",
  "load-balancing": "loadBalancing",
  "router-noise": "model.routerNoise",
  experts: "model.experts",
  width: "model.width",
  gating: "model.gating",
  "train-size": "data.trainSize",
  "val-size": "data.valSize",
  seed: "seed",
  threads: "threads",
  precision: "precision",
  "memory-format": "memoryFormat",
  "grad-clip": "gradClip",
  "checkpoint-every": "checkpointEvery",
};

export const TRAIN_SUMMARY = `train --preset P --method M --out DIR [options] | train --resume DIR
                                             train a model (docs/TRAINING.md)`;

function usage(): string {
  const methods = METHODS.map((m) => `    ${m.name.padEnd(10)} ${m.summary}`).join("\n");
  const flags = Object.entries(SHORTCUTS)
    .map(([f, k]) => `--${f} (${k})`)
    .join(", ");
  return `usage: rmoe train --preset NAME|FILE.json [--method M] --out DIR [options]
       rmoe train --resume DIR [--max-steps N]

Trains into DIR: config.json, metrics.jsonl, last.safetensors (resumable state),
best.safetensors (best validation RA), model.safetensors (final model).

methods:
${methods}

presets: ${presetNames().join(", ")}

options:
  --preset NAME|FILE   a preset (presets/NAME.json) or a JSON file with the same keys
  --out DIR            run directory (required unless --resume)
  --resume DIR         continue the run in DIR exactly where its last checkpoint left it
  --set KEY=VALUE      set any config key (repeatable), e.g. --set data.augment.cutout=8
  --data-root DIR      data cache (default $RMOE_DATA or ~/.cache/robust-moe)
  --max-steps N        stop after N steps in total (the run stays resumable)
  --quiet              no progress display

data parallelism (docs/DISTRIBUTED.md; batch-size is the global batch):
  --nproc N            start N local processes (as torchrun: RANK, WORLD_SIZE, MASTER_ADDR,
                       MASTER_PORT... in their environment; each gets cores/N threads)
  --world-size W       processes in all machines together (default N with --nproc)
  --rank R             this process's rank (with --nproc: the first of this machine's ranks)
  --master-addr HOST   where rank 0 serves the store (default 127.0.0.1)
  --master-port PORT   its port (default: a free one with --nproc on the machine of rank 0)
  --backend gloo|nccl  c10d backend (default gloo)
  --dist-timeout S     seconds a collective may wait for a peer (default 1800)
  --sync-bn            BatchNorm over the global batch (SyncBatchNorm) instead of each rank's share
  Without flags, RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT are read from the environment.
shortcuts: ${flags}

Exit codes: 0 done; 1 error (bad config, data not prepared, diverged loss); 2 usage error.
`;
}

interface TrainArgs {
  preset: string | null;
  out: string | null;
  resume: string | null;
  overrides: [string, string][];
  dataRoot: string | undefined;
  maxSteps: number | undefined;
  quiet: boolean;
  nproc: number | undefined;
  rank: number | undefined;
  worldSize: number | undefined;
  masterAddr: string | undefined;
  masterPort: number | undefined;
  backend: Backend;
  distTimeoutMs: number;
  syncBatchNorm: boolean;
}

function intOption(name: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`rmoe train: --${name} must be an integer in [${min}, ${max}], got '${value}'`);
  return n;
}

function parseArgs(argv: readonly string[]): TrainArgs {
  const a: TrainArgs = {
    preset: null,
    out: null,
    resume: null,
    overrides: [],
    dataRoot: undefined,
    maxSteps: undefined,
    quiet: false,
    nproc: undefined,
    rank: undefined,
    worldSize: undefined,
    masterAddr: undefined,
    masterPort: undefined,
    backend: "gloo",
    distTimeoutMs: DEFAULT_TIMEOUT_MS,
    syncBatchNorm: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith("--")) throw new UsageError(`rmoe train: unexpected argument '${arg}'`);
    const name = arg.slice(2);
    if (name === "quiet") {
      a.quiet = true;
      continue;
    }
    if (name === "sync-bn") {
      a.syncBatchNorm = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new UsageError(`rmoe train: option '${arg}' needs a value`);
    switch (name) {
      case "nproc":
        a.nproc = intOption(name, value, 1, 1024);
        break;
      case "rank":
        a.rank = intOption(name, value, 0);
        break;
      case "world-size":
        a.worldSize = intOption(name, value, 1);
        break;
      case "master-addr":
        if (value === "") throw new UsageError("rmoe train: --master-addr must not be empty");
        a.masterAddr = value;
        break;
      case "master-port":
        a.masterPort = intOption(name, value, 1, 65535);
        break;
      case "backend":
        if (value !== "gloo" && value !== "nccl")
          throw new UsageError(`rmoe train: --backend must be 'gloo' or 'nccl', got '${value}'`);
        a.backend = value;
        break;
      case "dist-timeout": {
        const t = Number(value);
        if (!(t > 0)) throw new UsageError(`rmoe train: --dist-timeout must be a positive number of seconds, got '${value}'`);
        a.distTimeoutMs = t * 1000;
        break;
      }
      case "preset":
        a.preset = value;
        break;
      case "out":
        a.out = value;
        break;
      case "resume":
        a.resume = value;
        break;
      case "data-root":
        a.dataRoot = value;
        break;
      case "max-steps": {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1)
          throw new UsageError(`rmoe train: --max-steps must be a positive integer, got '${value}'`);
        a.maxSteps = n;
        break;
      }
      case "set": {
        const eq = value.indexOf("=");
        if (eq <= 0) throw new UsageError(`rmoe train: --set needs KEY=VALUE, got '${value}'`);
        a.overrides.push([value.slice(0, eq), value.slice(eq + 1)]);
        break;
      }
      default: {
        const key = SHORTCUTS[name];
        if (key === undefined) throw new UsageError(`rmoe train: unknown option '${arg}' (see rmoe train --help)`);
        a.overrides.push([key, value]);
      }
    }
  }
  return a;
}

/** `rmoe train ...`; returns the exit code. */
export async function trainCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage());
    return 0;
  }
  return runCommand("rmoe train", usage(), async () => {
    const a = parseArgs(argv);
    let config: TrainConfig;
    let out: string;
    if (a.resume !== null) {
      if (a.preset !== null || a.out !== null || a.overrides.length > 0)
        throw new UsageError("rmoe train: --resume continues a run with its own config; give no --preset, --out or overrides");
      out = resolve(a.resume);
      const saved = readRunConfig(out);
      // Runs from before these keys existed trained in fp32 NCHW: resume them so, whatever
      // today's defaults are.
      const previous = { precision: "fp32", memoryFormat: "contiguous", ...(saved.config as object) } as unknown as Json;
      config = resolveConfig(previous, [], `${out}/config.json`);
    } else {
      if (a.out === null) throw new UsageError("rmoe train: --out DIR is required (or --resume DIR)");
      out = resolve(a.out);
      const presetFile = a.preset === null ? null : presetPath(a.preset);
      const preset = presetFile === null ? null : readConfigFile(presetFile);
      config = resolveConfig(preset, a.overrides, presetFile ?? "defaults");
    }
    // After the config is known good: --nproc must not start processes that all fail the same way.
    const started = await startDistributed(
      "train",
      {
        nproc: a.nproc,
        rank: a.rank,
        "world-size": a.worldSize,
        "master-addr": a.masterAddr,
        "master-port": a.masterPort,
        "dist-timeout": a.distTimeoutMs / 1000,
        backend: a.backend,
      },
      argv,
    );
    if ("launched" in started) return started.launched;
    const group = started.group;
    let trainer: Trainer;
    try {
      trainer = new Trainer({
        config,
        out,
        resume: a.resume !== null,
        command: ["rmoe", "train", ...argv],
        ...(a.dataRoot !== undefined ? { dataRoot: a.dataRoot } : {}),
        ...(a.maxSteps !== undefined ? { maxSteps: a.maxSteps } : {}),
        progress: a.quiet ? null : process.stderr,
        ...(group !== null ? { dataParallel: { group, syncBatchNorm: a.syncBatchNorm } } : {}),
      });
    } catch (e) {
      await group?.destroy().catch(() => {});
      throw e;
    }
    try {
      const s = await trainer.run();
      if (group !== null && group.rank !== 0) return 0;
      const best =
        s.best === null
          ? ""
          : `; best val RA ${(100 * s.best.robustAccuracy).toFixed(2)}% (SA ${(100 * s.best.cleanAccuracy).toFixed(2)}%) at epoch ${s.best.epoch + 1}`;
      process.stdout.write(
        `rmoe train: ${s.steps} steps, ${s.epochs} epochs in ${s.seconds.toFixed(1)} s${best}\nrun directory: ${out}\n`,
      );
      return 0;
    } finally {
      trainer.close();
      trainer.model.dispose();
      // After a failure a collective may still be in flight; the original error matters more.
      await group?.destroy().catch(() => {});
    }
  });
}

export { ConfigError };
