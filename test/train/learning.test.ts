// Every method learns: on ci-tiny (two width-2 ResNet18 experts, 512 CIFAR-10 images) for 192
// steps, the cross-entropy of what each level trains on falls and the validation accuracy of
// the trained model (the dual model for JTDMoE) is well above chance (10%). The runs are
// deterministic (seed 0, one intra-op thread each), two at a time on the two cores.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readMetrics } from "../../src/train/run-dir.js";
import { repoRoot } from "../helpers/paths.js";

const CLI = join(repoRoot, "dist", "src", "cli", "main.js");
// The CE term(s) each method's log shows, per level.
const METHODS: Record<string, string[]> = {
  standard: ["ce"],
  "pgd-at": ["ce"],
  trades: ["ce"],
  "rt-er": ["ce"],
  // AdvMoE: the experts level carries the learning; its router level mostly keeps routes stable.
  advmoe: ["experts.ce"],
  jtdmoe: ["robust.ce", "standard.ce"],
};

function run(method: string, out: string): Promise<{ code: number | null; stderr: string }> {
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
    method,
    "--attack-steps",
    "1",
    "--threads",
    "1",
    "--epochs",
    "12",
    "--set",
    "validation.every=12",
    "--set",
    "logEvery=8",
  ];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("exit", (code) => resolve({ code, stderr }));
  });
}

describe("every training method learns on ci-tiny", () => {
  const dir = mkdtempSync(join(tmpdir(), "rmoe-learn-"));
  const results = new Map<string, { code: number | null; stderr: string }>();
  before(async () => {
    const queue = Object.keys(METHODS);
    const worker = async () => {
      for (let m = queue.shift(); m !== undefined; m = queue.shift()) results.set(m, await run(m, join(dir, m)));
    };
    await Promise.all([worker(), worker()]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [method, terms] of Object.entries(METHODS)) {
    it(`${method}: the loss falls and validation SA is well above chance`, () => {
      const r = results.get(method);
      assert.equal(r?.code, 0, r?.stderr);
      const lines = readMetrics(join(dir, method));
      const steps = lines.filter((l) => l.type === "step");
      assert.equal(steps.at(-1)?.step, 192);
      const mean = (xs: unknown[]) => xs.reduce((a: number, b) => a + (b as number), 0) / xs.length;
      for (const term of terms) {
        const series = steps.map((s) => s[term]);
        const first = mean(series.slice(0, 3));
        const last = mean(series.slice(-3));
        assert.ok(last < first - 0.03, `${method}: ${term} fell from ${first.toFixed(3)} to ${last.toFixed(3)}`);
      }
      const epoch = lines.find((l) => l.type === "epoch");
      const sa = epoch?.valClean as number;
      const ra = epoch?.valRobust as number;
      assert.ok(sa >= 0.17, `${method}: validation SA ${sa} (chance 0.1)`);
      assert.ok(ra <= sa, `${method}: RA ${ra} <= SA ${sa}`);
    });
  }
});
