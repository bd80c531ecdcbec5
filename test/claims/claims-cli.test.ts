// `rmoe claims --quick --rows 1,3 --seeds 0` end to end on real CIFAR-10, in a child process in
// a temporary directory: every stage leaves its output, claims.json and results-tables.md are
// written from them, a second run (--resume) skips every stage, and usage errors exit with 2.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { claimsStages, stageCommand } from "../../src/claims/plan.js";
import type { ClaimsSummary } from "../../src/claims/summarize.js";
import { cifarSkip } from "../data/real-data.js";
import { repoRoot } from "../helpers/paths.js";

const CLI = join(repoRoot, "dist", "src", "cli", "main.js");
const dir = mkdtempSync(join(tmpdir(), "rmoe-claims-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const rmoe = (args: string[], timeout: number) =>
  spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: "utf8", timeout });

describe("rmoe claims", () => {
  it("usage errors exit with 2 and name the bad value", () => {
    const rows = rmoe(["claims", "--rows", "1,9"], 60_000);
    assert.equal(rows.status, 2, rows.stderr);
    assert.match(rows.stderr, /rmoe claims: --rows: '9' is not a claim of issue #13/);
    const seeds = rmoe(["claims", "--seeds", "0,x"], 60_000);
    assert.equal(seeds.status, 2);
    assert.match(seeds.stderr, /--seeds: 'x' is not a non-negative integer/);
    const unknown = rmoe(["claims", "--bogus"], 60_000);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown option '--bogus'/);
    // --resume into a directory with no earlier run: refused before anything starts or is created.
    const resume = rmoe(["claims", "--resume", "--out", "claimz", "--rows", "1"], 60_000);
    assert.equal(resume.status, 2, resume.stderr);
    assert.match(resume.stderr, /--resume: claimz holds no earlier rmoe claims run \(no claimz\/commands\.json\)/);
    assert.equal(existsSync(join(dir, "claimz")), false);
  });

  it("every full-scale command's options are accepted: each fails on the missing checkpoint (exit 1), never on usage (2)", {
    skip: cifarSkip,
  }, () => {
    const stages = claimsStages({ out: "nowhere", seeds: [0], rows: [1, 2, 3, 4, 5, 6], n: 2, aaN: 2, quick: false });
    const seen = new Set<string>();
    for (const s of stages) {
      // One command per kind of stage (the four certificates apart): the trainings are checked in plan.test.ts.
      const key = s.kind === "certify" ? (s.id.split("certify-")[1]?.replace(/-(rt-er|dual|jtdmoe)$/, "") ?? "") : s.kind;
      if (s.kind === "train" || s.kind === "data" || seen.has(key)) continue;
      seen.add(key);
      const r = rmoe([...s.command], 120_000);
      assert.equal(r.status, 1, `${stageCommand(s)}: ${r.stderr}`);
      assert.match(r.stderr, /not found|no such file|ENOENT|cannot read/i, stageCommand(s));
    }
    assert.deepEqual(
      [...seen].sort(),
      ["certify-ibp", "certify-lipschitz-l2", "certify-lipschitz-linf", "certify-smoothing", "dual", "eval", "eval-aa", "sweep"]
        .map((k) => k.replace(/^certify-/, ""))
        .sort(),
    );
  });

  it("--quick --rows 1,3 --seeds 0: runs every stage, summarizes, and skips them all when run again", { skip: cifarSkip }, () => {
    const args = ["claims", "--quick", "--rows", "1,3", "--seeds", "0", "--out", "out"];
    const t0 = performance.now();
    const first = rmoe(args, 600_000);
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(first.status, 0, first.stderr.slice(-3000));
    process.stderr.write(`rmoe claims --quick --rows 1,3 --seeds 0: ${seconds.toFixed(1)} s\n`);
    const out = join(dir, "out");
    // Planned as the child saw it: --out relative to its working directory.
    const stages = claimsStages({ out: "out", seeds: [0], rows: [1, 3], n: 32, aaN: 16, quick: true });
    assert.deepEqual(
      stages.map((s) => s.id),
      ["data", "seed-0/train-standard", "seed-0/train-rt-er", "seed-0/train-jtdmoe", "seed-0/eval-standard", "seed-0/sweep"],
    );
    for (const s of stages) assert.ok(existsSync(join(dir, s.output)), `stage ${s.id} left ${s.output}`);
    assert.match(first.stdout, /claims: .*claims\.json\ntables: .*results-tables\.md/);

    const sum = JSON.parse(readFileSync(join(out, "claims.json"), "utf8")) as ClaimsSummary;
    assert.deepEqual(
      sum.claims.map((c) => c.row),
      [1, 3],
    );
    for (const c of sum.claims) {
      assert.deepEqual(c.missing, [], `claim ${c.row}: every input exists`);
      assert.deepEqual(c.seedsComplete, [0]);
      assert.notEqual(c.status, "not run yet");
      assert.ok(c.verdict.length > 0, `claim ${c.row} has a verdict`);
      assert.ok(
        c.commands.every((k) => k.ran),
        `claim ${c.row}: every command ran`,
      );
    }
    const [c1, c3] = sum.claims;
    const row = c1?.tables[0]?.rows[0];
    assert.equal(row?.cells.length, 9);
    assert.ok(row?.cells.every((x) => x !== null && x.n === 1 && x.mean !== null && x.mean >= 0 && x.mean <= 1));
    assert.deepEqual(
      c3?.tables[0]?.rows.map((r) => r.label),
      ["alpha 0", "alpha 0.5", "alpha 1"],
    );
    // The recorded commands are the ones that ran: the summary's commands equal the plan's.
    assert.deepEqual(
      c1?.commands.map((k) => k.command),
      stages.filter((s) => s.rows.includes(1)).map((s) => stageCommand(s)),
    );
    const md = readFileSync(join(out, "results-tables.md"), "utf8");
    assert.match(md, /## Claim 1: /);
    assert.match(md, /## Claim 3: /);
    assert.match(
      md,
      /\nrmoe eval --ckpt out\/seed-0\/standard\/model\.safetensors .* --json > out\/seed-0\/eval-standard\.json\n/,
    );
    assert.match(
      md,
      /rmoe sweep --standard out\/seed-0\/standard\/model\.safetensors --robust out\/seed-0\/rt-er\/model\.safetensors/,
    );

    const second = rmoe([...args, "--resume"], 120_000);
    assert.equal(second.status, 0, second.stderr);
    assert.equal((second.stderr.match(/done before, skipped/g) ?? []).length, stages.length, "every stage skipped");
    assert.ok(existsSync(join(out, "claims.json")));

    // --summarize-only runs nothing: a claim whose stages never ran is "not run yet".
    const only = rmoe(["claims", "--quick", "--rows", "1,6", "--seeds", "0", "--out", "out", "--summarize-only"], 60_000);
    assert.equal(only.status, 0, only.stderr);
    assert.doesNotMatch(only.stderr, /stage \d+\//);
    const again = JSON.parse(readFileSync(join(out, "claims.json"), "utf8")) as ClaimsSummary;
    assert.deepEqual(
      again.claims.map((c) => [c.row, c.status === "not run yet"]),
      [
        [1, false],
        [6, true],
      ],
    );
    assert.match(readFileSync(join(out, "results-tables.md"), "utf8"), /seed 0: seed-0\/eval-standard-hard\.json: not run yet/);
  });
});
