// `rmoe eval` and `rmoe attack` end to end, in child processes, on tiny untrained
// checkpoints (a width-2 ResNet18, a MoE of two, a dual model of two such MoEs) and the
// first 16 real CIFAR-10 test images. Errors that need no data run always; the rest skip
// with the reason when CIFAR-10 is not prepared.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { RobustnessReport } from "../../src/eval/index.js";
import { saveCheckpoint } from "../../src/io/checkpoint.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { DualModel, MoE, ResNet18, ViT } from "../../src/models/index.js";
import { dispose, manualSeed, scope } from "../../src/tensor/index.js";
import { assertInThreatModel } from "../attacks/helpers.js";
import { cifarSkip } from "../data/real-data.js";
import { tempDir } from "../data/synth.js";
import { repoRoot } from "../helpers/paths.js";

const tmp = tempDir("eval-cli");
after(tmp.cleanup);
const ckpt = {
  resnet: join(tmp.dir, "resnet.safetensors"),
  moe: join(tmp.dir, "moe.safetensors"),
  dual: join(tmp.dir, "dual.safetensors"),
  resnet100: join(tmp.dir, "resnet100.safetensors"),
  vit64: join(tmp.dir, "vit64.safetensors"),
};

function runner(file: string, fn: string): string {
  return `const m = await import(${JSON.stringify(join(repoRoot, "dist/src/cli", file))}); process.exitCode = await m.${fn}(process.argv.slice(1));`;
}

