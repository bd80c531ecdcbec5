// evaluateRobustness on tiny models and synthetic data, with known answers where they
// follow by hand: a model that ignores its input keeps RA = SA under every attack; MoEs
// whose experts all ignore the input keep RA-E = RA-R = SA; counts add up (per class,
// expert usage); the worst case is at most every attack; batching and the order of the
// attack list do not change an attack's result under a seed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AttackSpecError,
  type EvalBatch,
  type EvalProgress,
  evaluateRobustness,
  formatReportJson,
  formatReportTable,
  generateAdversarial,
  REPORT_SCHEMA,
  type RobustnessReport,
} from "../../src/eval/index.js";
import { ExpertUsage } from "../../src/models/expert-usage.js";
import { dispose, noGrad, scope, tensor } from "../../src/tensor/index.js";
import { assertInThreatModel, guardLeaks } from "../attacks/helpers.js";
import { CLASSES, constantModel, K, linearModel, synthData, tensorsOf, tinyDual, tinyMoE } from "./helpers.js";

const EPS = 8 / 255;
const FAST = { apgdSteps: 5, queries: 20, moeSteps: 5 };

function sameExceptTime(a: RobustnessReport, b: RobustnessReport): void {
  const strip = (r: RobustnessReport) =>
    JSON.parse(JSON.stringify(r, (k, v) => (k === "seconds" ? 0 : v))) as Record<string, unknown>;
  assert.deepEqual(strip(a), strip(b));
}

function checkCounts(r: RobustnessReport): void {
  const sum = (xs: number[]) => xs.reduce((s, v) => s + v, 0);
  assert.equal(sum(r.perClass.map((c) => c.n)), r.n, "per-class n sums to n");
  assert.equal(sum(r.perClass.map((c) => c.clean.correct)), r.clean.correct, "per-class clean sums to SA count");
  assert.equal(r.clean.accuracy, r.clean.correct / r.n);
  for (const c of r.perClass) {
    assert.equal(c.clean.accuracy, c.n === 0 ? null : c.clean.correct / c.n);
  }
  if (r.worstCase !== null) {
    assert.equal(sum(r.perClass.map((c) => c.robust?.correct ?? Number.NaN)), r.worstCase.correct, "per-class robust sums");
    for (const a of r.attacks) {
      assert.ok(r.worstCase.correct <= a.correct, `worst case ${r.worstCase.correct} <= ${a.spec} ${a.correct}`);
      assert.ok(a.correct <= r.clean.correct, `${a.spec} <= SA`);
    }
  }
  for (const m of r.moe) {
    assert.equal(sum(m.usage.counts), r.n, `${m.member}: usage sums to n`);
    for (const u of m.underAttack) assert.equal(sum(u.counts), r.n, `${m.member} under ${u.spec}: routes sum to n`);
    for (const a of [m.expertAttack, m.routerAttack]) {
      if (a === null) continue;
      for (const v of [a.accuracy, a.moeAccuracy, a.routeFlipRate]) assert.ok(v >= 0 && v <= 1);
    }
  }
}

