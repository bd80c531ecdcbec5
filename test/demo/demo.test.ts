// rmoe demo --quick end to end on real CIFAR-10: every stage leaves its file, the report page
// and its numbers exist, and a second run skips every stage (the run directory is resumable).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { demoStages } from "../../src/demo/demo.js";
import { repoRoot } from "../helpers/paths.js";

const CLI = join(repoRoot, "dist", "src", "cli", "main.js");

describe("rmoe demo --quick", () => {
  const dir = mkdtempSync(join(tmpdir(), "rmoe-demo-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("runs every stage, writes the report, and skips finished stages when run again", () => {
    const out = join(dir, "demo");
    const first = spawnSync(process.execPath, [CLI, "demo", "--quick", "--out", out], { encoding: "utf8", timeout: 900_000 });
    assert.equal(first.status, 0, first.stderr.slice(-3000));
    const stages = demoStages({ out, quick: true });
    for (const s of stages) assert.ok(existsSync(s.output), `stage ${s.id} left ${s.output}`);
    assert.match(first.stdout, /report: .*index\.html/);
    const report = JSON.parse(readFileSync(join(out, "report", "report.json"), "utf8")) as {
      missing?: unknown[];
      certified: { method: string; curves: { model: string }[] }[];
    };
    assert.deepEqual(report.missing ?? [], [], "every section of the report has its input");
    // The single MoE and the dual model, under both certificates' norms.
    assert.deepEqual(
      report.certified.map((c) => [c.method, c.curves.map((k) => k.model)]),
      [
        ["randomized-smoothing", ["JTDMoE dual model"]],
        ["randomized-smoothing", ["RT-ER MoE"]],
        ["ibp", ["RT-ER MoE"]],
      ],
    );
    const sweep = JSON.parse(readFileSync(join(out, "sweep.json"), "utf8")) as {
      points: { alpha: number }[];
      markers: { kind: string }[];
    };
    assert.deepEqual(
      sweep.points.map((p) => p.alpha),
      [0, 0.25, 0.5, 0.75, 1],
    );
    assert.ok(sweep.markers.some((m) => m.kind === "jtdmoe"));
    const second = spawnSync(process.execPath, [CLI, "demo", "--quick", "--out", out], { encoding: "utf8", timeout: 120_000 });
    assert.equal(second.status, 0, second.stderr);
    assert.equal((second.stderr.match(/done before, skipped/g) ?? []).length, stages.length, "every stage skipped");
  });
});
