// Clopper-Pearson bounds and the incomplete beta function, against three independent
// references: mpmath at 50 digits (test/fixtures/gen_smoothing_reference.py, which solves the
// binomial equations without any beta function), closed forms, and two computations written
// here: the binomial tail summed term by term (the identity P(Bin(n, p) >= k) = I_p(k, n-k+1)),
// and Simpson integration of the beta density.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  betaQuantile,
  betaQuantileUpper,
  betaTails,
  binomialTestHalf,
  binomialUpperTail,
  clopperPearsonInterval,
  clopperPearsonLower,
  clopperPearsonUpper,
  logGamma,
  regularizedIncompleteBeta,
} from "../../src/certify/clopper-pearson.js";
import { fixturePath } from "../helpers/paths.js";
import { mulberry32 } from "../helpers/rng.js";

interface Reference {
  clopper: { k: number; n: number; alpha: number; lower: number; upper: number; interval: [number, number] }[];
  binomtest: { k: number; n: number; pvalue: number }[];
  incbeta: { x: number; a: number; b: number; lower: number; upper: number }[];
}

const reference = JSON.parse(readFileSync(fixturePath("smoothing-reference.json"), "utf8")) as Reference;

function assertRel(actual: number, expected: number, rtol: number, what: string): void {
  const err = Math.abs(actual - expected);
  assert.ok(
    err <= rtol * Math.abs(expected),
    `${what}: got ${actual}, expected ${expected} (relative error ${err / Math.abs(expected)})`,
  );
}

/**
 * P(Bin(n, p) >= k) and P(Bin(n, p) <= k) by summing probabilities: weights relative to the
 * mode's (ratios pmf(j+1)/pmf(j) = (n-j)/(j+1) * p/(1-p)), so no gamma function and no
 * overflow; terms below 1e-30 of the mode's are dropped. Relative accuracy ~1e-12 for n <= 1e5.
 */
function binomialTails(k: number, n: number, p: number): { ge: number; le: number } {
  const mode = Math.min(n, Math.max(0, Math.floor((n + 1) * p)));
  const ratio = p / (1 - p);
  const w = new Map<number, number>([[mode, 1]]);
  let t = 1;
  for (let j = mode; j < n && t > 1e-30; j++) {
    t *= ((n - j) / (j + 1)) * ratio;
    w.set(j + 1, t);
  }
  t = 1;
  for (let j = mode; j > 0 && t > 1e-30; j--) {
    t *= j / (n - j + 1) / ratio;
    w.set(j - 1, t);
  }
  let total = 0;
  let ge = 0;
  let le = 0;
  // Smallest terms first, for the sum's rounding.
  for (const [j, v] of [...w.entries()].sort((a, b) => a[1] - b[1])) {
    total += v;
    if (j >= k) ge += v;
    if (j <= k) le += v;
  }
  return { ge: ge / total, le: le / total };
}

/** I_x(a, b) for a, b >= 1 by composite Simpson's rule on the unnormalised density (B(a, b) by the same rule). */
function simpsonIncompleteBeta(x: number, a: number, b: number): number {
  const integral = (hi: number) => {
    const m = 200_000;
    const h = hi / m;
    const f = (t: number) => t ** (a - 1) * (1 - t) ** (b - 1);
    let s = f(0) + f(hi);
    for (let i = 1; i < m; i++) s += (i % 2 === 1 ? 4 : 2) * f(i * h);
    return (s * h) / 3;
  };
  return integral(x) / integral(1);
}

