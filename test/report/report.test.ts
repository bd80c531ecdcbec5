// `rmoe report`: a report built from small synthetic inputs (a run directory, eval reports of
// versions 1 and 2, a sweep as `rmoe sweep` writes it, a certificate file, an attack file with
// routes) whose report.json must hold exactly the input numbers; clear errors naming the file
// and the field for bad inputs; a real ci-tiny run (train, eval, attack) reported through the
// command line, with the gallery's routes recomputed here from the checkpoint; and the page
// opened in headless Chromium (Debian's chromium driven by playwright-core): every section's
// plot drawn with marks, images decoded, no console error, no network request, a screenshot.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { reportCommand } from "../../src/cli/report-command.js";
import { decodePng } from "../../src/data/png.js";
import { loadCheckpoint } from "../../src/io/checkpoint.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { MoE } from "../../src/models/moe.js";
import { buildReport, type ReportJson, writeReport } from "../../src/report/build.js";
import { chwToBytes, encodePng } from "../../src/report/png-encode.js";
import { noGrad, scope, type Tensor, tensor } from "../../src/tensor/index.js";
import { cifarSkip } from "../data/real-data.js";
import { repoRoot } from "../helpers/paths.js";

const MAIN = join(repoRoot, "dist", "src", "cli", "main.js");
const dir = mkdtempSync(join(tmpdir(), "rmoe-report-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function rmoe(args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", cwd: repoRoot, timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function writeJson(path: string, value: unknown): string {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
  return path;
}

/** The entry of report.json's number table for (subject, quantity); fails when absent. */
function numberOf(json: ReportJson, subject: string, quantity: string): number {
  const n = json.numbers.find((e) => e.subject === subject && e.quantity === quantity);
  assert.ok(n, `report.json has no number '${quantity}' of '${subject}'`);
  return n.value;
}

// ---------------------------------------------------------------------------------------------
// Synthetic inputs.

const MACHINE = {
  hostname: "ci",
  platform: "linux 6",
  cpu: "Test CPU",
  cores: 2,
  memoryGiB: 8,
  node: "v20",
  torch: "1.13.0",
  threads: 2,
  cuda: false,
};

/** A JTDMoE run (two levels, prefixed terms) of 3 epochs of 4 steps, logged every 2 steps. */
function fakeRun(path: string): { steps: Record<string, number>[]; epochs: Record<string, number | string>[] } {
  mkdirSync(path, { recursive: true });
  writeJson(join(path, "config.json"), {
    version: "0.1.0",
    createdAt: "2026-01-01T00:00:00.000Z",
    command: ["rmoe", "train", "--preset", "ci-tiny", "--method", "jtdmoe", "--out", path],
    machine: MACHINE,
    config: {
      method: "jtdmoe",
      data: { dataset: "cifar10", trainSize: 128 },
      model: { experts: 2, expert: "resnet18", width: 2 },
      epochs: 3,
      batchSize: 32,
    },
  });
  const steps: Record<string, number>[] = [];
  const epochs: Record<string, number | string>[] = [];
  const lines: string[] = [];
  for (let step = 2; step <= 12; step += 2) {
    const epoch = Math.floor((step - 1) / 4);
    const s = {
      "robust.ce": 2.3 - 0.1 * step,
      "robust.kl": 0.01 * step,
      "robust.loss": 2.3 - 0.09 * step,
      "robust.acc": 0.1 + 0.02 * step,
      "robust.lr": 0.05,
      "standard.ce": 2.2 - 0.12 * step,
      "standard.loss": 2.2 - 0.12 * step,
      "standard.acc": 0.12 + 0.03 * step,
      "standard.lr": 0.05,
    };
    steps.push({ step, ...s });
    lines.push(
      JSON.stringify({
        type: "step",
        step,
        epoch,
        ...s,
        loss: s["standard.loss"],
        acc: s["standard.acc"],
        imagesPerSecond: 100,
        rssMB: 400,
        liveTensors: 300,
      }),
    );
    if (step % 4 === 0) {
      const e = {
        epoch: step / 4 - 1,
        step,
        valClean: 0.2 + 0.05 * step,
        valRobust: 0.05 + 0.02 * step,
        valAttack: "PGD-3 (linf, ce) eps 0.03137",
      };
      epochs.push(e);
      lines.push(
        JSON.stringify({
          type: "epoch",
          ...e,
          valN: 128,
          valSeconds: 0.5,
          trainLoss: s["standard.loss"],
          trainAcc: s["standard.acc"],
          lr: 0.05,
        }),
      );
    }
  }
  writeFileSync(join(path, "metrics.jsonl"), `${lines.join("\n")}\n`);
  return { steps, epochs };
}

const interval = (v: number) => ({ lower: Math.max(0, v - 0.05), upper: Math.min(1, v + 0.05) });

/** A version-2 eval report of a dual model of two MoEs (intervals and fields the report ignores). */
const DUAL_EVAL = {
  schema: "robust-moe.robustness-report",
  version: 2,
  source: { checkpoint: "runs/does-not-exist/dual.safetensors", dataset: "cifar10", split: "test" },
  model: { kind: "dual", type: "DualModel", alpha: 0.3, space: "logits", members: { standard: "MoE", robust: "MoE" } },
  threatModel: { norm: "linf", eps: 8 / 255 },
  seed: 0,
  n: 200,
  shard: null,
  confidence: { level: 0.95, method: "clopper-pearson" },
  classes: ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
  clean: { correct: 170, accuracy: 0.85, interval: interval(0.85) },
  attacks: [
    { spec: "pgd50", attack: "PGD-50 (linf, ce)", correct: 70, accuracy: 0.35, seconds: 3, interval: interval(0.35) },
    { spec: "aa", attack: "AutoAttack-style", correct: 64, accuracy: 0.32, seconds: 9, interval: interval(0.32) },
  ],
  worstCase: { attacks: ["pgd50", "aa"], correct: 62, accuracy: 0.31, interval: interval(0.31) },
  perClass: [],
  curves: { eps: [8 / 255], attacks: [], worstCase: null },
  moe: [
    {
      member: "standard",
      attackedAlone: true,
      numExperts: 4,
      gating: "topk",
      k: 1,
      cleanAccuracy: 0.9,
      clean: { correct: 180, accuracy: 0.9, interval: interval(0.9) },
      routerObjective: "output",
      usage: { counts: [50, 70, 40, 40] },
      underAttack: [
        { spec: "pgd50", counts: [60, 60, 40, 40], routeFlipRate: 0.4 },
        { spec: "aa", counts: [55, 65, 40, 40], routeFlipRate: 0.45 },
      ],
      expertAttack: {
        attack: "ExpertAttack PGD-50",
        accuracy: 0.02,
        moeAccuracy: 0.03,
        routeFlipRate: 0.1,
        seconds: 2,
        interval: interval(0.02),
      },
      routerAttack: {
        attack: "RouterAttack PGD-50",
        accuracy: 0.6,
        moeAccuracy: 0.62,
        routeFlipRate: 0.7,
        seconds: 2,
        interval: interval(0.6),
      },
      adaptiveAttack: null,
    },
    {
      member: "robust",
      attackedAlone: true,
      numExperts: 4,
      gating: "topk",
      k: 1,
      cleanAccuracy: 0.7,
      usage: { counts: [10, 90, 60, 40] },
      underAttack: [
        { spec: "pgd50", counts: [10, 90, 60, 40], routeFlipRate: 0.2 },
        { spec: "aa", counts: [10, 90, 60, 40], routeFlipRate: 0.25 },
      ],
      expertAttack: { attack: "ExpertAttack PGD-50", accuracy: 0.4, moeAccuracy: 0.41, routeFlipRate: 0.05, seconds: 2 },
      routerAttack: { attack: "RouterAttack PGD-50", accuracy: 0.65, moeAccuracy: 0.66, routeFlipRate: 0.3, seconds: 2 },
    },
  ],
  zeroGradients: [],
  masking: null,
  seconds: 30,
};

/** A version-1 report (docs/EVAL.md's example shape) of an RT-ER MoE, without intervals. */
const MOE_EVAL = {
  schema: "robust-moe.robustness-report",
  version: 1,
  source: { checkpoint: "rt-er/model.safetensors", dataset: "cifar10", split: "test" },
  model: { kind: "moe", type: "MoE", alpha: null, space: null, members: null },
  threatModel: { norm: "linf", eps: 8 / 255 },
  seed: 0,
  n: 16,
  classes: ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
  clean: { correct: 10, accuracy: 0.625 },
  attacks: [{ spec: "pgd50", attack: "PGD-50 (linf, ce)", correct: 6, accuracy: 0.375, seconds: 1 }],
  worstCase: { attacks: ["pgd50"], correct: 6, accuracy: 0.375 },
  perClass: [],
  moe: [
    {
      member: "model",
      attackedAlone: false,
      numExperts: 2,
      gating: "topk",
      k: 1,
      cleanAccuracy: 0.625,
      usage: { counts: [7, 9] },
      underAttack: [{ spec: "pgd50", counts: [9, 7], routeFlipRate: 0.3125 }],
      expertAttack: { attack: "ExpertAttack PGD-50", accuracy: 0.25, moeAccuracy: 0.3125, routeFlipRate: 0.0625, seconds: 1 },
      routerAttack: { attack: "RouterAttack PGD-50", accuracy: 0.5625, moeAccuracy: 0.5, routeFlipRate: 0.5, seconds: 1 },
    },
  ],
  masking: null,
  seconds: 3,
};

/** What `rmoe sweep --out` writes (src/cli/sweep-command.ts), with certified accuracies keyed by radius. */
function fakeSweep() {
  const points = [0, 0.25, 0.5, 0.75, 1].map((alpha) => ({
    alpha,
    n: 200,
    sa: 0.9 - 0.2 * alpha,
    ra: { pgd50: 0.4 * alpha, aa: 0.38 * alpha },
    worst: 0.37 * alpha,
    certified: { "0.25": 0.3 * alpha, "8/255": 0.2 * alpha },
  }));
  return {
    kind: "sweep",
    schema: "robust-moe.sweep",
    version: 1,
    source: { standard: "runs/std/model.safetensors", robust: "runs/rt-er/model.safetensors", dataset: "cifar10", split: "test" },
    space: "logits",
    threatModel: { norm: "linf", eps: 8 / 255 },
    attacks: ["pgd50", "aa"],
    seed: 0,
    points,
    markers: [
      { label: "JTDMoE", kind: "jtdmoe", alpha: 0.5, sa: 0.84, ra: { pgd50: 0.3, aa: 0.28 }, worst: 0.27 },
      { label: "RT-ER alone", kind: "marker", alpha: null, sa: 0.7, ra: { pgd50: 0.41, aa: 0.39 }, worst: 0.38 },
    ],
    seconds: 40,
  };
}

const CERTIFY = {
  schema: "robust-moe.certify",
  version: 1,
  method: "randomized-smoothing",
  norm: "l2",
  data: { dataset: "cifar10", split: "test", n: 100 },
  settings: { sigma: 0.25, n0: 100, n: 1000, alpha: 0.001 },
  command: ["rmoe", "certify", "--ckpt", "runs/rt-er/model.safetensors"],
  machine: MACHINE,
  curves: [
    {
      model: "RT-ER MoE",
      kind: "rt-er",
      points: [
        { eps: 0.5, certifiedAccuracy: 0.2 },
        { eps: 0, certifiedAccuracy: 0.6 },
        { eps: 0.25, certifiedAccuracy: 0.4 },
      ],
    },
    {
      model: "dual alpha=0.5",
      kind: "dual",
      points: [
        { eps: 0, certifiedAccuracy: 0.7 },
        { eps: 0.25, certifiedAccuracy: 0.3 },
      ],
    },
  ],
};

/** Six 3x8x8 images with known pixels, a perturbation within 8/255, and routes of a dual model's two MoEs. */
function fakeAdversarial(path: string): {
  x: number[];
  xAdv: number[];
  y: number[];
  pc: number[];
  pa: number[];
  rc: number[];
  ra: number[];
} {
  const n = 6;
  const size = 3 * 8 * 8;
  const x = Array.from({ length: n * size }, (_, i) => ((i * 37) % 251) / 255);
  const xAdv = x.map((v, i) => Math.min(1, Math.max(0, v + (i % 3 === 0 ? 0.03 : -0.03))));
  const y = [0, 1, 2, 3, 4, 5];
  const pc = [0, 1, 2, 9, 4, 5];
  const pa = [6, 1, 6, 9, 8, 5];
  const rc = [0, 1, 1, 2, 2, 3, 3, 0, 0, 0, 1, 1]; // [6, 2]: standard, robust per image
  const ra = [1, 1, 1, 2, 0, 3, 3, 3, 0, 0, 1, 0];
  const tensors: Record<string, Tensor> = {
    x: tensor(new Float32Array(x), { shape: [n, 3, 8, 8] }),
    x_adv: tensor(new Float32Array(xAdv), { shape: [n, 3, 8, 8] }),
    y: tensor(y, { dtype: "int64" }),
    pred_clean: tensor(pc, { dtype: "int64" }),
    pred_adv: tensor(pa, { dtype: "int64" }),
    route_clean: tensor(BigInt64Array.from(rc, BigInt), { dtype: "int64", shape: [n, 2] }),
    route_adv: tensor(BigInt64Array.from(ra, BigInt), { dtype: "int64", shape: [n, 2] }),
  };
  saveSafetensors(path, tensors, {
    "robust-moe.adversarial": "1",
    attack: "pgd50",
    attack_name: "PGD-50 (linf, ce)",
    eps: String(8 / 255),
    eps_text: "8/255",
    norm: "linf",
    n: String(n),
    clean_accuracy: String(5 / 6),
    robust_accuracy: String(2 / 6),
    dataset: "cifar10",
    split: "test",
    seed: "0",
    checkpoint: "/nowhere/dual.safetensors",
  });
  for (const t of Object.values(tensors)) t.dispose();
  return { x: Array.from(new Float32Array(x)), xAdv: Array.from(new Float32Array(xAdv)), y, pc, pa, rc, ra };
}

// ---------------------------------------------------------------------------------------------

describe("rmoe report from synthetic inputs", () => {
  const runDir = join(dir, "jtd-run");
  let run: ReturnType<typeof fakeRun>;
  let adv: ReturnType<typeof fakeAdversarial>;
  const files = {
    dual: join(dir, "dual-0.3.json"),
    moe: join(dir, "rt-er-moe.json"),
    sweep: join(dir, "sweep.json"),
    certify: join(dir, "certify.json"),
    certifyIbp: join(dir, "certify-ibp.json"),
    certifySmoothing2: join(dir, "certify-smoothing-2.json"),
    adv: join(dir, "adv.safetensors"),
  };
  let json: ReportJson;
  let html: string;

  before(async () => {
    run = fakeRun(runDir);
    writeJson(files.dual, DUAL_EVAL);
    writeJson(files.moe, MOE_EVAL);
    writeJson(files.sweep, fakeSweep());
    writeJson(files.certify, CERTIFY);
    // A second smoothing file (same method and norm: the same plot) and an IBP file (its own plot).
    writeJson(files.certifySmoothing2, {
      ...CERTIFY,
      curves: [{ model: "JTDMoE", kind: "jtdmoe", points: [{ eps: 0.25, certifiedAccuracy: 0.35 }] }],
    });
    writeJson(files.certifyIbp, {
      ...CERTIFY,
      method: "ibp",
      norm: "linf",
      settings: {},
      curves: [{ model: "RT-ER MoE", kind: "rt-er", points: [{ eps: 2 / 255, certifiedAccuracy: 0.05 }] }],
    });
    adv = fakeAdversarial(files.adv);
    ({ json, html } = await writeReport(join(dir, "synthetic-report"), {
      runs: [{ path: runDir }],
      evals: [{ path: files.dual }, { path: files.moe, label: "RT-ER" }],
      sweep: files.sweep,
      certify: [files.certify, files.certifyIbp, files.certifySmoothing2],
      adversarial: [{ path: files.adv }],
      galleryLimit: 4,
      now: new Date("2026-01-02T03:04:05Z"),
    }));
  });

  it("shows every section, in order, and misses none", () => {
    assert.deepEqual(json.sections, ["training", "vulnerability", "tradeoff", "certified", "routing", "gallery"]);
    assert.deepEqual(json.missing, []);
    assert.equal(json.createdAt, "2026-01-02T03:04:05.000Z");
    for (const s of json.sections) assert.match(html, new RegExp(`<section id="${s}" data-section="${s}">`));
    assert.equal(
      (html.match(/<svg /g) ?? []).length,
      11,
      "2 training + 1 RA-E/RA-R + 3 trade-off panels + 1 certified vs alpha + 2 certified (smoothing L2, IBP L-inf) + 2 routing",
    );
    // (SVG's xmlns attributes name http URLs, but nothing is fetched from them.)
    assert.doesNotMatch(
      html,
      /<script|(src|href)="https?:|url\(["']?https?:|@import/,
      "no script and no remote resource: the page opens offline",
    );
  });

  it("training curves: the run's step and epoch lines, exactly", () => {
    const [t] = json.training;
    assert.ok(t);
    assert.equal(t.run, "jtd-run");
    assert.equal(t.kind, "jtdmoe");
    assert.equal(t.xAxis, "epoch");
    assert.equal(t.steps.length, run.steps.length);
    for (const [i, s] of run.steps.entries()) {
      const got = t.steps[i];
      assert.ok(got);
      assert.equal(got.step, s.step);
      // Multi-level: the prefixed terms, never the unprefixed duplicates nor the learning rates.
      assert.deepEqual(Object.keys(got.terms).sort(), ["robust.ce", "robust.kl", "robust.loss", "standard.ce", "standard.loss"]);
      assert.equal(got.terms["robust.kl"], s["robust.kl"]);
      assert.equal(got.acc["standard.acc"], s["standard.acc"]);
      assert.equal(numberOf(json, "jtd-run", `robust.ce at step ${s.step}`), s["robust.ce"]);
    }
    assert.deepEqual(
      t.epochs.map((e) => [e.epoch, e.valClean, e.valRobust]),
      run.epochs.map((e) => [e.epoch, e.valClean, e.valRobust]),
    );
    assert.equal(numberOf(json, "jtd-run", "validation SA after epoch 2"), run.epochs[1]?.valClean);
    const src = json.sources.find((s) => s.kind === "run");
    assert.match(src?.command ?? "", /^rmoe train --preset ci-tiny --method jtdmoe/);
    assert.equal(src?.machine, "ci: Test CPU, 2 cores, 8 GiB, linux 6, node v20, LibTorch 1.13.0, 2 threads, no CUDA");
  });

  it("eval reports: SA, RA, RA-E, RA-R, usage and flips equal the files, intervals kept", () => {
    assert.deepEqual(
      json.models.map((m) => [m.model, m.kind, m.sa, m.attacks.map((a) => a.accuracy), m.worstCase]),
      [
        ["dual-0.3", "dual", 0.85, [0.35, 0.32], 0.31],
        ["RT-ER", "rt-er", 0.625, [0.375], 0.375],
      ],
    );
    assert.deepEqual(json.models[0]?.saInterval, interval(0.85));
    const v = json.vulnerability.map((e) => [e.model, e.member, e.raE, e.raR, e.raEMoe, e.raRMoe, e.cleanAccuracy]);
    assert.deepEqual(v, [
      ["dual-0.3", "standard", 0.02, 0.6, 0.03, 0.62, 0.9],
      ["dual-0.3", "robust", 0.4, 0.65, 0.41, 0.66, 0.7],
      ["RT-ER", "model", 0.25, 0.5625, 0.3125, 0.5, 0.625],
    ]);
    assert.deepEqual(json.vulnerability[0]?.raEInterval, interval(0.02));
    assert.equal(json.vulnerability[1]?.raEInterval, null);
    assert.equal(numberOf(json, "dual-0.3 · robust member", "RA-R"), 0.65);
    assert.equal(numberOf(json, "dual-0.3", "RA under aa"), 0.32);
    assert.deepEqual(json.routing[0]?.usage, [50, 70, 40, 40]);
    assert.deepEqual(json.routing[0]?.usageFraction, [0.25, 0.35, 0.2, 0.2]);
    assert.deepEqual(json.routing[2]?.flips, [
      { attack: "pgd50 (whole model)", rate: 0.3125 },
      { attack: "RA-E (experts attacked)", rate: 0.0625 },
      { attack: "RA-R (router attacked)", rate: 0.5 },
    ]);
    assert.equal(numberOf(json, "RT-ER", "clean images routed to expert 1"), 9);
    const evalSource = json.sources.find((s) => s.kind === "eval");
    assert.match(
      evalSource?.settings ?? "",
      /checkpoint runs\/does-not-exist\/dual\.safetensors; cifar10 test, n=200; L-inf eps 8\/255; seed 0; alpha 0\.3/,
    );
  });

  it("the sweep and the certificates are kept as given (sorted), with certified radii parsed", () => {
    const sweep = fakeSweep();
    assert.deepEqual(
      json.tradeoff?.points.map((p) => [p.alpha, p.sa, p.ra, p.worst]),
      sweep.points.map((p) => [p.alpha, p.sa, p.ra, p.worst]),
    );
    assert.deepEqual(json.tradeoff?.points[2]?.certified, [
      { eps: 8 / 255, accuracy: 0.1 },
      { eps: 0.25, accuracy: 0.15 },
    ]);
    // 'marker' (what rmoe sweep --marker writes) takes its kind from the label.
    assert.deepEqual(
      json.tradeoff?.markers.map((m) => [m.label, m.kind, m.sa, m.ra.pgd50]),
      [
        ["JTDMoE", "jtdmoe", 0.84, 0.3],
        ["RT-ER alone", "rt-er", 0.7, 0.41],
      ],
    );
    assert.equal(numberOf(json, "dual, alpha 0.75", "RA (aa)"), sweep.points[3]?.ra.aa);
    assert.equal(numberOf(json, "JTDMoE", "RA (worst case)"), 0.27);
    assert.deepEqual(
      json.certified[0]?.curves.map((c) => [c.model, c.kind, c.points.map((p) => [p.eps, p.certifiedAccuracy])]),
      [
        [
          "RT-ER MoE",
          "rt-er",
          [
            [0, 0.6],
            [0.25, 0.4],
            [0.5, 0.2],
          ],
        ],
        [
          "dual alpha=0.5",
          "dual",
          [
            [0, 0.7],
            [0.25, 0.3],
          ],
        ],
      ],
    );
    assert.equal(numberOf(json, "RT-ER MoE", "certified accuracy (randomized-smoothing, L2) at eps 0.25"), 0.4);
    assert.equal(numberOf(json, "RT-ER MoE", "certified accuracy (ibp, L-inf) at eps 2/255"), 0.05);
    assert.equal(numberOf(json, "JTDMoE", "certified accuracy (randomized-smoothing, L2) at eps 0.25"), 0.35);
    // Every file is kept; one plot per method and norm, the two smoothing files on one.
    assert.deepEqual(
      json.certified.map((c) => c.method),
      ["randomized-smoothing", "ibp", "randomized-smoothing"],
    );
    assert.equal((html.match(/Certified accuracy against the L2 radius \(randomized-smoothing\)/g) ?? []).length, 1);
    assert.equal((html.match(/Certified accuracy against the L-inf radius \(ibp\)/g) ?? []).length, 1);
    assert.match(html, /standard member alone \(α=0\)/, "the ends of the curve are marked as the members");
  });

  it("gallery: labels, predictions, routes from the file, and PNGs of the exact pixels", () => {
    const [g] = json.gallery;
    assert.ok(g);
    assert.equal(g.routes, "file");
    assert.equal(g.items.length, 4);
    assert.equal(g.n, 6);
    assert.equal(g.classes?.[3], "cat");
    for (const it of g.items) {
      const i = it.index;
      assert.deepEqual([it.label, it.predClean, it.predAdv], [adv.y[i], adv.pc[i], adv.pa[i]]);
      assert.deepEqual(it.routeClean, [
        { member: "standard", expert: adv.rc[2 * i] },
        { member: "robust", expert: adv.rc[2 * i + 1] },
      ]);
      assert.deepEqual(it.routeAdv, [
        { member: "standard", expert: adv.ra[2 * i] },
        { member: "robust", expert: adv.ra[2 * i + 1] },
      ]);
      assert.ok(Math.abs(it.linf - 0.03) < 1e-6, `linf ${it.linf}`);
    }
    // The images in the page decode to round(255 x) of the file's pixels.
    const srcs = [...html.matchAll(/<img src="data:image\/png;base64,([^"]+)" alt="(clean|adversarial) image (\d+)"/g)];
    assert.equal(srcs.length, 8);
    for (const [, b64, which, idx] of srcs) {
      const img = decodePng(Buffer.from(b64 as string, "base64"));
      assert.deepEqual([img.width, img.height, img.channels], [8, 8, 3]);
      const values = which === "clean" ? adv.x : adv.xAdv;
      assert.deepEqual(img.data, chwToBytes(values, Number(idx) * 192, 3, 8, 8));
    }
    assert.match(html, /standard expert 1, robust expert 1 \(route flipped\)/, "image 0's standard route flips 0 -> 1");
  });

  it("the PNG encoder round-trips through the project's decoder (grey and RGB)", () => {
    const grey = Uint8Array.from({ length: 5 * 3 }, (_, i) => (i * 17) % 256);
    const g = decodePng(encodePng(5, 3, 1, grey));
    assert.deepEqual([g.width, g.height, g.channels, [...g.data]], [5, 3, 1, [...grey]]);
    const rgb = Uint8Array.from({ length: 2 * 4 * 3 }, (_, i) => 255 - i);
    assert.deepEqual([...decodePng(encodePng(2, 4, 3, rgb)).data], [...rgb]);
  });

  it("says plainly what is missing, and writes both files", async () => {
    const out = join(dir, "only-sweep");
    const r = await writeReport(out, { sweep: files.sweep });
    assert.deepEqual(r.json.sections, ["tradeoff"]);
    assert.deepEqual(
      r.json.missing.map((m) => m.section),
      ["training", "vulnerability", "certified", "routing", "gallery"],
    );
    assert.match(r.html, /Not in this report/);
    assert.match(r.html, /no sweep file|no run directory was given/);
    assert.deepEqual(JSON.parse(readFileSync(join(out, "report.json"), "utf8")), r.json);
    assert.equal(readFileSync(join(out, "index.html"), "utf8"), r.html);
  });

  it("bad inputs: errors name the file and the field", async () => {
    const bad = (name: string, value: unknown) => writeJson(join(dir, name), value);
    const cases: [Parameters<typeof buildReport>[0], RegExp][] = [
      [
        { sweep: bad("s1.json", { ...fakeSweep(), points: [{ alpha: 0, sa: 1.5, ra: { pgd50: 0 } }] }) },
        /s1\.json: field 'points\[0\]\.sa' must be at most 1, got 1\.5/,
      ],
      [
        { sweep: bad("s2.json", { ...fakeSweep(), schema: "robust-moe.robustness-report" }) },
        /s2\.json: field 'schema' must be "robust-moe\.sweep"/,
      ],
      [
        { sweep: bad("s3.json", { ...fakeSweep(), version: 2 }) },
        /s3\.json: field 'version' is 2; this rmoe report reads version 1/,
      ],
      [
        {
          sweep: bad("s4.json", {
            ...fakeSweep(),
            points: [
              { alpha: 0.5, sa: 0.5, ra: { pgd50: 0 } },
              { alpha: 0.5, sa: 0.4, ra: { pgd50: 0.1 } },
            ],
          }),
        },
        /s4\.json: field 'points\[1\]\.alpha' repeats alpha 0\.5 of points\[0\]/,
      ],
      [
        { sweep: bad("s5.json", { ...fakeSweep(), points: [{ alpha: 0, sa: 0.5, ra: {} }] }) },
        /s5\.json: field 'points\[0\]\.ra' must name at least one attack/,
      ],
      [{ certify: bad("c1.json", { ...CERTIFY, curves: [] }) }, /c1\.json: field 'curves' must hold at least one curve/],
      [{ certify: bad("c2.json", { ...CERTIFY, norm: "l1" }) }, /c2\.json: field 'norm' must be one of "linf", "l2", got "l1"/],
      [
        {
          certify: bad("c3.json", {
            ...CERTIFY,
            curves: [{ model: "m", kind: "rt-er", points: [{ eps: 0, certifiedAccuracy: "0.5" }] }],
          }),
        },
        /c3\.json: field 'curves\[0\]\.points\[0\]\.certifiedAccuracy' must be a finite number, got "0\.5"/,
      ],
      [
        { evals: [{ path: bad("e1.json", { ...MOE_EVAL, schema: "something" }) }] },
        /e1\.json: field 'schema' must be "robust-moe\.robustness-report"/,
      ],
      [
        { evals: [{ path: bad("e2.json", { ...MOE_EVAL, moe: [{ ...MOE_EVAL.moe[0], usage: { counts: [1, 2, 3] } }] }) }] },
        /e2\.json: field 'moe\[0\]\.usage\.counts' has 3 entries for 2 experts/,
      ],
      [
        { evals: [{ path: bad("e3.json", { ...MOE_EVAL, clean: { correct: 1 } }) }] },
        /e3\.json: field 'clean\.accuracy' must be a finite number, got missing/,
      ],
      [{ evals: [{ path: join(dir, "nope.json") }] }, /nope\.json: no such file/],
      [{ runs: [{ path: files.sweep }] }, /sweep\.json: is not a directory/],
      [{ adversarial: [{ path: files.sweep }] }, /sweep\.json: is not a safetensors file/],
    ];
    for (const [options, message] of cases) await assert.rejects(buildReport(options), message);
    // metrics.jsonl: a broken line in the middle is an error naming the line; a cut last line (a kill) is not.
    const broken = join(dir, "broken-run");
    fakeRun(broken);
    const metrics = readFileSync(join(broken, "metrics.jsonl"), "utf8").split("\n");
    writeFileSync(join(broken, "metrics.jsonl"), [metrics[0], '{"type":"step","step":', ...metrics.slice(1)].join("\n"));
    await assert.rejects(buildReport({ runs: [{ path: broken }] }), /metrics\.jsonl: field 'line 2' is not valid JSON/);
    writeFileSync(join(broken, "metrics.jsonl"), `${metrics.filter((l) => l !== "").join("\n")}\n{"type":"epo`);
    const ok = await buildReport({ runs: [{ path: broken }] });
    assert.equal(ok.json.training[0]?.epochs.length, 3);
    writeFileSync(join(broken, "metrics.jsonl"), '{"type":"epoch","epoch":0,"step":4,"valClean":2,"valRobust":0}\n');
    await assert.rejects(
      buildReport({ runs: [{ path: broken }] }),
      /metrics\.jsonl: field 'line 1\.valClean' must be at most 1, got 2/,
    );
  });

  it("the command: usage errors exit 2, bad input exits 1 naming file and field", async () => {
    const capture = async (argv: string[]): Promise<{ code: number; stderr: string }> => {
      const write = process.stderr.write;
      let stderr = "";
      process.stderr.write = ((chunk: string | Uint8Array) => {
        stderr += String(chunk);
        return true;
      }) as typeof process.stderr.write;
      try {
        return { code: await reportCommand(argv), stderr };
      } finally {
        process.stderr.write = write;
      }
    };
    assert.equal((await capture([runDir])).code, 2);
    assert.match((await capture([runDir])).stderr, /--out DIR is required/);
    assert.match((await capture(["--out", join(dir, "x")])).stderr, /nothing to report/);
    assert.match((await capture([runDir, "--eval", "--out", join(dir, "x")])).stderr, /--eval needs at least one file/);
    assert.match(
      (await capture([runDir, "--gallery", "0", "--out", join(dir, "x")])).stderr,
      /--gallery must be a positive integer/,
    );
    assert.match((await capture([runDir, "--bogus", "1"])).stderr, /unknown option '--bogus'/);
    const badSweep = writeJson(join(dir, "bad-sweep.json"), {
      ...fakeSweep(),
      markers: [{ label: "x", kind: "jtdmoe", sa: 0.5 }],
    });
    const r = await capture([runDir, "--sweep", badSweep, "--out", join(dir, "bad-out")]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^rmoe report: .*bad-sweep\.json: field 'markers\[0\]\.ra' must be an object, got missing\n$/);
    assert.ok(!existsSync(join(dir, "bad-out", "index.html")), "nothing written for bad input");
  });
});

// ---------------------------------------------------------------------------------------------
// A real run, its eval and attack files, and the page in a browser.

interface Browser {
  newPage(o: { viewport: { width: number; height: number } }): Promise<Page>;
  close(): Promise<void>;
}
interface Page {
  on(event: "console", f: (m: { type(): string; text(): string }) => void): void;
  on(event: "pageerror", f: (e: Error) => void): void;
  on(event: "request", f: (r: { url(): string }) => void): void;
  goto(url: string): Promise<unknown>;
  screenshot(o: { path: string; fullPage: boolean }): Promise<unknown>;
  evaluate<T>(expression: string): Promise<T>;
}

/** playwright-core and Debian's chromium, or the reason the browser test cannot run here. */
async function browserOrReason(): Promise<{ launch: () => Promise<Browser> } | string> {
  const exe = "/usr/bin/chromium";
  if (!existsSync(exe)) return `${exe} is not installed (apt-get install -y chromium; scripts/setup.sh installs it)`;
  let mod: { chromium: { launch(o: { executablePath: string; args: string[] }): Promise<Browser> } };
  try {
    mod = (await import("playwright-core")) as unknown as typeof mod;
  } catch (e) {
    return `playwright-core is not installed (npm ci): ${(e as Error).message}`;
  }
  // --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
  return { launch: () => mod.chromium.launch({ executablePath: exe, args: ["--no-sandbox", "--disable-gpu"] }) };
}

describe("rmoe report on a real ci-tiny run", { skip: cifarSkip }, () => {
  const run = join(dir, "real-run");
  const out = join(dir, "real-report");
  const evalFile = join(dir, "real-eval.json");
  const advFile = join(dir, "real-adv.safetensors");
  let json: ReportJson;

  before(() => {
    const train = rmoe([
      "train",
      "--preset",
      "ci-tiny",
      "--out",
      run,
      "--quiet",
      "--epochs",
      "1",
      "--set",
      "data.trainSize=64",
      "--set",
      "data.valSize=32",
      "--batch-size",
      "16",
      "--attack-steps",
      "1",
      "--set",
      "validation.attackSteps=1",
      "--set",
      "logEvery=1",
    ]);
    assert.equal(train.code, 0, train.stderr);
    const ckpt = join(run, "model.safetensors");
    const ev = rmoe([
      "eval",
      "--ckpt",
      ckpt,
      "--data",
      "cifar10",
      "--n",
      "16",
      "--attacks",
      "pgd1",
      "--moe-steps",
      "1",
      "--json",
    ]);
    assert.equal(ev.code, 0, ev.stderr);
    writeFileSync(evalFile, ev.stdout);
    const at = rmoe(["attack", "--ckpt", ckpt, "--data", "cifar10", "--attack", "pgd1", "--n", "6", "--out", advFile]);
    assert.equal(at.code, 0, at.stderr);
    writeJson(join(dir, "sweep.json"), fakeSweep());
    writeJson(join(dir, "certify.json"), CERTIFY);
    const rep = rmoe([
      "report",
      `tiny=${run}`,
      "--eval",
      evalFile,
      "--sweep",
      join(dir, "sweep.json"),
      "--certify",
      join(dir, "certify.json"),
      "--adv",
      advFile,
      "--out",
      out,
      "--title",
      "ci-tiny report",
    ]);
    assert.equal(rep.code, 0, rep.stderr);
    assert.match(rep.stdout, /rmoe report: 6 sections, 10 plots/);
    json = JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as ReportJson;
  });

  it("report.json holds the run's, the eval's and the attack file's numbers", () => {
    const lines = readFileSync(join(run, "metrics.jsonl"), "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, number | string>);
    const steps = lines.filter((l) => l.type === "step");
    const epoch = lines.find((l) => l.type === "epoch");
    assert.equal(steps.length, 4);
    const t = json.training[0];
    assert.equal(t?.run, "tiny");
    assert.equal(t?.kind, "rt-er");
    assert.deepEqual(
      t?.steps.map((s) => [s.step, s.terms.ce, s.terms.kl, s.acc.acc]),
      steps.map((s) => [s.step, s.ce, s.kl, s.acc]),
    );
    assert.equal(numberOf(json, "tiny", "validation SA after epoch 1"), epoch?.valClean);
    assert.equal(numberOf(json, "tiny", `validation RA after epoch 1 (${epoch?.valAttack})`), epoch?.valRobust);
    const source = json.sources.find((s) => s.kind === "run");
    assert.match(source?.command ?? "", /^rmoe train --preset ci-tiny --out \S+real-run --quiet --epochs 1/);
    assert.match(source?.machine ?? "", /cores/);

    const ev = JSON.parse(readFileSync(evalFile, "utf8")) as typeof DUAL_EVAL;
    const m = json.models[0];
    assert.equal(m?.kind, "rt-er", "the kind comes from the checkpoint's training metadata");
    assert.equal(m?.sa, ev.clean.accuracy);
    assert.equal(m?.attacks[0]?.accuracy, ev.attacks[0]?.accuracy);
    const moe = ev.moe[0];
    assert.equal(json.vulnerability[0]?.raE, moe?.expertAttack.accuracy);
    assert.equal(json.vulnerability[0]?.raR, moe?.routerAttack.accuracy);
    assert.deepEqual(json.routing[0]?.usage, moe?.usage.counts);

    const file = loadSafetensors(advFile);
    try {
      const g = json.gallery[0];
      const y = file.tensors.get("y")?.toFlatArray();
      const pa = file.tensors.get("pred_adv")?.toFlatArray();
      assert.deepEqual(
        g?.items.map((i) => [i.label, i.predAdv]),
        y?.map((v, i) => [v, pa?.[i]]),
      );
      // Routes come from the checkpoint's router: recompute them here.
      assert.equal(g?.routes, "checkpoint");
      const { model } = loadCheckpoint(join(run, "model.safetensors"));
      try {
        assert.ok(model instanceof MoE);
        model.eval();
        const top1 = (name: string) =>
          noGrad(() =>
            scope(() =>
              model
                .gates(file.tensors.get(name) as Tensor)
                .indices.select(1, 0)
                .toFlatArray(),
            ),
          );
        assert.deepEqual(
          g?.items.map((i) => i.routeClean?.[0]?.expert),
          top1("x"),
        );
        assert.deepEqual(
          g?.items.map((i) => i.routeAdv?.[0]?.expert),
          top1("x_adv"),
        );
      } finally {
        model.dispose();
      }
    } finally {
      for (const t of file.tensors.values()) t.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------

/** Opens a report page and checks what a reader would see; returns the screenshot's path. */
async function checkInBrowser(browser: Browser, file: string, expect: { gallery: number }, shotName: string): Promise<string> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  const requests: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("request", (r) => requests.push(r.url()));
  const url = `file://${file}`;
  await page.goto(url);
  // A string: this project's TypeScript has no DOM types, and the code runs in the page anyway.
  const found = await page.evaluate<{ id: string; svgs: number; marks: number[]; images: boolean[] }[]>(`
    [...document.querySelectorAll("section[data-section]")].map((s) => ({
      id: s.getAttribute("data-section"),
      svgs: s.querySelectorAll("svg").length,
      // Vega draws each mark as an element inside a role-mark group: paths (lines, bars, symbols) and texts.
      marks: [...s.querySelectorAll("svg")].map((svg) => svg.querySelectorAll(".role-mark > path, .role-mark > text").length),
      images: [...s.querySelectorAll("img")].map((img) => img.complete && img.naturalWidth > 0),
    }))`);
  const byId = new Map(found.map((f) => [f.id, f]));
  for (const id of ["training", "vulnerability", "tradeoff", "certified", "routing"]) {
    const s = byId.get(id);
    assert.ok(s, `${file}: section ${id} is on the page`);
    assert.ok(s.svgs > 0, `${file}: section ${id} has a plot`);
    for (const [i, n] of s.marks.entries()) assert.ok(n > 0, `${file}: section ${id}, plot ${i + 1} has no marks`);
  }
  const gallery = byId.get("gallery");
  assert.equal(gallery?.images.length, expect.gallery, "images x (clean, adversarial, perturbation)");
  assert.ok(
    gallery?.images.every((ok) => ok),
    "every gallery image decodes",
  );
  assert.ok(byId.has("numbers"));
  assert.deepEqual(problems, [], `${file}: console errors`);
  assert.deepEqual(
    requests.filter((r) => r !== url && !r.startsWith("data:")),
    [],
    "the page loads nothing but itself",
  );
  const shots = process.env.RMOE_REPORT_SCREENSHOT_DIR ?? mkdtempSync(join(tmpdir(), "rmoe-report-shot-"));
  mkdirSync(shots, { recursive: true });
  const shot = join(shots, shotName);
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(existsSync(shot));
  return shot;
}

describe("the page in headless Chromium", () => {
  it("every plot renders, images decode, no console error, no network request; screenshots", async (t) => {
    const b = await browserOrReason();
    if (typeof b === "string") {
      t.skip(`no headless browser: ${b}`);
      return;
    }
    const browser = await b.launch();
    try {
      // The synthetic report (every section, a dual model, a JTDMoE run) always; the real
      // ci-tiny report when CIFAR-10 is prepared and the suite above wrote it.
      const synthetic = join(dir, "synthetic-report", "index.html");
      assert.ok(existsSync(synthetic));
      t.diagnostic(`screenshot: ${await checkInBrowser(browser, synthetic, { gallery: 12 }, "synthetic-report.png")}`);
      const real = join(dir, "real-report", "index.html");
      if (existsSync(real))
        t.diagnostic(`screenshot: ${await checkInBrowser(browser, real, { gallery: 18 }, "real-report.png")}`);
      else t.diagnostic(`no real-run report (${cifarSkip || "its suite failed"}): only the synthetic page was opened`);
    } finally {
      await browser.close();
    }
  });
});
