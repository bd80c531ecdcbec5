// `rmoe train --nproc 2` end to end on real CIFAR-10 (skipped when it is not prepared): two
// processes, each on its half of every global batch, train the same weights as one process
// (ViT experts: no BatchNorm; method 'standard': no random attack starts; no load-balancing
// term), log the same global loss, and resume on both ranks exactly where one process does.
// float32, so the tolerance is 1e-4 (summation order); the float64 check to 1e-5 is ddp.test.ts.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { availableBackends } from "../../src/dist/process-group.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { dispose } from "../../src/tensor/index.js";
import { readMetrics } from "../../src/train/run-dir.js";
import { cifarSkip } from "../data/real-data.js";
import { killAll, MAIN_JS, start, tempDir } from "./helpers.js";

const tmp = tempDir("rmoe-dist-train-");
after(() => {
  killAll();
  tmp.cleanup();
});

const COMMON = [
  "--preset",
  "ci-tiny",
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
  "--set",
  "loadBalancing=0",
  "--set",
  "logEvery=2",
  "--checkpoint-every",
  "2",
  "--threads",
  "1",
  "--quiet",
];

async function rmoe(args: readonly string[]): Promise<void> {
  const r = start(process.execPath, [MAIN_JS, "train", ...args]);
  const e = await r.exit;
  assert.equal(e.code, 0, `rmoe train ${args.join(" ")} failed:\n${e.stderr}`);
}

/** The largest |difference| between the float tensors of two safetensors files (same keys). */
function maxDifference(a: string, b: string): number {
  const ta = loadSafetensors(a).tensors;
  const tb = loadSafetensors(b).tensors;
  try {
    assert.deepEqual([...ta.keys()].sort(), [...tb.keys()].sort());
    let worst = 0;
    for (const [k, x] of ta) {
      if (!k.startsWith("model.")) continue;
      const y = tb.get(k);
      assert.ok(y !== undefined);
      const d = x.double().sub(y.double()).abs().max().item();
      worst = Math.max(worst, d);
    }
    return worst;
  } finally {
    dispose([...ta.values(), ...tb.values()]);
  }
}

const skip = cifarSkip || (!availableBackends().includes("gloo") && "built without gloo");

describe("rmoe train --nproc 2", { skip }, () => {
  it("trains the weights one process trains, logs its loss, and resumes on every rank", async () => {
    const single = join(tmp.dir, "single");
    const ddp = join(tmp.dir, "ddp");
    const resumed = join(tmp.dir, "resumed");
    await Promise.all([
      rmoe([...COMMON, "--out", single, "--max-steps", "6"]),
      rmoe([...COMMON, "--out", ddp, "--max-steps", "6", "--nproc", "2"]),
    ]);
    await rmoe([...COMMON, "--out", resumed, "--max-steps", "4", "--nproc", "2"]);
    await rmoe(["--resume", resumed, "--max-steps", "6", "--nproc", "2", "--quiet"]);

    for (const dir of [single, ddp, resumed]) assert.ok(existsSync(join(dir, "last.safetensors")), dir);
    const d = maxDifference(join(single, "last.safetensors"), join(ddp, "last.safetensors"));
    assert.ok(d < 1e-4, `2 processes vs 1: max |weight difference| ${d}`);
    const r = maxDifference(join(ddp, "last.safetensors"), join(resumed, "last.safetensors"));
    assert.ok(r < 1e-6, `resumed vs uninterrupted (both 2 processes): ${r}`);

    const steps = (dir: string) => readMetrics(dir).filter((m) => m.type === "step");
    const s1 = steps(single);
    const s2 = steps(ddp);
    assert.deepEqual(
      s2.map((m) => m.step),
      s1.map((m) => m.step),
    );
    assert.equal(s1.length, 3);
    for (const [i, m] of s1.entries()) {
      assert.ok(
        Math.abs((m.loss as number) - (s2[i]?.loss as number)) < 1e-4,
        `step ${m.step}: loss ${m.loss} vs ${s2[i]?.loss}`,
      );
      assert.ok(Math.abs((m.acc as number) - (s2[i]?.acc as number)) < 1e-9, `step ${m.step}: accuracy`);
    }
  });
});