describe("Clopper-Pearson bounds", () => {
  it("match mpmath's solutions of the binomial equations to 1e-11", () => {
    for (const c of reference.clopper) {
      const what = `k ${c.k}, n ${c.n}, alpha ${c.alpha}`;
      const lower = clopperPearsonLower(c.k, c.n, c.alpha);
      const upper = clopperPearsonUpper(c.k, c.n, c.alpha);
      const [lo, hi] = clopperPearsonInterval(c.k, c.n, c.alpha);
      if (c.lower === 0) assert.equal(lower, 0, what);
      else assertRel(lower, c.lower, 1e-11, `${what} lower`);
      if (c.upper === 1) assert.equal(upper, 1, what);
      else assertRel(upper, c.upper, 1e-11, `${what} upper`);
      if (c.interval[0] === 0) assert.equal(lo, 0, what);
      else assertRel(lo, c.interval[0], 1e-11, `${what} interval lower`);
      if (c.interval[1] === 1) assert.equal(hi, 1, what);
      else assertRel(hi, c.interval[1], 1e-11, `${what} interval upper`);
    }
  });

  it("equal the closed forms at k = n, k = 0, k = 1 and k = n - 1", () => {
    for (const n of [1, 2, 7, 100, 1000, 100_000, 1_000_000]) {
      for (const alpha of [0.5, 0.05, 0.001, 1e-10]) {
        const what = `n ${n}, alpha ${alpha}`;
        // P(Bin(n, p) >= n) = p^n = alpha.
        assertRel(clopperPearsonLower(n, n, alpha), alpha ** (1 / n), 1e-12, `${what}: lower at k = n`);
        // P(Bin(n, p) <= 0) = (1 - p)^n = alpha.
        assertRel(clopperPearsonUpper(0, n, alpha), -Math.expm1(Math.log(alpha) / n), 1e-12, `${what}: upper at k = 0`);
        // P(Bin(n, p) >= 1) = 1 - (1 - p)^n = alpha.
        assertRel(clopperPearsonLower(1, n, alpha), -Math.expm1(Math.log1p(-alpha) / n), 1e-12, `${what}: lower at k = 1`);
        // P(Bin(n, p) <= n - 1) = 1 - p^n = alpha.
        assertRel(clopperPearsonUpper(n - 1, n, alpha), Math.exp(Math.log1p(-alpha) / n), 1e-12, `${what}: upper at k = n - 1`);
        const [lo, hi] = clopperPearsonInterval(n, n, alpha);
        assertRel(lo, (alpha / 2) ** (1 / n), 1e-12, `${what}: two-sided lower at k = n`);
        assert.equal(hi, 1);
        assert.equal(clopperPearsonLower(0, n, alpha), 0);
        assert.equal(clopperPearsonUpper(n, n, alpha), 1);
      }
    }
  });

  it("solve the binomial equations, summed term by term here, for random k, n and alpha", () => {
    const rng = mulberry32(11);
    for (let trial = 0; trial < 40; trial++) {
      const n = Math.floor(10 ** (1 + 4 * rng()));
      const k = Math.floor(rng() * (n + 1));
      const alpha = 10 ** (-1 - 5 * rng());
      const what = `k ${k}, n ${n}, alpha ${alpha}`;
      if (k > 0) {
        const lower = clopperPearsonLower(k, n, alpha);
        assertRel(binomialTails(k, n, lower).ge, alpha, 1e-9, `${what}: P(X >= k) at the lower bound`);
      }
      if (k < n) {
        const upper = clopperPearsonUpper(k, n, alpha);
        assertRel(binomialTails(k, n, upper).le, alpha, 1e-9, `${what}: P(X <= k) at the upper bound`);
      }
    }
  });

  it("are ordered and nested: lower < k/n < upper, tighter with more samples or less confidence", () => {
    for (const [k, n] of [
      [1, 10],
      [50, 100],
      [990, 1000],
      [60_000, 100_000],
    ] as const) {
      const lower = clopperPearsonLower(k, n, 0.001);
      const upper = clopperPearsonUpper(k, n, 0.001);
      assert.ok(lower < k / n && k / n < upper, `${k}/${n}: [${lower}, ${upper}]`);
      assert.ok(clopperPearsonLower(k, n, 0.01) > lower, "a lower confidence gives a higher lower bound");
      assert.ok(clopperPearsonLower(10 * k, 10 * n, 0.001) > lower, "more samples at the same rate give a higher lower bound");
      assert.ok(clopperPearsonLower(k + 1, n, 0.001) > lower, "one more success raises the lower bound");
      const [lo2, hi2] = clopperPearsonInterval(k, n, 0.002);
      assertRel(lo2, lower, 1e-14, "the two-sided interval at 2 alpha has the one-sided bounds at alpha");
      assertRel(hi2, upper, 1e-14, "the two-sided interval at 2 alpha has the one-sided bounds at alpha");
    }
  });

  it("reject counts and levels outside their ranges", () => {
    assert.throws(() => clopperPearsonLower(11, 10, 0.05), /k must be an integer in \[0, 10\]/);
    assert.throws(() => clopperPearsonLower(-1, 10, 0.05), /k must be/);
    assert.throws(() => clopperPearsonLower(1.5, 10, 0.05), /k must be/);
    assert.throws(() => clopperPearsonUpper(1, 0, 0.05), /n must be an integer >= 1/);
    assert.throws(() => clopperPearsonInterval(1, 10, 0), /alpha must be in \(0, 1\)/);
    assert.throws(() => clopperPearsonLower(1, 10, 1), /alpha must be in \(0, 1\)/);
    assert.throws(() => clopperPearsonLower(1, 10, Number.NaN), /alpha/);
  });
});