describe("evaluateRobustness", () => {
  guardLeaks();

  it("a model that ignores its input: RA = SA under every attack, per class exactly as labelled", () => {
    const labels = [0, 1, 2, 2, 3, 2, 4, 2, 1, 0, 2, 3];
    const ds = synthData(labels.length, 3, labels);
    const model = constantModel(2);
    const stages: EvalProgress[] = [];
    const r = evaluateRobustness(model, ds, {
      attacks: ["fgsm", "pgd5", "apgd-ce", "apgd-dlr", "apgd-t", "square", "aa"],
      ...FAST,
      batchSize: 5,
      seed: 0,
      onProgress: (p) => stages.push(p),
    });
    const twos = labels.filter((l) => l === 2).length;
    assert.equal(r.schema, REPORT_SCHEMA);
    assert.equal(r.n, labels.length);
    assert.deepEqual(r.classes, CLASSES);
    assert.equal(r.clean.correct, twos);
    for (const a of r.attacks) assert.equal(a.correct, twos, `${a.spec}: RA = SA`);
    assert.equal(r.worstCase?.correct, twos);
    assert.deepEqual(r.worstCase?.attacks, ["fgsm", "pgd5", "apgd-ce", "apgd-dlr", "apgd-t", "square", "aa"]);
    for (const c of r.perClass) {
      const n = labels.filter((l) => l === c.index).length;
      assert.equal(c.n, n);
      assert.equal(c.clean.correct, c.index === 2 ? n : 0);
      assert.equal(c.robust?.correct, c.index === 2 ? n : 0);
    }
    assert.equal(r.model.kind, "plain");
    assert.deepEqual(r.moe, []);
    assert.deepEqual(r.threatModel, { norm: "linf", eps: EPS });
    checkCounts(r);
    // Progress: one update per stage, ending at n.
    assert.equal(stages.length, 3 * (1 + 7));
    assert.equal(stages.at(-1)?.done, labels.length);
    assert.equal(stages.at(-1)?.total, labels.length);
    assert.match(stages[0]?.stage ?? "", /^batch 1\/3: clean$/);
    model.dispose();
  });

  it("a linear model: worst case <= each attack <= SA, and the counts add up", () => {
    const model = linearModel(2);
    // Labelled with the model's own predictions: SA = 1.
    const data = tensorsOf(synthData(20, 5));
    const x = data.x;
    const y = scope(() => noGrad(() => model.forward(x).argmax(1)));
    data.y.dispose();
    const r = evaluateRobustness(model, [{ x, y }], { attacks: ["fgsm", "pgd5", "apgd-dlr"], ...FAST, eps: 0.1, seed: 1 });
    assert.equal(r.clean.accuracy, 1);
    checkCounts(r);
    assert.ok((r.worstCase?.correct ?? 99) < r.n, "eps 0.1 breaks some samples");
    dispose([x, y]);
    model.dispose();
  });

  it("batches, batch size and the attack list do not change an attack's result under a seed", () => {
    const ds = synthData(13, 9);
    const model = linearModel(4);
    const o = { eps: 0.05, seed: 7, ...FAST };
    const whole = evaluateRobustness(model, ds, { ...o, attacks: ["fgsm", "pgd5"], batchSize: 100 });
    const again = evaluateRobustness(model, ds, { ...o, attacks: ["fgsm", "pgd5"], batchSize: 100 });
    sameExceptTime(whole, again);
    const alone = evaluateRobustness(model, ds, { ...o, attacks: ["pgd5"], batchSize: 100 });
    assert.equal(alone.attacks[0]?.correct, whole.attacks[1]?.correct, "pgd5 alone = pgd5 after fgsm");
    // FGSM is deterministic: any batching gives the same counts, from a dataset or from tensors.
    const small = evaluateRobustness(model, ds, { ...o, attacks: ["fgsm"], batchSize: 4 });
    const { x, y } = tensorsOf(ds);
    const batches: EvalBatch[] = [0, 5, 10].map((s) => ({
      x: x.narrow(0, s, Math.min(5, 13 - s)),
      y: y.narrow(0, s, Math.min(5, 13 - s)),
    }));
    const fromTensors = evaluateRobustness(model, batches, { ...o, attacks: ["fgsm"], classes: CLASSES });
    for (const r of [small, fromTensors]) {
      assert.equal(r.clean.correct, whole.clean.correct);
      assert.equal(r.attacks[0]?.correct, whole.attacks[0]?.correct);
      assert.deepEqual(
        r.perClass.map((c) => [c.n, c.clean.correct]),
        whole.perClass.map((c) => [c.n, c.clean.correct]),
      );
    }
    assert.deepEqual(
      small.perClass.map((c) => c.robust?.correct),
      fromTensors.perClass.map((c) => c.robust?.correct),
    );
    // n cuts tensors batches too; the caller's tensors stay alive.
    const cut = evaluateRobustness(model, batches, { ...o, attacks: [], n: 7 });
    assert.equal(cut.n, 7);
    assert.equal(cut.worstCase, null);
    assert.ok(cut.perClass.every((c) => c.robust === null));
    assert.equal(cut.classes.join(","), Array.from({ length: K }, (_, i) => String(i)).join(","), "default class names");
    assert.equal(x.isDisposed, false);
    dispose(batches);
    dispose([x, y]);
    model.dispose();
  });

  it("a MoE: expert usage sums to n, RA-E/RA-R and route flips are reported, modes are left alone", () => {
    const ds = synthData(15, 11);
    const moe = tinyMoE(3);
    moe.train();
    const r = evaluateRobustness(moe, ds, { attacks: ["pgd5", "fgsm"], ...FAST, eps: 0.1, seed: 0, batchSize: 8 });
    assert.equal(moe.training, true, "mode restored");
    assert.equal(r.model.kind, "moe");
    assert.equal(r.moe.length, 1);
    const m = r.moe[0];
    assert.ok(m !== undefined);
    assert.equal(m.member, "model");
    assert.equal(m.attackedAlone, false);
    assert.equal(m.numExperts, 3);
    assert.equal(m.cleanAccuracy, r.clean.accuracy);
    assert.deepEqual(
      m.underAttack.map((u) => u.spec),
      ["pgd5", "fgsm"],
    );
    assert.match(m.expertAttack?.attack ?? "", /ExpertAttack PGD-5/);
    assert.match(m.routerAttack?.attack ?? "", /RouterAttack PGD-5 \(linf, output\)/);
    checkCounts(r);
    // Usage is what ExpertUsage counts on a clean forward.
    const { x, y } = tensorsOf(ds);
    y.dispose();
    moe.eval();
    const usage = new ExpertUsage(moe.numExperts);
    scope(() => {
      noGrad(() => usage.add(moe.forwardDetailed(x).gates));
    });
    assert.deepEqual(m.usage.counts, usage.counts());
    usage.dispose();
    x.dispose();
    const off = evaluateRobustness(moe, ds, { attacks: ["fgsm"], moeAttacks: false });
    assert.equal(off.moe[0]?.expertAttack, null);
    assert.equal(off.moe[0]?.routerAttack, null);
    assert.deepEqual(off.moe[0]?.usage.counts, m.usage.counts);
    moe.dispose();
  });

  it("a MoE whose experts all ignore the input: RA = RA-E = RA-R = SA", () => {
    const labels = [1, 1, 0, 3, 1, 4, 2, 1];
    const ds = synthData(labels.length, 2, labels);
    const moe = tinyMoE(5, 2, 1);
    const r = evaluateRobustness(moe, ds, { attacks: ["pgd5"], ...FAST, eps: 0.2, seed: 0 });
    const ones = labels.filter((l) => l === 1).length / labels.length;
    assert.equal(r.clean.accuracy, ones);
    assert.equal(r.attacks[0]?.accuracy, ones);
    const m = r.moe[0];
    assert.equal(m?.expertAttack?.accuracy, ones);
    assert.equal(m?.routerAttack?.accuracy, ones);
    assert.equal(m?.routerAttack?.moeAccuracy, ones);
    checkCounts(r);
    moe.dispose();
  });

  it("a dual model: RA attacks it end to end; RA-E/RA-R for each MoE member attacked alone", () => {
    const ds = synthData(10, 4);
    const dual = tinyDual(8, 0.25);
    const r = evaluateRobustness(dual, ds, { attacks: ["pgd5"], ...FAST, eps: 0.1, seed: 0 });
    assert.equal(r.model.kind, "dual");
    assert.equal(r.model.alpha, 0.25);
    assert.equal(r.model.space, "logits");
    assert.deepEqual(r.model.members, { standard: "MoE", robust: "MoE" });
    assert.deepEqual(
      r.moe.map((m) => [m.member, m.attackedAlone, m.numExperts]),
      [
        ["standard", true, 2],
        ["robust", true, 3],
      ],
    );
    checkCounts(r);
    // Each member's clean accuracy is its own.
    const { x, y } = tensorsOf(ds);
    const own = (m: typeof dual.standard) => scope(() => noGrad(() => m.forward(x).argmax(1).eq(y).double().mean().item()));
    assert.equal(r.moe[0]?.cleanAccuracy, own(dual.standard));
    assert.equal(r.moe[1]?.cleanAccuracy, own(dual.robust));
    dispose([x, y]);
    dual.dispose();
  });

  it("masking checks on the first batch flag a model without input gradients", () => {
    const ds = synthData(12, 6);
    const model = constantModel(0);
    const r = evaluateRobustness(model, ds, { attacks: ["fgsm"], batchSize: 6, maskingChecks: { steps: 2, queries: 10 } });
    assert.equal(r.masking?.n, 6);
    assert.equal(r.masking?.flagged, true);
    assert.equal(r.masking?.checks.find((c) => c.id === "zero-gradients")?.flagged, true);
    assert.match(formatReportTable(r), /FLAG zero-gradients/);
    model.dispose();
  });

  it("adversarial examples: in the eps ball and [0, 1], with the RA of evaluateRobustness", () => {
    const ds = synthData(9, 7);
    const model = linearModel(6);
    const ex = generateAdversarial(model, ds, "pgd5", { eps: 0.1, seed: 3, batchSize: 4 });
    assertInThreatModel(ex.xAdv, ex.x, 0.1, "linf", "x_adv");
    assert.deepEqual(ex.y.shape, [9]);
    assert.equal(ex.predClean.dtype, "int64");
    const r = evaluateRobustness(model, ds, { attacks: ["pgd5"], eps: 0.1, seed: 3, batchSize: 4 });
    assert.equal(ex.robustAccuracy, r.attacks[0]?.accuracy);
    assert.equal(ex.cleanAccuracy, r.clean.accuracy);
    assert.equal(ex.attack, r.attacks[0]?.attack);
    dispose(ex);
    model.dispose();
  });

  it("errors name the problem", () => {
    const ds = synthData(4, 1);
    const model = linearModel(1);
    assert.throws(() => evaluateRobustness(model, ds, { attacks: ["pgd5", "zap"] }), AttackSpecError);
    assert.throws(() => evaluateRobustness(model, ds, { attacks: ["pgd5", "pgd5"] }), /listed twice/);
    assert.throws(() => evaluateRobustness(model, ds, { eps: -1 }), /eps must be a finite number >= 0/);
    assert.throws(() => evaluateRobustness(model, ds, { n: 0 }), /n must be an integer >= 1/);
    assert.throws(
      () => evaluateRobustness(model, ds, { attacks: [], classes: ["a", "b"] }),
      /the model predicts 5 classes but the data has 2/,
    );
    assert.throws(() => evaluateRobustness(model, [], { attacks: [] }), /no samples to evaluate/);
    const bad = scope(() => ({
      x: tensor([[[[0.5]]]])
        .expand(1, 1, 4, 4)
        .contiguous(),
      y: tensor([7], { dtype: "int64" }),
    }));
    assert.throws(() => evaluateRobustness(model, [bad], { attacks: [] }), /label 7 of sample 0 is outside 0..4/);
    dispose(bad);
    model.dispose();
  });

  it("the report prints as a table and as JSON that parses back to the same report", () => {
    const ds = synthData(6, 2);
    const moe = tinyMoE(1);
    const r = evaluateRobustness(moe, ds, { attacks: ["fgsm", "pgd3"], ...FAST, seed: 0, source: { dataset: "synth" } });
    const table = formatReportTable(r);
    for (const re of [/SA\s+clean/, /RA\s+fgsm/, /RA\s+pgd3/, /RA\s+worst case/, /RA-E/, /RA-R/, /expert usage/, /per class/]) {
      assert.match(table, re);
    }
    assert.deepEqual(JSON.parse(formatReportJson(r)), r);
    assert.equal(r.source.dataset, "synth");
    assert.equal(r.source.checkpoint, null);
    moe.dispose();
  });
});
