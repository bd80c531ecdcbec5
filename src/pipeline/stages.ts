// A pipeline of `rmoe` commands, each a stage that leaves a file: the runner behind `rmoe demo`
// and `rmoe claims`. Every stage runs the command in its own process (so each frees its memory,
// and each is exactly what a user would type), is skipped when its output exists, and a
// command that prints JSON lands under its name only when it succeeded (temp file, then
// rename), so an interrupted pipeline resumes where it stopped when run again. A stage whose
// output is gone but whose every reader is done is skipped too: results kept without their
// checkpoints (docs/RESULTS.md keeps the claims' JSON in git, not the models) do not retrain.
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { formatDuration } from "../train/progress.js";

export interface Stage {
  id: string;
  title: string;
  /** Rough share of the whole run, for the time-left estimate. */
  weight: number;
  /** The file whose existence means the stage is done. */
  output: string;
  /** The rmoe command line (without 'rmoe'), or a function that decides (training: resume or start). */
  args: () => string[];
  /** Write stdout to `output` (for commands that print JSON). */
  stdoutTo?: string;
  /** Write a timestamp to `output` after success (for commands that leave no file of their own). */
  marker?: boolean;
  /** The outputs of earlier stages this one reads (a checkpoint, say); see stageStates. */
  inputs?: readonly string[];
}

/**
 * What a stage of the plan is: 'done' (its output exists), 'not-needed' (its output is missing,
 * but some later stages read it and none of them has to run) or 'to-run'. A stage nobody reads
 * (a final result, or one whose readers do not declare it) runs whenever its output is missing.
 */
export type StageState = "done" | "not-needed" | "to-run";

export function stageStates(stages: readonly Stage[], exists: (file: string) => boolean = existsSync): StageState[] {
  const states: StageState[] = new Array(stages.length);
  for (let i = stages.length - 1; i >= 0; i--) {
    const stage = stages[i] as Stage;
    if (exists(stage.output)) {
      states[i] = "done";
      continue;
    }
    let readers = 0;
    let readerRuns = false;
    for (let j = i + 1; j < stages.length; j++) {
      if (!(stages[j]?.inputs ?? []).includes(stage.output)) continue;
      readers++;
      if (states[j] === "to-run") readerRuns = true;
    }
    states[i] = readers > 0 && !readerRuns ? "not-needed" : "to-run";
  }
  return states;
}

const CLI = resolve(fileURLToPath(import.meta.url), "..", "..", "cli", "main.js");

/** Runs `rmoe args...` in a child process (stdout to a file when given); resolves to its exit status. */
export function runRmoe(args: readonly string[], stdoutTo: string | undefined): Promise<number> {
  return new Promise((resolveExit, reject) => {
    const tmp = stdoutTo === undefined ? null : `${stdoutTo}.tmp-${process.pid}`;
    const fd = tmp === null ? null : openSync(tmp, "w");
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", fd ?? "inherit", "inherit"] });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (fd !== null) closeSync(fd);
      const status = code ?? (signal === null ? 1 : 128);
      // The JSON lands under its name only when the command succeeded.
      if (status === 0 && tmp !== null && stdoutTo !== undefined) renameSync(tmp, stdoutTo);
      resolveExit(status);
    });
  });
}

/**
 * Runs the stages not yet done, in order, printing 'NAME: stage k/n: title' with the time spent
 * and an estimate of the time left (from the stages run so far, weighted by their share).
 * Throws naming the stage that failed.
 */
export async function runStages(name: string, stages: readonly Stage[], log: (line: string) => void): Promise<number> {
  const total = stages.reduce((a, s) => a + s.weight, 0);
  const t0 = performance.now();
  let doneWeight = 0;
  let ranWeight = 0;
  const states = stageStates(stages);
  for (const [i, stage] of stages.entries()) {
    const head = `${name}: stage ${i + 1}/${stages.length}: ${stage.title}`;
    if (existsSync(stage.output) || states[i] === "not-needed") {
      log(
        existsSync(stage.output)
          ? `${head}: done before, skipped`
          : `${head}: skipped, every stage that reads its output is done`,
      );
      doneWeight += stage.weight;
      continue;
    }
    const elapsed = (performance.now() - t0) / 1000;
    const left = ranWeight > 0 ? (elapsed / ranWeight) * (total - doneWeight) : null;
    log(`${head} (elapsed ${formatDuration(elapsed)}, left ${left === null ? "estimating" : `~${formatDuration(left)}`})`);
    const status = await runRmoe(stage.args(), stage.stdoutTo);
    if (status !== 0)
      throw new Error(`stage '${stage.id}' failed (exit ${status}); run ${name} again with the same --out to resume`);
    if (stage.marker === true) writeFileSync(stage.output, `${new Date().toISOString()}\n`);
    doneWeight += stage.weight;
    ranWeight += stage.weight;
  }
  return (performance.now() - t0) / 1000;
}
