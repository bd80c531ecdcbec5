// The alpha sweep: alphas parse as documented; the end points are the members alone (checked
// against evaluating each member by itself), every point uses the same seeded attacks, and a
// marker is evaluated like a point.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { certifyDataset } from "../../src/certify/run-certify.js";
import { evaluateRobustness } from "../../src/eval/evaluate.js";
import { DualModel } from "../../src/models/index.js";
import { parseAlphas, sweepAlphas } from "../../src/sweep/sweep.js";
import { guardLeaks } from "../attacks/helpers.js";
import { synthData, tinyMoE } from "../eval/helpers.js";

describe("rmoe sweep", () => {
  guardLeaks();

  it("parses alphas as ranges (inclusive, rounded) or lists, and refuses values outside [0, 1]", () => {
    assert.deepEqual(parseAlphas("0:1:0.1"), [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    assert.deepEqual(parseAlphas("0:1:0.25"), [0, 0.25, 0.5, 0.75, 1]);
    assert.deepEqual(parseAlphas(" 0.7, 0.3,0.3 "), [0.3, 0.7]);
    assert.throws(() => parseAlphas("0:2:0.5"), /outside \[0, 1\]/);
    assert.throws(() => parseAlphas("1:0:0.1"), /stop >= start/);
    assert.throws(() => parseAlphas("a,b"), /numbers/);
  });

  it("alpha 0 is the standard model alone, alpha 1 the robust one; markers are evaluated the same way", () => {
    const data = synthData(24, 5);
    const s = tinyMoE(1);
    const r = tinyMoE(2);
    const options = { attacks: ["pgd5", "fgsm"], eps: 0.1, n: 24, batchSize: 8, seed: 3 };
    const sweep = sweepAlphas(s, r, data, [0, 0.5, 1], options, [{ label: "robust alone", kind: "rt-er", model: r }]);
    assert.deepEqual(
      sweep.points.map((p) => p.alpha),
      [0, 0.5, 1],
    );
    assert.deepEqual(sweep.attacks, ["pgd5", "fgsm"]);
    const alone = (m: typeof s) => evaluateRobustness(m, data, { ...options, moeAttacks: false });
    const [es, er] = [alone(s), alone(r)];
    const first = sweep.points[0];
    const last = sweep.points[2];
    assert.equal(first?.sa, es.clean.accuracy);
    assert.deepEqual(first?.ra, { pgd5: es.attacks[0]?.accuracy, fgsm: es.attacks[1]?.accuracy });
    assert.equal(last?.sa, er.clean.accuracy);
    assert.deepEqual(last?.ra, { pgd5: er.attacks[0]?.accuracy, fgsm: er.attacks[1]?.accuracy });
    assert.equal(last?.worst, er.worstCase?.accuracy);
    const marker = sweep.markers[0];
    assert.equal(marker?.sa, er.clean.accuracy);
    assert.equal(marker?.alpha, null);
    // The middle point is the dual model itself.
    const dual = new DualModel(s, r, { alpha: 0.5 });
    const ed = evaluateRobustness(dual, data, { ...options, moeAttacks: false });
    assert.equal(sweep.points[1]?.sa, ed.clean.accuracy);
    assert.equal(sweep.points[1]?.ra.pgd5, ed.attacks[0]?.accuracy);
    dual.dispose();
  });

  it("--certify: certified accuracy at every alpha; the end points and the marker equal each member certified alone", () => {
    const data = synthData(24, 6);
    const s = tinyMoE(3);
    const r = tinyMoE(4);
    const eps = [0.002, 0.02];
    const options = { attacks: ["fgsm"], eps: 0.02, n: 24, batchSize: 8, seed: 1, certify: { method: "ibp" as const, eps } };
    const sweep = sweepAlphas(s, r, data, [0, 0.5, 1], options, [{ label: "robust alone", kind: "rt-er", model: r }]);
    assert.deepEqual(sweep.certify, { method: "ibp", norm: "linf", eps, smoothing: null });
    const alone = (m: typeof s) => certifyDataset(m, data, { method: "ibp", eps, n: 24, batchSize: 8 }).certifiedAccuracy;
    const [cs, cr] = [alone(s), alone(r)];
    assert.deepEqual(
      sweep.points[0]?.certified,
      eps.map((e, i) => ({ eps: e, accuracy: cs[i] })),
    );
    assert.deepEqual(
      sweep.points[2]?.certified,
      eps.map((e, i) => ({ eps: e, accuracy: cr[i] })),
    );
    assert.deepEqual(sweep.markers[0]?.certified, sweep.points[2]?.certified);
    assert.ok((cs[0] as number) + (cr[0] as number) > 0, "nothing certified at the small radius: the test would be vacuous");
    for (const p of sweep.points) {
      const c = p.certified ?? [];
      assert.equal(c.length, 2);
      assert.ok((c[1]?.accuracy as number) <= (c[0]?.accuracy as number), `alpha ${p.alpha}: certified accuracy grows with eps`);
      assert.ok((c[0]?.accuracy as number) <= p.sa);
    }
    // Without --certify: null, as the report reader expects.
    const plain = sweepAlphas(s, r, data, [0.5], { ...options, certify: null });
    assert.equal(plain.certify, null);
    assert.equal(plain.points[0]?.certified, null);
    s.dispose();
    r.dispose();
  });
});