function rmoe(command: "eval" | "attack", args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const code = command === "eval" ? runner("eval-command.js", "evalCommand") : runner("attack-command.js", "attackCommand");
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code, "--", ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(stdout: string): RobustnessReport {
  return JSON.parse(stdout) as RobustnessReport;
}

const sum = (xs: readonly number[]) => xs.reduce((s, v) => s + v, 0);
const FAST = ["--n", "16", "--apgd-steps", "5", "--moe-steps", "5"];

before(() => {
  manualSeed(0);
  const moe = () => new MoE([new ResNet18({ width: 2 }), new ResNet18({ width: 2 })]);
  const models = {
    resnet: new ResNet18({ width: 2 }),
    moe: moe(),
    dual: new DualModel(moe(), moe(), { alpha: 0.5 }),
    resnet100: new ResNet18({ width: 2, numClasses: 100 }),
    vit64: new ViT({ imageSize: 64, patchSize: 16, dim: 16, depth: 1, heads: 2 }),
  };
  for (const [k, m] of Object.entries(models)) {
    saveCheckpoint(ckpt[k as keyof typeof ckpt], m);
    m.dispose();
  }
});

describe("rmoe eval / rmoe attack: errors", () => {
  it("prints usage on --help (exit 0) and rejects bad usage with exit code 2", () => {
    const help = rmoe("eval", ["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /usage: rmoe eval --ckpt FILE --data/);
    assert.match(help.stdout, /--masking-checks/);
    for (const re of [/--save-flags FILE/, /--shard I\/N/, /--confidence L/, /rmoe eval merge FLAGS\.\.\. --out REPORT/]) {
      assert.match(help.stdout, re);
    }
    const cases: [string[], RegExp][] = [
      [["--data", "cifar10"], /--ckpt FILE is required/],
      [["--ckpt", ckpt.resnet], /--data is required/],
      [["--ckpt", ckpt.resnet, "--data", "mnist"], /unknown dataset 'mnist'/],
      [["--ckpt", ckpt.resnet, "--data", "cifar10", "--bogus"], /unknown option '--bogus'/],
      [
        ["--ckpt", ckpt.resnet, "--data", "cifar10", "--eps", "8/x"],
        /--eps: eps must be a number or a fraction like 8\/255, got '8\/x'/,
      ],
      [["--ckpt", ckpt.resnet, "--data", "cifar10", "--norm", "l1"], /--norm must be linf or l2/],
      [["--ckpt", ckpt.resnet, "--data", "cifar10", "--split", "val"], /cifar10 has no split 'val'/],
      [["--ckpt", ckpt.resnet, "--data", "cifar10", "--n", "0"], /'--n' must be at least 1/],
      [["--ckpt", ckpt.dual, "--data", "cifar10", "--alpha", "1.5"], /--alpha must be in \[0, 1\]/],
      [["--ckpt", ckpt.resnet, "--data", "cifar10", "--shard", "1/2"], /--shard needs --save-flags FILE/],
      [["--ckpt", ckpt.resnet, "--data", "cifar10", "--shard", "3/2", "--save-flags", "f"], /--shard: .*1\.\.2, got 3/],
      [["--ckpt", ckpt.resnet, "--data", "cifar10", "--eps", "2/255,x"], /--eps: eps must be a number/],
      [["--ckpt", ckpt.resnet, "--data", "cifar10", "--confidence", "1"], /--confidence must be in \(0, 1\)/],
      [
        ["--ckpt", ckpt.resnet, "--data", "cifar10", "--certify", "crown"],
        /--certify must be one of ibp, smoothing, lipschitz, got 'crown'/,
      ],
      [["--ckpt", ckpt.resnet, "--data", "cifar10", "--certify", "smoothing", "--sigma", "0"], /--sigma must be > 0/],
      [
        ["--ckpt", ckpt.resnet, "--data", "cifar10", "--certify", "ibp", "--certify-eps", "1/x"],
        /--certify-eps: eps must be a number/,
      ],
      [["merge", "a.json"], /--out REPORT is required/],
      [["merge", "--out", "r.json"], /give the flags files of the shards/],
    ];
    for (const [args, re] of cases) {
      const r = rmoe("eval", args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.match(r.stderr, /usage: rmoe eval/);
    }
    const a = rmoe("attack", ["--ckpt", ckpt.resnet, "--data", "cifar10", "--attack", "pgd5"]);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /--out FILE is required/);
  });

  it("fails with exit code 1 and a message naming the problem", () => {
    const notCkpt = join(tmp.dir, "not-a-checkpoint.safetensors");
    writeFileSync(notCkpt, "hello, this is not a safetensors file");
    const empty = join(tmp.dir, "empty-root");
    mkdirSync(empty, { recursive: true });
    const cases: [string[], RegExp][] = [
      [
        ["--ckpt", ckpt.resnet, "--data", "cifar10", "--attacks", "pgd10,zap"],
        /rmoe eval: unknown attack 'zap' \(known: fgsm, pgd<steps>/,
      ],
      [["--ckpt", ckpt.resnet, "--data", "cifar10", "--attacks", "pgd"], /unknown attack 'pgd' \(give the steps/],
      [
        ["--ckpt", join(tmp.dir, "missing.safetensors"), "--data", "cifar10"],
        /rmoe eval: checkpoint not found: .*missing\.safetensors/,
      ],
      [["--ckpt", notCkpt, "--data", "cifar10"], /rmoe eval: cannot read checkpoint .*not-a-checkpoint\.safetensors/],
      [
        ["--ckpt", ckpt.resnet, "--data", "cifar10", "--alpha", "0.5"],
        /--alpha applies to dual models only; .* holds a resnet18 model/,
      ],
      [
        ["--ckpt", ckpt.resnet, "--data", "cifar10", "--data-root", empty],
        /cifar10 is not prepared under .*empty-root\/cifar10: prepare it with `rmoe data prepare cifar10 --root .*empty-root`/,
      ],
    ];
    for (const [args, re] of cases) {
      const r = rmoe("eval", args);
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /usage:/);
    }
    const a = rmoe("attack", [
      "--ckpt",
      ckpt.resnet,
      "--data",
      "cifar10",
      "--attack",
      "pgd5,fgsm",
      "--out",
      join(tmp.dir, "x.st"),
    ]);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /rmoe attack: unknown attack 'pgd5,fgsm'/);
  });

  it("a checkpoint whose classes or image size do not fit the dataset: exit code 1; --resize fits it", {
    skip: cifarSkip,
  }, () => {
    const r = rmoe("eval", ["--ckpt", ckpt.resnet100, "--data", "cifar10", "--n", "4"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /checkpoint .*resnet100\.safetensors predicts 100 classes but cifar10 \(test\) has 10/);
    const v = rmoe("eval", ["--ckpt", ckpt.vit64, "--data", "cifar10", "--n", "2"]);
    assert.equal(v.code, 1, v.stderr);
    assert.match(v.stderr, /takes 64x64 images but cifar10 \(test\) images are 32x32 \(resize them with --resize 64/);
    const ok = rmoe("eval", [
      "--ckpt",
      ckpt.vit64,
      "--data",
      "cifar10",
      "--n",
      "2",
      "--resize",
      "64",
      "--attacks",
      "fgsm",
      "--json",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(json(ok.stdout).model.type, "ViT");
  });
});

describe("rmoe eval / rmoe attack on CIFAR-10", { skip: cifarSkip }, () => {
  it("a ResNet18: --json has the documented fields", () => {
    const r = rmoe("eval", ["--ckpt", ckpt.resnet, "--data", "cifar10", "--attacks", "fgsm,pgd5,apgd-ce", ...FAST, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = json(r.stdout);
    assert.equal(j.schema, "robust-moe.robustness-report");
    // Version 2 (issue 15): RA-E/RA-R AND-ed with clean; intervals, curves and zero-gradient flags added.
    assert.equal(j.version, 2);
    assert.equal(j.shard, null);
    assert.deepEqual(j.confidence, { level: 0.95, method: "clopper-pearson" });
    assert.ok(j.clean.interval.lower <= j.clean.accuracy && j.clean.accuracy <= j.clean.interval.upper);
    assert.deepEqual(j.curves.eps, [8 / 255]);
    assert.deepEqual(
      j.zeroGradients.map((z) => z.objective),
      ["model:ce"],
    );
    assert.deepEqual(j.source, { checkpoint: ckpt.resnet, dataset: "cifar10", split: "test" });
    assert.deepEqual(j.model, { kind: "plain", type: "ResNet18", alpha: null, space: null, members: null });
    assert.deepEqual(j.threatModel, { norm: "linf", eps: 8 / 255 });
    assert.equal(j.seed, 0);
    assert.equal(j.n, 16);
    assert.equal(j.classes.length, 10);
    assert.equal(j.classes[0], "airplane");
    assert.deepEqual(
      j.attacks.map((a) => [a.spec, a.attack]),
      [
        ["fgsm", "FGSM (linf)"],
        ["pgd5", "PGD-5 (linf, ce)"],
        ["apgd-ce", "APGD-CE (linf, 5 steps)"],
      ],
    );
    for (const a of j.attacks) {
      assert.ok(a.correct <= j.clean.correct);
      assert.equal(a.accuracy, a.correct / 16);
      assert.ok(a.seconds >= 0);
    }
    assert.ok(j.worstCase !== null && j.worstCase.correct <= Math.min(...j.attacks.map((a) => a.correct)));
    assert.equal(sum(j.perClass.map((c) => c.n)), 16);
    // The first 16 CIFAR-10 test labels: 3 8 8 0 6 6 1 6 3 1 0 9 5 7 9 8.
    assert.deepEqual(
      j.perClass.map((c) => c.n),
      [2, 2, 0, 2, 0, 1, 3, 1, 3, 2],
    );
    assert.equal(sum(j.perClass.map((c) => c.clean.correct)), j.clean.correct);
    assert.deepEqual(j.moe, []);
    assert.equal(j.masking, null);
    assert.match(r.stderr, /rmoe eval: 100% 16 images \/ 16 images .* done/, "plain progress line when stderr is not a terminal");
  });

  it("--certify ibp: certified accuracy in the JSON and the table, checked against the run's attacks", () => {
    const args = ["--ckpt", ckpt.moe, "--data", "cifar10", "--attacks", "fgsm", "--eps", "1/255,2/255", ...FAST];
    const r = rmoe("eval", [...args, "--certify", "ibp", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const c = json(r.stdout).certified;
    assert.ok(c !== null && c !== undefined);
    assert.equal(c.method, "ibp");
    assert.deepEqual(
      c.points.map((p) => [p.eps, p.brokenByAttacks]),
      [
        [1 / 255, []],
        [2 / 255, []],
      ],
    );
    for (const p of c.points) assert.ok(p.correct <= json(r.stdout).clean.correct);
    const table = rmoe("eval", [...args, "--certify", "ibp", "--certify-eps", "1/255"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /certified: IBP with CROWN refinement, L-inf \(sound, deterministic\)/);
    assert.match(table.stdout, /certified accuracy\s+radius\s+accuracy\s+count/);
    assert.match(table.stdout, /\n\s+1\/255\s+[\d.]+%\s+\d+\/16/);
  });

  it("a MoE: the human table, expert usage, RA-E/RA-R and the masking checks", () => {
    const r = rmoe("eval", [
      "--ckpt",
      ckpt.moe,
      "--data",
      "cifar10",
      "--attacks",
      "pgd5,fgsm",
      ...FAST,
      "--batch",
      "4",
      "--masking-checks",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const t = r.stdout;
    for (const re of [
      /^robust-moe robustness evaluation$/m,
      /checkpoint\s+.*moe\.safetensors/,
      /data\s+cifar10 test, 16 images/,
      /model\s+MoE \(2 experts, top-1 gating\)/,
      /threat model\s+L-inf, eps 8\/255 \(0\.031373\), seed 0/,
      /SA\s+clean\s+\d+\.\d\d%\s+\d+\/16/,
      /RA\s+pgd5\s+\d+\.\d\d%\s+\d+\/16/,
      /attacks:\s+pgd5\s+PGD-5 \(linf, ce\)/,
      /RA\s+worst case/,
      /RA-E\s+expert attack \(router frozen at clean x\)\s+\d+\.\d\d%/,
      /RA-R\s+router attack \(experts frozen at clean x\)\s+\d+\.\d\d%/,
      /expert usage \(top-1 routes\)\s+e0\s+e1\s+route flips/,
      /per class\s+n\s+clean\s+robust \(worst case\)/,
      /airplane\s+2\s/,
      /gradient-masking checks on the first batch \(4 images\)/,
      /(ok {3}|FLAG )zero-gradients:/,
      /(ok {3}|FLAG )unbounded-attack:/,
    ]) {
      assert.match(t, re);
    }
    const usage = /^\s+clean\s+(\d+)\s+(\d+)\s*$/m.exec(t);
    assert.ok(usage !== null, "clean usage row");
    assert.equal(Number(usage[1]) + Number(usage[2]), 16, "expert usage sums to n");

    const j = rmoe("eval", ["--ckpt", ckpt.moe, "--data", "cifar10", "--attacks", "pgd5", ...FAST, "--json"]);
    assert.equal(j.code, 0, j.stderr);
    const rep = json(j.stdout);
    assert.equal(rep.model.kind, "moe");
    const m = rep.moe[0];
    assert.ok(m !== undefined);
    assert.equal(m.member, "model");
    assert.equal(sum(m.usage.counts), 16);
    assert.equal(sum(m.underAttack[0]?.counts ?? []), 16);
    assert.ok(m.expertAttack !== null && m.routerAttack !== null);
    assert.match(m.routerAttack.attack, /RouterAttack PGD-5/);
    const off = json(
      rmoe("eval", ["--ckpt", ckpt.moe, "--data", "cifar10", "--attacks", "fgsm", "--n", "8", "--no-moe-attacks", "--json"])
        .stdout,
    );
    assert.equal(off.moe[0]?.expertAttack, null);
    assert.equal(sum(off.moe[0]?.usage.counts ?? []), 8);
  });

  it("a dual model: --alpha, and RA-E/RA-R for each member attacked alone", () => {
    const r = rmoe("eval", ["--ckpt", ckpt.dual, "--data", "cifar10", "--attacks", "pgd5", ...FAST, "--alpha", "0.3", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = json(r.stdout);
    assert.equal(j.model.kind, "dual");
    assert.equal(j.model.alpha, 0.3);
    assert.deepEqual(
      j.moe.map((m) => [m.member, m.attackedAlone]),
      [
        ["standard", true],
        ["robust", true],
      ],
    );
    for (const m of j.moe) assert.equal(sum(m.usage.counts), 16);
    const t = rmoe("eval", ["--ckpt", ckpt.dual, "--data", "cifar10", "--attacks", "fgsm", "--n", "8", "--moe-steps", "2"]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /model\s+dual model \(alpha 0\.5, mixes logits\)/);
    assert.match(t.stdout, /every RA above attacks the dual model end to end/);
    assert.match(t.stdout, /MoE analysis of the dual model's standard member/);
    assert.match(t.stdout, /RA-E and RA-R attack this member ALONE, not the dual model/);
    assert.match(t.stdout, /MoE analysis of the dual model's robust member/);
  });

  it("rmoe attack writes x_adv within the eps ball of x and in [0, 1], with labels, predictions and metadata", () => {
    const out = join(tmp.dir, "adv.safetensors");
    const r = rmoe("attack", ["--ckpt", ckpt.moe, "--data", "cifar10", "--attack", "pgd5", "--n", "16", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote 16 adversarial examples to .*adv\.safetensors/);
    const { tensors, metadata } = loadSafetensors(out);
    try {
      const t = (k: string) => {
        const v = tensors.get(k);
        assert.ok(v !== undefined, `missing tensor ${k}`);
        return v;
      };
      assert.deepEqual([...tensors.keys()].sort(), ["pred_adv", "pred_clean", "x", "x_adv", "y"]);
      assert.deepEqual(t("x").shape, [16, 3, 32, 32]);
      assert.equal(t("y").dtype, "int64");
      assert.deepEqual(t("y").toFlatArray(), [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8]);
      assertInThreatModel(t("x_adv"), t("x"), 8 / 255, "linf", "x_adv");
      const [clean, robust] = scope(() => {
        const okClean = t("pred_clean").eq(t("y"));
        return [
          okClean.double().mean().item(),
          okClean
            .logicalAnd(t("pred_adv").eq(t("y")))
            .double()
            .mean()
            .item(),
        ];
      });
      assert.equal(metadata.attack, "pgd5");
      assert.equal(metadata.attack_name, "PGD-5 (linf, ce)");
      assert.equal(Number(metadata.eps), 8 / 255);
      assert.equal(metadata.eps_text, "8/255");
      assert.equal(metadata.norm, "linf");
      assert.equal(metadata.checkpoint, ckpt.moe);
      assert.equal(metadata.dataset, "cifar10");
      assert.equal(Number(metadata.robust_accuracy), robust);
      assert.equal(Number(metadata.clean_accuracy), clean);
    } finally {
      dispose(tensors);
    }
  });

  it("--eps list, --shard and --save-flags, then rmoe eval merge: the report of one run", () => {
    const args = ["--ckpt", ckpt.moe, "--data", "cifar10", "--attacks", "fgsm,pgd2", "--n", "12", "--batch", "4"];
    const more = ["--eps", "2/255,8/255", "--moe-steps", "2", "--masking-checks"];
    const flags = (name: string) => join(tmp.dir, `${name}.flags.json`);
    const one = rmoe("eval", [...args, ...more, "--json", "--save-flags", flags("one")]);
    assert.equal(one.code, 0, one.stderr);
    for (const i of [1, 2]) {
      const r = rmoe("eval", [...args, ...more, "--shard", `${i}/2`, "--save-flags", flags(`s${i}`)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`shard\\s+${i}/2 \\(${i === 1 ? 8 : 4} of 12 images`));
    }
    const out = join(tmp.dir, "merged.json");
    const m = rmoe("eval", ["merge", flags("s2"), flags("s1"), "--out", out]);
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stdout, /RA against eps\s+2\/255\s+8\/255/);
    assert.match(m.stdout, /zero input gradients at x/);
    const strip = (t: string) => JSON.stringify(JSON.parse(t), (k, v) => (k === "seconds" ? 0 : v));
    const single = json(one.stdout);
    assert.equal(strip(readFileSync(out, "utf8")), strip(one.stdout), "merged == one run, timings aside");
    assert.deepEqual(single.curves.eps, [2 / 255, 8 / 255]);
    assert.deepEqual(single.threatModel, { norm: "linf", eps: 8 / 255 });
    assert.equal(single.masking?.n, 4);
    const saved = JSON.parse(readFileSync(flags("one"), "utf8")) as {
      format: string;
      rows: number;
      columns: Record<string, number[]>;
    };
    assert.equal(saved.format, "robust-moe.eval-flags");
    assert.equal(saved.rows, 12);
    assert.deepEqual(
      saved.columns.index,
      Array.from({ length: 12 }, (_, i) => i),
    );
    for (const c of ["label", "clean", "robust:fgsm@2/255", "robust:pgd2@8/255", "moe:model:ra-r:robust", "zero-grad:model:ce"]) {
      assert.equal(saved.columns[c]?.length, 12, c);
    }
    const bad = rmoe("eval", ["merge", flags("s1"), "--out", join(tmp.dir, "x.json")]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /rmoe eval merge: shards 2\/2 missing/);
  });
});
