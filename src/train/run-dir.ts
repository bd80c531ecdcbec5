// The run directory people read: config.json (the resolved config, the version, the machine),
// metrics.jsonl (a line per logged step and per epoch), and the checkpoints:
//   last.safetensors   the resumable training state (train-state.ts)
//   best.safetensors   the model with the best validation RA (a model checkpoint: rmoe eval,
//                      and PyTorch's load_state_dict(strict=True), read it)
//   model.safetensors  the final model, written when the run ends
// Every file is written to a temporary name and renamed, so a killed run never leaves a
// half-written one.
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, hostname, platform, release, totalmem } from "node:os";
import { basename, dirname, join } from "node:path";
import { engineInfo } from "../tensor/runtime.js";
import type { TrainConfig } from "./config.js";
import type { Json } from "./schema.js";

export const RUN_FILES = {
  config: "config.json",
  metrics: "metrics.jsonl",
  last: "last.safetensors",
  best: "best.safetensors",
  model: "model.safetensors",
} as const;

export function runPath(dir: string, file: keyof typeof RUN_FILES): string {
  return join(dir, RUN_FILES[file]);
}

export function writeFileAtomic(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** The machine a run ran on, for config.json and reports. */
export function machineInfo(): Json {
  const e = engineInfo();
  return {
    hostname: hostname(),
    platform: `${platform()} ${release()}`,
    cpu: cpus()[0]?.model ?? "unknown",
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    torch: e.torchVersion,
    threads: e.threads,
    cuda: e.cudaAvailable,
  };
}

export interface RunConfigFile {
  version: string;
  createdAt: string;
  command: string[];
  machine: Json;
  config: TrainConfig;
}

export function writeRunConfig(dir: string, config: TrainConfig, command: readonly string[]): void {
  mkdirSync(dir, { recursive: true });
  const file: RunConfigFile = {
    version: packageVersion(),
    createdAt: new Date().toISOString(),
    command: [...command],
    machine: machineInfo(),
    config,
  };
  writeFileAtomic(runPath(dir, "config"), `${JSON.stringify(file, null, 2)}\n`);
}

export function readRunConfig(dir: string): RunConfigFile {
  const path = runPath(dir, "config");
  if (!existsSync(path)) throw new Error(`${dir}: not a run directory (no ${RUN_FILES.config})`);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as RunConfigFile;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** Appends one metrics line (JSON). */
export function appendMetrics(dir: string, line: Record<string, Json>): void {
  appendFileSync(runPath(dir, "metrics"), `${JSON.stringify(line)}\n`);
}

/**
 * On resume: keeps only the lines the resumed state accounts for (steps up to `step`, epochs
 * before `epoch`), so that the lines a killed run wrote after its last checkpoint are not
 * doubled when those steps run again.
 */
export function truncateMetrics(dir: string, step: number, epoch: number): void {
  const path = runPath(dir, "metrics");
  if (!existsSync(path)) return;
  const keep = readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => {
      if (l.trim() === "") return false;
      try {
        const m = JSON.parse(l) as { type?: string; step?: number; epoch?: number };
        return m.type === "epoch" ? (m.epoch ?? 0) < epoch : (m.step ?? 0) <= step;
      } catch {
        return false; // a line cut by the kill
      }
    });
  writeFileAtomic(path, keep.length === 0 ? "" : `${keep.join("\n")}\n`);
}

/** Reads metrics.jsonl (for reports and tests). */
export function readMetrics(dir: string): Record<string, Json>[] {
  const path = runPath(dir, "metrics");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, Json>);
}
