// The dual-member analysis of an evaluation (report.dual): for two members that ignore their
// input every number follows by hand (the standard member out-shouts the robust one at alpha
// 0.25, no attack can break anything); for random linear MoE members each count is recomputed
// here from the members' own logits, in plain JavaScript, at the clean images and at the
// adversarial points generateAdversarial gives for the same seed; shards merge to the same
// numbers; a model that is not a dual model, or an old flags file, has none.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { recordToFlags } from "../../src/eval/flags-file.js";
import {
  type DualMemberAttack,
  type DualMemberResult,
  evaluateRecord,
  evaluateRobustness,
  formatReportTable,
  generateAdversarial,
  loadRecord,
  mergeRecords,
  reportFromRecord,
  saveRecord,
} from "../../src/eval/index.js";
import { DualModel } from "../../src/models/index.js";
import type { UnaryModule } from "../../src/nn/index.js";
import { dispose, noGrad, scope, type Tensor } from "../../src/tensor/index.js";
import { guardLeaks } from "../attacks/helpers.js";
import { tempDir } from "../data/synth.js";
import { constantModel, K, synthData, tensorsOf, tinyDual, tinyMoE } from "./helpers.js";

const tmp = tempDir("eval-dual-members");
after(tmp.cleanup);

/** Rows of logits of a model at x, as plain numbers. */
function logitsOf(m: UnaryModule, x: Tensor): number[][] {
  const flat = scope(() => noGrad(() => m.forward(x).toFlatArray()));
  return Array.from({ length: flat.length / K }, (_, i) => flat.slice(i * K, (i + 1) * K));
}

function argmax(v: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if ((v[i] as number) > (v[best] as number)) best = i;
  return best;
}

function populationStd(v: readonly number[]): number {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
}

