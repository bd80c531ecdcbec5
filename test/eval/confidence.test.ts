// Clopper-Pearson intervals on the report's accuracies: the bounds against SciPy
// (scipy.stats.beta.ppf, 1.17), and an interval on every accuracy of a report.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { accuracyInterval, evaluateRobustness, type Interval } from "../../src/eval/index.js";
import { guardLeaks } from "../attacks/helpers.js";
import { synthData, tinyMoE } from "./helpers.js";

// [k, n, level, lower, upper] from scipy: beta.ppf((1-level)/2, k, n-k+1), beta.ppf((1+level)/2, k+1, n-k).
const SCIPY: [number, number, number, number, number][] = [
  [0, 10, 0.95, 0, 0.3084971078187607],
  [10, 10, 0.95, 0.6915028921812392, 1],
  [5, 10, 0.95, 0.18708602844739855, 0.8129139715526015],
  [50, 100, 0.95, 0.398321129503301, 0.601678870496699],
  [1, 1000, 0.95, 2.5317487491294065e-5, 0.005558924279826672],
  [127, 1000, 0.95, 0.10698432694945341, 0.14924003033485814],
  [9990, 10000, 0.95, 0.9981617358657894, 0.9995203602762289],
  [4321, 10000, 0.99, 0.4193250640162943, 0.44493986740453645],
  [3, 7, 0.9, 0.12875639280424267, 0.7746784159675522],
  [0, 1, 0.95, 0, 0.975],
  [1, 1, 0.95, 0.025000000000000022, 1],
];

describe("confidence intervals", () => {
  guardLeaks();

  it("match SciPy's Beta quantiles to 1e-10", () => {
    for (const [k, n, level, lo, hi] of SCIPY) {
      const i = accuracyInterval(k, n, level);
      assert.ok(Math.abs(i.lower - lo) <= 1e-10 * Math.max(lo, 1e-300) + 1e-16, `${k}/${n} lower ${i.lower} vs ${lo}`);
      assert.ok(Math.abs(i.upper - hi) <= 1e-10 * hi, `${k}/${n} upper ${i.upper} vs ${hi}`);
    }
    assert.throws(() => accuracyInterval(1, 2, 1), /confidence level must be in \(0, 1\)/);
  });

  it("every accuracy of a report carries its interval, at the requested level", () => {
    const ds = synthData(17, 2);
    const moe = tinyMoE(7);
    const r = evaluateRobustness(moe, ds, { attacks: ["fgsm", "pgd2"], moeSteps: 2, confidence: 0.9, curveEps: [0.01] });
    assert.deepEqual(r.confidence, { level: 0.9, method: "clopper-pearson" });
    const check = (correct: number, n: number, i: Interval | null, what: string) => {
      assert.ok(i !== null, what);
      assert.deepEqual(i, accuracyInterval(correct, n, 0.9), what);
      assert.ok(i.lower <= correct / n && correct / n <= i.upper, what);
    };
    check(r.clean.correct, r.n, r.clean.interval, "SA");
    for (const a of r.attacks) check(a.correct, r.n, a.interval, a.spec);
    check(r.worstCase?.correct ?? -1, r.n, r.worstCase?.interval ?? null, "worst case");
    for (const c of r.curves.attacks) for (const p of c.points) check(p.correct, r.n, p.interval, `${c.spec}@${p.eps}`);
    for (const c of r.perClass) {
      if (c.n === 0) {
        assert.equal(c.clean.interval, null);
        continue;
      }
      check(c.clean.correct, c.n, c.clean.interval, `class ${c.name}`);
      check(c.robust?.correct ?? -1, c.n, c.robust?.interval ?? null, `class ${c.name} robust`);
    }
    const m = r.moe[0];
    assert.ok(m !== undefined && m.expertAttack !== null && m.routerAttack !== null);
    check(m.clean.correct, r.n, m.clean.interval, "MoE clean");
    for (const a of [m.expertAttack, m.routerAttack]) {
      check(a.correct, r.n, a.interval, a.attack);
      check(a.moeCorrect, r.n, a.moeInterval, `${a.attack} real MoE`);
    }
    moe.dispose();
  });
});
