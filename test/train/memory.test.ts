// Memory stays flat over a long run: 5,000 training steps (a tiny ViT MoE, clean training, so
// the test is about the loop and not the model), RSS at the end within 5% of RSS at step 500,
// and the number of live tensor handles exactly flat. Before the Trainer let the event loop
// turn every step, the native records of freed tensor handles piled up until it did
// (docs/PERFORMANCE.md, "memory in synchronous loops").
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { readMetrics } from "../../src/train/run-dir.js";
import { repoRoot } from "../helpers/paths.js";

const CLI = join(repoRoot, "dist", "src", "cli", "main.js");

describe("memory over a long training run", () => {
  const dir = mkdtempSync(join(tmpdir(), "rmoe-memory-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("5,000 steps: RSS at the end within 5% of RSS at step 500, live tensors flat", () => {
    const out = join(dir, "run");
    // prettier-ignore
    const args = [
      CLI,
      "train",
      "--preset",
      "ci-tiny",
      "--out",
      out,
      "--quiet",
      "--method",
      "standard",
      "--set",
      "model.expert=vit",
      "--set",
      "model.vit.patchSize=8",
      "--set",
      "model.vit.dim=16",
      "--set",
      "model.vit.depth=1",
      "--set",
      "model.vit.heads=2",
      "--set",
      "model.vit.mlpRatio=2",
      "--batch-size",
      "16",
      "--epochs",
      "200",
      "--max-steps",
      "5000",
      "--set",
      "validation.every=1000",
      "--set",
      "logEvery=100",
      "--set",
      "checkpointEvery=1000000",
      "--threads",
      "1",
    ];
    const r = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 900_000 });
    assert.equal(r.status, 0, r.stderr);
    const steps = readMetrics(out).filter((m) => m.type === "step");
    const at = (s: number) => steps.find((m) => m.step === s) as { rssMB: number; liveTensors: number };
    assert.equal(steps.at(-1)?.step, 5000);
    const [early, late] = [at(500), at(5000)];
    assert.ok(late.rssMB <= early.rssMB * 1.05, `RSS grew from ${early.rssMB} MB at step 500 to ${late.rssMB} MB at step 5000`);
    assert.equal(late.liveTensors, early.liveTensors, "live tensor handles at step 500 and step 5000");
  });
});
