// The stages of `rmoe claims`: exactly what the selected claims and seeds need, with the flags
// that make each variant, the seed in every command, and resume when a checkpoint exists.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  type ClaimRow,
  type ClaimStage,
  claimsSettings,
  claimsStages,
  commandsFile,
  formatCommand,
  parseRows,
  parseSeeds,
  recordingStages,
} from "../../src/claims/plan.js";
import { presetPath, readConfigFile, resolveConfig } from "../../src/train/config.js";

const dir = mkdtempSync(join(tmpdir(), "rmoe-claims-plan-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function plan(rows: ClaimRow[], seeds: number[], extra: { quick?: boolean; dataRoot?: string } = {}): ClaimStage[] {
  return claimsStages({ out: join(dir, "out"), seeds, rows, n: 500, aaN: 200, quick: extra.quick ?? false, ...extra });
}
const ids = (stages: readonly ClaimStage[]) => stages.map((s) => s.id);
const trained = (stages: readonly ClaimStage[], seed: number) =>
  stages.filter((s) => s.kind === "train" && s.seed === seed).map((s) => s.id.replace(`seed-${seed}/train-`, ""));
const flag = (argv: readonly string[], name: string) => argv[argv.indexOf(name) + 1];
const sets = (argv: readonly string[]) => argv.flatMap((a, i) => (argv[i - 1] === "--set" ? [a] : []));

describe("claims plan", () => {
  it("claim 1 alone: the data, one standard MoE and its evaluation per seed", () => {
    assert.deepEqual(ids(plan([1], [0, 1])), [
      "data",
      "seed-0/train-standard",
      "seed-0/eval-standard",
      "seed-1/train-standard",
      "seed-1/eval-standard",
    ]);
  });

  it("every stage names the checkpoints it reads, each the output of an earlier stage", () => {
    const stages = plan([1, 2, 3, 4, 5, 6], [0, 1]);
    for (const [i, st] of stages.entries()) {
      const earlier = new Set(stages.slice(0, i).map((x) => x.output));
      for (const input of st.inputs ?? []) assert.ok(earlier.has(input), `${st.id} reads ${input}`);
      // Each input appears in the command, so the declared reads are the real ones.
      for (const input of st.inputs ?? []) assert.ok(st.command.includes(input), `${st.id}: ${input} not in its command`);
      if (st.kind === "train" || st.kind === "data") assert.equal(st.inputs, undefined, st.id);
      else assert.ok((st.inputs ?? []).length > 0, `${st.id} declares what it reads`);
    }
  });

  it("each claim trains only the models it needs", () => {
    assert.deepEqual(trained(plan([2], [0]), 0), ["pgd-at", "trades", "advmoe", "rt-er"]);
    assert.deepEqual(trained(plan([3], [0]), 0), ["standard", "rt-er", "jtdmoe"]);
    assert.deepEqual(trained(plan([5], [0]), 0), ["standard", "rt-er", "jtdmoe"]);
    assert.deepEqual(trained(plan([6], [0]), 0), ["standard", "standard-hard", "standard-nolb"]);
    // Every claim: each of the eight models once per seed.
    assert.equal(trained(plan([1, 2, 3, 4, 5, 6], [0]), 0).length, 8);
  });

  it("the hard router is trained only when claim 6 is asked, without load balancing", () => {
    for (const rows of [[1], [2], [3, 4], [5], [1, 2, 3, 4, 5]] as ClaimRow[][])
      assert.ok(!plan(rows, [0]).some((s) => s.command.includes("model.gating=hard")), `rows ${rows}`);
    const hard = plan([6], [0]).filter((s) => s.command.includes("model.gating=hard"));
    assert.equal(hard.length, 1);
    assert.deepEqual(sets((hard[0] as ClaimStage).command), ["seed=0", "model.gating=hard", "loadBalancing=0"]);
    const nolb = plan([6], [0]).find((s) => s.id === "seed-0/train-standard-nolb") as ClaimStage;
    assert.deepEqual(sets(nolb.command), ["seed=0", "loadBalancing=0"]);
  });

  it("every train command has the preset, the method and its seed; every other command its seed", () => {
    const stages = plan([1, 2, 3, 4, 5, 6], [0, 1, 2]);
    for (const s of stages.filter((x) => x.kind === "train")) {
      assert.equal(flag(s.command, "--preset"), "claims-cifar10");
      assert.ok(sets(s.command).includes(`seed=${s.seed}`), s.id);
      assert.ok(s.command.includes(join(dir, "out", `seed-${s.seed}`, s.id.split("train-")[1] as string)), s.id);
    }
    for (const s of stages.filter((x) => ["eval", "eval-aa", "sweep", "certify"].includes(x.kind)))
      assert.equal(flag(s.command, "--seed"), String(s.seed), s.id);
    const methods = new Set(stages.filter((x) => x.kind === "train").map((s) => flag(s.command, "--method")));
    assert.deepEqual([...methods].sort(), ["advmoe", "jtdmoe", "pgd-at", "rt-er", "standard", "trades"]);
  });

  it("evaluations: PGD-50 with RA-E/RA-R at 50 steps on --n; AutoAttack apart on --aa-n for claim 2", () => {
    const stages = plan([2], [0]);
    const pgd = stages.filter((s) => s.kind === "eval");
    assert.deepEqual(
      pgd.map((s) => s.id),
      ["seed-0/eval-pgd-at", "seed-0/eval-trades", "seed-0/eval-advmoe", "seed-0/eval-rt-er"],
    );
    for (const s of pgd) {
      assert.equal(flag(s.command, "--attacks"), "pgd50");
      assert.equal(flag(s.command, "--moe-steps"), "50");
      assert.equal(flag(s.command, "--n"), "500");
      assert.ok(s.command.includes("--json"));
      assert.equal(s.stdoutTo, s.output);
    }
    const aa = stages.filter((s) => s.kind === "eval-aa");
    assert.equal(aa.length, 4);
    for (const s of aa) {
      assert.equal(flag(s.command, "--attacks"), "aa");
      assert.equal(flag(s.command, "--n"), "200");
      assert.ok(s.command.includes("--no-moe-attacks"));
      assert.ok(!s.command.includes("--apgd-steps"), "full-scale AutoAttack keeps its own settings");
    }
    assert.ok(!plan([1, 3, 6], [0]).some((s) => s.kind === "eval-aa"));
  });

  it("claims 3 and 4 share one sweep with JTDMoE as a marker; claim 5 builds the dual model and certifies 3 models x 4 kinds", () => {
    const s34 = plan([3, 4], [0]).filter((s) => s.kind === "sweep");
    assert.equal(s34.length, 1);
    const sweep = s34[0] as ClaimStage;
    assert.deepEqual(sweep.rows, [3, 4]);
    assert.equal(flag(sweep.command, "--alphas"), "0:1:0.1");
    assert.equal(flag(sweep.command, "--attacks"), "pgd50");
    assert.match(flag(sweep.command, "--jtdmoe") as string, /seed-0\/jtdmoe\/model\.safetensors$/);
    const five = plan([5], [0]);
    const dual = five.find((s) => s.kind === "dual") as ClaimStage;
    assert.equal(flag(dual.command, "--alpha"), "0.5", "the preset's alpha, as JTDMoE's");
    assert.match(flag(dual.command, "--out") as string, /dual-alpha-0\.5\.safetensors$/);
    const certs = five.filter((s) => s.kind === "certify");
    assert.equal(certs.length, 12);
    const methods = certs.map(
      (s) => `${flag(s.command, "--method")}${s.command.includes("--norm") ? `-${flag(s.command, "--norm")}` : ""}`,
    );
    assert.deepEqual([...new Set(methods)].sort(), ["ibp", "lipschitz-l2", "lipschitz-linf", "smoothing"]);
    assert.ok(certs.some((s) => flag(s.command, "--ckpt") === flag(dual.command, "--out")));
    for (const s of certs) assert.equal(flag(s.command, "--out"), s.output);
    const smoothing = certs.filter((s) => flag(s.command, "--method") === "smoothing");
    for (const s of smoothing) assert.deepEqual([flag(s.command, "--n"), flag(s.command, "--samples")], ["100", "1000"]);
  });

  it("a training resumes when its last.safetensors exists; the recorded command stays the fresh one", () => {
    const out = join(dir, "resume");
    const stages = claimsStages({ out, seeds: [4], rows: [1], n: 10, aaN: 5, quick: false });
    const train = stages.find((s) => s.kind === "train") as ClaimStage;
    assert.deepEqual(train.args(), train.command);
    const [recording] = recordingStages(out, [train]) as [ClaimStage];
    mkdirSync(join(out, "seed-4", "standard"), { recursive: true });
    recording.args();
    writeFileSync(join(out, "seed-4", "standard", "last.safetensors"), "");
    assert.deepEqual(train.args(), ["train", "--resume", join(out, "seed-4", "standard")]);
    recording.args();
    const rec = JSON.parse(readFileSync(commandsFile(out), "utf8")) as {
      stages: Record<string, { command: string; lastRun: string }>;
    };
    const entry = rec.stages["seed-4/standard/model.safetensors"];
    assert.equal(entry?.command, formatCommand(train.command));
    assert.equal(entry?.lastRun, `rmoe train --resume ${join(out, "seed-4", "standard")}`);
  });

  it("--data-root reaches every command (as --root for rmoe data); --quick uses ci-tiny and smaller attacks", () => {
    const stages = plan([1, 2, 3, 4, 5, 6], [0], { dataRoot: "/d" });
    const data = stages[0] as ClaimStage;
    assert.deepEqual(data.command, ["data", "prepare", "cifar10", "--root", "/d"]);
    for (const s of stages.slice(1).filter((x) => x.kind !== "dual")) assert.equal(flag(s.command, "--data-root"), "/d", s.id);
    const quick = plan([1, 2, 3], [0], { quick: true });
    assert.ok(quick.filter((s) => s.kind === "train").every((s) => flag(s.command, "--preset") === "ci-tiny"));
    assert.equal(flag(quick.find((s) => s.kind === "sweep")?.command ?? [], "--alphas"), claimsSettings(true).alphas);
    assert.ok(quick.filter((s) => s.kind === "eval-aa").every((s) => s.command.includes("--apgd-steps")));
  });

  it("every training's config resolves: the preset with each variant's method and --set overrides", () => {
    for (const quick of [false, true]) {
      for (const s of plan([1, 2, 3, 4, 5, 6], [7], { quick }).filter((x) => x.kind === "train")) {
        const overrides = s.command.flatMap((a, i) =>
          s.command[i - 1] === "--set" ? [a.split("=", 2) as [string, string]] : [],
        );
        const shortcut = (flagName: string, key: string) =>
          s.command.includes(flagName) ? [[key, flag(s.command, flagName) as string] as [string, string]] : [];
        const c = resolveConfig(readConfigFile(presetPath(flag(s.command, "--preset") as string)), [
          ...overrides,
          ...shortcut("--method", "method"),
          ...shortcut("--epochs", "epochs"),
          ...shortcut("--attack-steps", "attack.steps"),
        ]);
        assert.equal(c.seed, 7, s.id);
        if (s.id.endsWith("standard-hard")) assert.deepEqual([c.model.gating, c.loadBalancing], ["hard", 0]);
        else if (s.id.endsWith("standard-nolb")) assert.deepEqual([c.model.gating, c.loadBalancing], ["topk", 0]);
        else assert.deepEqual([c.model.gating, c.loadBalancing], ["topk", 0.01], s.id);
        if (!quick) assert.deepEqual([c.model.width, c.data.trainSize, c.epochs, c.attack.steps], [8, 5000, 6, 3]);
      }
    }
  });

  it("parses --seeds and --rows, with errors naming the bad value", () => {
    assert.deepEqual(parseSeeds("0,1,2"), [0, 1, 2]);
    assert.deepEqual(parseSeeds("3-5,0"), [3, 4, 5, 0]);
    assert.deepEqual(parseRows("6,1-3"), [1, 2, 3, 6]);
    assert.throws(() => parseRows("7"), /--rows: '7' is not a claim/);
    assert.throws(() => parseRows("0"), /--rows: '0' is not a claim/);
    assert.throws(() => parseRows("1,1"), /1 is given twice/);
    assert.throws(() => parseRows("1,"), /empty entry/);
    assert.throws(() => parseSeeds("-1"), /--seeds: '-1' is not a non-negative integer/);
    assert.throws(() => parseSeeds("x"), /--seeds: 'x'/);
    assert.throws(() => parseSeeds("3-1"), /runs backwards/);
  });
});