describe("incomplete beta function", () => {
  it("matches mpmath in both tails to 1e-12", () => {
    for (const c of reference.incbeta) {
      const t = betaTails(c.x, c.a, c.b);
      assertRel(t.lower, c.lower, 1e-12, `I_${c.x}(${c.a}, ${c.b})`);
      assertRel(t.upper, c.upper, 1e-12, `1 - I_${c.x}(${c.a}, ${c.b})`);
    }
  });

  it("matches Simpson integration of the beta density", () => {
    for (const [x, a, b] of [
      [0.3, 2.5, 3.7],
      [0.5, 10, 10],
      [0.8, 3, 2.2],
      [0.05, 1, 40],
    ] as const) {
      assertRel(regularizedIncompleteBeta(x, a, b), simpsonIncompleteBeta(x, a, b), 1e-10, `I_${x}(${a}, ${b})`);
    }
  });

  it("keeps tiny tails to full relative precision (closed forms x^a and (1 - x)^b)", () => {
    // I_x(a, 1) = x^a and 1 - I_x(1, b) = (1 - x)^b.
    assertRel(betaTails(1e-4, 50, 1).lower, 1e-200, 1e-12, "I_1e-4(50, 1)");
    assertRel(betaTails(0.5, 1, 1000).upper, 2 ** -1000, 1e-12, "1 - I_0.5(1, 1000)");
    assertRel(betaTails(7.6e-5, 1, 100_000).upper, Math.exp(100_000 * Math.log1p(-7.6e-5)), 1e-12, "1 - I_7.6e-5(1, 1e5)");
    for (const [x, a, b] of [
      [0.3, 4, 9],
      [0.9, 200, 30],
      [0.001, 0.5, 3],
    ] as const) {
      const t = betaTails(x, a, b);
      assertRel(t.lower + t.upper, 1, 1e-15, "the tails add to 1");
      const mirrored = betaTails(1 - x, b, a);
      assertRel(mirrored.upper, t.lower, 1e-13, "I_x(a, b) = 1 - I_{1-x}(b, a)");
    }
  });

  it("inverts: quantile(I_x) = x from the small tail to 1e-12, from the other to 1e-10 absolute", () => {
    // A tail close to 1 carries only absolute precision (1 - 6e-12 cannot pin x = 1e-6 down
    // relatively), so the relative check uses whichever tail is small.
    for (const [x, a, b] of [
      [0.3, 4, 9],
      [0.9, 200, 30],
      [1e-6, 2, 3],
      [0.999, 1000, 0.5],
    ] as const) {
      const t = betaTails(x, a, b);
      const fromLower = betaQuantile(t.lower, a, b);
      const fromUpper = betaQuantileUpper(t.upper, a, b);
      const [small, other] = t.lower <= t.upper ? [fromLower, fromUpper] : [fromUpper, fromLower];
      assertRel(small, x, 1e-12, `quantile from the small tail of I_${x}(${a}, ${b})`);
      assert.ok(Math.abs(other - x) < 1e-10, `quantile from the large tail of I_${x}(${a}, ${b}): ${other}`);
    }
    assert.equal(betaQuantile(0, 2, 3), 0);
    assert.equal(betaQuantile(1, 2, 3), 1);
    assert.throws(() => betaTails(0.5, 0, 1), /shape parameters must be finite and > 0/);
    assert.throws(() => betaTails(1.5, 1, 1), /x must be in \[0, 1\]/);
  });

  it("logGamma matches factorials and Gamma(1/2) = sqrt(pi)", () => {
    let logFactorial = 0;
    for (let n = 2; n <= 170; n++) {
      logFactorial += Math.log(n);
      assertRel(logGamma(n + 1), logFactorial, 1e-14, `ln ${n}!`);
    }
    assert.ok(Math.abs(logGamma(1)) < 1e-14 && Math.abs(logGamma(2)) < 1e-14, "ln 0! = ln 1! = 0");
    assertRel(logGamma(0.5), 0.5 * Math.log(Math.PI), 1e-14, "ln Gamma(1/2)");
  });
});

describe("binomial test of p = 1/2", () => {
  it("matches mpmath's two-sided p-values", () => {
    for (const c of reference.binomtest) assertRel(binomialTestHalf(c.k, c.n), c.pvalue, 1e-12, `${c.k} of ${c.n}`);
  });

  it("matches the binomial sum and the closed form 2^(1-n) at k = n", () => {
    for (const n of [1, 5, 20, 60]) assertRel(binomialTestHalf(n, n), Math.min(1, 2 * 0.5 ** n), 1e-13, `n ${n}`);
    for (const [k, n] of [
      [60, 100],
      [30, 100],
      [5300, 10_000],
    ] as const) {
      const far = Math.max(k, n - k);
      assertRel(binomialTestHalf(k, n), 2 * binomialTails(far, n, 0.5).ge, 1e-10, `${k} of ${n}`);
      assertRel(binomialUpperTail(k, n, 0.5), binomialTails(k, n, 0.5).ge, 1e-10, `P(X >= ${k})`);
    }
    assert.equal(binomialTestHalf(50, 100), 1);
    assert.equal(binomialUpperTail(0, 10, 0.3), 1);
    assert.equal(binomialUpperTail(11, 10, 0.3), 0);
  });
});
