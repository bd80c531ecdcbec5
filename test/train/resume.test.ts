// Exact resume: a run killed with SIGKILL at a random moment and resumed with --resume ends
// with weights bit-identical to an uninterrupted run of the same seed and thread count
// (compared tensor by tensor), and with the same validation numbers.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { dispose } from "../../src/tensor/index.js";
import { readMetrics } from "../../src/train/run-dir.js";
import { repoRoot } from "../helpers/paths.js";

const CLI = join(repoRoot, "dist", "src", "cli", "main.js");
// ci-tiny at 1 attack step: 32 RT-ER steps over 2 epochs, a checkpoint every 3 steps.
const ARGS = ["train", "--preset", "ci-tiny", "--quiet", "--attack-steps", "1", "--set", "checkpointEvery=3", "--threads", "2"];

function train(extra: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...ARGS, ...extra], { encoding: "utf8", timeout: 300_000 });
  return { status: r.status, stderr: r.stderr };
}

function resume(dir: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, "train", "--resume", dir, "--quiet"], { encoding: "utf8", timeout: 300_000 });
  return { status: r.status, stderr: r.stderr };
}

function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) resolve();
      else if (Date.now() - t0 > timeoutMs) reject(new Error("timed out"));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

describe("rmoe train --resume", () => {
  const dir = mkdtempSync(join(tmpdir(), "rmoe-resume-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a run killed with SIGKILL at a random moment and resumed is bit-identical to an uninterrupted one", async () => {
    const a = join(dir, "a");
    const t0 = Date.now();
    const full = train(["--out", a]);
    assert.equal(full.status, 0, full.stderr);
    const duration = Date.now() - t0;

    // The interrupted run: killed once its first checkpoint exists, after a random delay
    // within the rest of the run (printed, so a failure can be replayed).
    const b = join(dir, "b");
    const child = spawn(process.execPath, [CLI, ...ARGS, "--out", b], { stdio: "ignore" });
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
      child.on("exit", (code, signal) => resolve(signal ?? code)),
    );
    await waitFor(() => existsSync(join(b, "last.safetensors")), 120_000);
    const delay = Math.floor(Math.random() * duration * 0.5);
    await new Promise((r) => setTimeout(r, delay));
    child.kill("SIGKILL");
    const how = await exited;
    assert.equal(how, "SIGKILL", `the run must be killed mid-way (delay ${delay} ms of a ${duration} ms run)`);
    assert.equal(existsSync(join(b, "model.safetensors")), false, "the killed run had not finished");

    const resumed = resume(b);
    assert.equal(resumed.status, 0, `resume after a kill at +${delay} ms: ${resumed.stderr}`);

    const wa = loadSafetensors(join(a, "model.safetensors")).tensors;
    const wb = loadSafetensors(join(b, "model.safetensors")).tensors;
    try {
      assert.deepEqual([...wb.keys()], [...wa.keys()]);
      for (const [k, t] of wa) {
        assert.ok(
          Buffer.from(t.toBytes()).equals(Buffer.from((wb.get(k) as typeof t).toBytes())),
          `${k} differs after resume (kill at +${delay} ms)`,
        );
      }
    } finally {
      dispose(wa);
      dispose(wb);
    }
    const epochs = (d: string) =>
      readMetrics(d)
        .filter((m) => m.type === "epoch")
        .map((m) => [m.epoch, m.step, m.valClean, m.valRobust]);
    assert.deepEqual(epochs(b), epochs(a), "validation numbers after resume");
    const steps = readMetrics(b)
      .filter((m) => m.type === "step")
      .map((m) => m.step);
    assert.deepEqual(
      steps,
      [...new Set(steps)].sort((x, y) => (x as number) - (y as number)),
      "no step logged twice",
    );
  });

  it("--resume refuses a directory without a checkpoint, naming it", () => {
    const empty = join(dir, "empty");
    const r = spawnSync(process.execPath, [CLI, "train", "--resume", empty], { encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /not a run directory/);
  });
});