describe("the dual-member analysis", () => {
  guardLeaks();

  it("members that ignore the input: the louder, heavier standard member decides everything", () => {
    // Standard: logits [2, 0.2, 0.4, 0.6, 0.8] (std sqrt(0.4)); robust: [0, 2, 0.4, 0.6, 0.8]
    // (std sqrt(0.4544)). At alpha 0.25 the mixture is [1.5, 0.65, 0.4, 0.6, 0.8]: class 0.
    const labels = [0, 1, 1, 2, 0, 1, 3, 1];
    const ds = synthData(labels.length, 5, labels);
    const dual = new DualModel(constantModel(0), constantModel(1), { alpha: 0.25 }).eval();
    const r = evaluateRobustness(dual, ds, { attacks: ["pgd3"], eps: 0.1, seed: 0, batchSize: 3 });
    const d = r.dual;
    assert.ok(d !== null);
    assert.equal(d.alpha, 0.25);
    assert.equal(d.space, "logits");
    const [s, rb] = d.members;
    assert.equal(s?.member, "standard");
    assert.equal(s?.weight, 0.75);
    assert.equal(rb?.weight, 0.25);
    assert.equal(s?.clean.correct, 2);
    assert.equal(rb?.clean.correct, 4);
    assert.equal(s?.agreement, 1);
    assert.equal(rb?.agreement, 0);
    assert.ok(Math.abs((s?.logitSpread ?? 0) - Math.sqrt(0.4)) < 1e-4);
    assert.ok(Math.abs((rb?.logitSpread ?? 0) - Math.sqrt(0.4544)) < 1e-4);
    // Nothing moves: nothing is broken, each member keeps its clean accuracy at the attack's points.
    assert.deepEqual(
      d.members.map((m) => m.underAttack.map((a) => [a.spec, a.correct.correct, a.agreement, a.broken, a.outvoted])),
      [[["pgd3", 2, 1, 0, 0]], [["pgd3", 4, 0, 0, 0]]],
    );
    const text = formatReportTable(r);
    assert.match(text, /dual-model members \(alpha 0\.25, mixes logits\)/);
    assert.match(text, /standard\s+0\.75\s+0\.63[23]\s+0\.474\s+clean\s+25\.00%/);
    dual.dispose();
  });

  it("random MoE members: every count as recomputed from the members' logits", () => {
    const ds = synthData(14, 9);
    const dual = tinyDual(3, 0.4);
    const options = { attacks: ["pgd5"], eps: 0.15, seed: 2, batchSize: 5, moeAttacks: false };
    const r = evaluateRobustness(dual, ds, options);
    const ex = generateAdversarial(dual, ds, "pgd5", { eps: 0.15, seed: 2, batchSize: 5 });
    const { x, y } = tensorsOf(ds);
    const labels = y.toFlatArray();
    const mixed = (s: number[][], rb: number[][]) => s.map((row, i) => row.map((v, c) => 0.6 * v + 0.4 * (rb[i]?.[c] as number)));
    const at = (input: Tensor) => {
      const s = logitsOf(dual.standard, input);
      const rb = logitsOf(dual.robust, input);
      return { standard: s, robust: rb, dual: mixed(s, rb).map(argmax) };
    };
    const clean = at(x);
    const adv = at(ex.xAdv);
    const dualClean = clean.dual.map((p, i) => p === labels[i]);
    const dualAdv = adv.dual.map((p, i) => p === labels[i]);
    const broken = dualClean.filter((ok, i) => ok && !dualAdv[i]).length;
    assert.ok(broken > 0, "the attack breaks some samples, so the out-voted count is tested");
    assert.equal(r.attacks[0]?.correct, dualClean.filter((ok, i) => ok && dualAdv[i]).length);
    const d = r.dual;
    assert.ok(d !== null);
    for (const [j, name] of (["standard", "robust"] as const).entries()) {
      const m: DualMemberResult | undefined = d.members[j];
      assert.equal(m?.member, name);
      const predClean = clean[name].map(argmax);
      const predAdv = adv[name].map(argmax);
      assert.equal(m?.clean.correct, predClean.filter((p, i) => p === labels[i]).length);
      assert.equal(m?.agreement, predClean.filter((p, i) => p === clean.dual[i]).length / labels.length);
      const spread = clean[name].map(populationStd).reduce((a, b) => a + b, 0) / labels.length;
      assert.ok(Math.abs((m?.logitSpread ?? 0) - spread) < 1e-4, `${name}: spread ${m?.logitSpread} against ${spread}`);
      const a: DualMemberAttack | undefined = m?.underAttack[0];
      assert.equal(a?.correct.correct, predAdv.filter((p, i) => p === labels[i] && predClean[i] === labels[i]).length);
      assert.equal(a?.agreement, predAdv.filter((p, i) => p === adv.dual[i]).length / labels.length);
      assert.equal(a?.broken, broken);
      assert.equal(a?.outvoted, predAdv.filter((p, i) => dualClean[i] && !dualAdv[i] && p === labels[i]).length);
    }
    dispose([x, y]);
    dispose(ex);
    dual.dispose();
  });

  it("shards merge to the same numbers; a model that is not dual, and an old flags file, have none", () => {
    const ds = synthData(11, 4);
    const dual = tinyDual(6, 0.5);
    const options = { attacks: ["fgsm", "pgd3"], eps: 0.1, seed: 1, batchSize: 3, moeAttacks: false };
    const one = reportFromRecord(evaluateRecord(dual, ds, options));
    const shards = [1, 2].map((i) => {
      const path = join(tmp.dir, `dual-${i}.json`);
      saveRecord(path, evaluateRecord(dual, ds, { ...options, shard: { index: i, count: 2 } }));
      return loadRecord(path);
    });
    const merged = mergeRecords(shards);
    assert.deepEqual(reportFromRecord(merged).dual, one.dual);
    assert.equal(one.dual?.members[0]?.underAttack.length, 2);
    // A flags file written before the analysis existed: no dual columns.
    const flags = recordToFlags(merged);
    for (const name of Object.keys(flags.columns)) if (name.startsWith("dual:")) delete flags.columns[name];
    const old = join(tmp.dir, "old.json");
    writeFileSync(old, JSON.stringify(flags));
    const oldReport = reportFromRecord(loadRecord(old));
    assert.equal(oldReport.dual, null);
    assert.equal(oldReport.clean.correct, one.clean.correct);
    dual.dispose();
    const moe = tinyMoE(1);
    assert.equal(evaluateRobustness(moe, ds, { attacks: ["fgsm"], eps: 0.1 }).dual, null);
    moe.dispose();
  });
});
