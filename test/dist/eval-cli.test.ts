// `rmoe eval --nproc 2`: each rank evaluates one shard (batches r, r+2, ...), rank 0 gathers
// the shards' flags over the process group, merges them and prints the report, which equals
// one process's report number for number (timings aside). Skipped without CIFAR-10.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { availableBackends } from "../../src/dist/process-group.js";
import { saveCheckpoint } from "../../src/io/checkpoint.js";
import { MoE, ResNet18 } from "../../src/models/index.js";
import { manualSeed } from "../../src/tensor/index.js";
import { cifarSkip } from "../data/real-data.js";
import { killAll, MAIN_JS, start, tempDir } from "./helpers.js";

const tmp = tempDir("rmoe-dist-eval-");
const ckpt = join(tmp.dir, "moe.safetensors");
after(() => {
  killAll();
  tmp.cleanup();
});
before(() => {
  manualSeed(0);
  const moe = new MoE([new ResNet18({ width: 2 }), new ResNet18({ width: 2 })]);
  saveCheckpoint(ckpt, moe);
  moe.dispose();
});

async function evalJson(extra: readonly string[]): Promise<string> {
  const args = ["eval", "--ckpt", ckpt, "--data", "cifar10", "--attacks", "fgsm,pgd2", "--n", "12", "--batch", "4"];
  const r = start(process.execPath, [MAIN_JS, ...args, "--moe-steps", "2", "--json", ...extra], {
    ...process.env,
    RMOE_NUM_THREADS: "1",
  });
  let stdout = "";
  r.child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  const e = await r.exit;
  assert.equal(e.code, 0, e.stderr);
  return stdout;
}

const skip = cifarSkip || (!availableBackends().includes("gloo") && "built without gloo");

describe("rmoe eval --nproc 2", { skip }, () => {
  it("rank 0 merges the ranks' shards into the report of one run", async () => {
    const [one, two] = await Promise.all([evalJson([]), evalJson(["--nproc", "2"])]);
    const strip = (t: string) => JSON.stringify(JSON.parse(t), (k, v) => (k === "seconds" ? 0 : v));
    assert.equal(strip(two), strip(one));
  });
});
