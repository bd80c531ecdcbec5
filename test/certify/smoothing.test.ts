// Randomized smoothing (src/certify/smoothing.ts) against references computed here:
// - models whose class probabilities under Gaussian noise have closed forms (a constant
//   classifier; a linear classifier, where P(f(x + e) = 0) = Phi(margin / sigma); a 1-D
//   three-way threshold classifier), with the Clopper-Pearson bound recomputed in the test by
//   summing the binomial tail and Phi / Phi^-1 computed from series and continued fractions;
// - Phi^-1 against mpmath (50 digits) and the classic table values;
// - reproducibility and isolation (seeded stream, global generator untouched, modes restored,
//   no tensor leaks) on a small MoE and a dual model;
// - a soundness spot-check on a model trained here: points certified at radius r keep the
//   probability bound Phi(Phi^-1(pA_lower) - ||d|| / sigma) (hence the majority) at attacked
//   points x + d with ||d|| < r, estimated with fresh noise.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { PGD, pgdOn } from "../../src/attacks/index.js";
import { normalQuantile } from "../../src/certify/normal.js";
import { ABSTAIN, certifiedAccuracy, Smooth, type SmoothCertificate } from "../../src/certify/smoothing.js";
import { DualModel, MoE } from "../../src/models/index.js";
import { crossEntropy, softmax } from "../../src/nn/functional.js";
import { Flatten, Linear, type Module, ReLU, Sequential } from "../../src/nn/index.js";
import { Adam } from "../../src/optim/index.js";
import {
  defaultGenerator,
  Generator,
  manualSeed,
  memoryStats,
  noGrad,
  randint,
  randn,
  scope,
  type Tensor,
  tensor,
} from "../../src/tensor/index.js";
import { guardLeaks, modes } from "../attacks/helpers.js";
import { fixturePath } from "../helpers/paths.js";
import { mulberry32 } from "../helpers/rng.js";

const reference = JSON.parse(readFileSync(fixturePath("smoothing-reference.json"), "utf8")) as {
  normal: { p: number; quantile: number }[];
};

// ---------------------------------------------------------------- references written here

/** erf(x) for 0 <= x < 3 by the series 2/sqrt(pi) e^(-x^2) sum 2^n x^(2n+1) / (2n+1)!! (positive terms). */
function erfSeries(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 500 && term > 1e-17 * sum; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}

/** erfc(x) for x >= 3 by its continued fraction (modified Lentz). */
function erfcFraction(x: number): number {
  // erfc(x) = e^(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    d = 1 / (x + a * d);
    c = x + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** Phi(z), the standard normal CDF, to ~1e-15 relative in both tails. */
function phi(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const upper = x < 3 ? 0.5 * (1 - erfSeries(x)) : 0.5 * erfcFraction(x);
  return z >= 0 ? 1 - upper : upper;
}

/** Phi^-1 by bisection on phi (independent of AS241). */
function phiInverse(p: number): number {
  let lo = -40;
  let hi = 40;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (phi(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** P(Bin(n, p) >= k) summed from the mode's weight outwards (no gamma function). */
function binomialTailGe(k: number, n: number, p: number): number {
  const mode = Math.min(n, Math.max(0, Math.floor((n + 1) * p)));
  const ratio = p / (1 - p);
  let total = 1;
  let ge = mode >= k ? 1 : 0;
  let t = 1;
  for (let j = mode; j < n && t > 1e-30; j++) {
    t *= ((n - j) / (j + 1)) * ratio;
    total += t;
    if (j + 1 >= k) ge += t;
  }
  t = 1;
  for (let j = mode; j > 0 && t > 1e-30; j--) {
    t *= j / (n - j + 1) / ratio;
    total += t;
    if (j - 1 >= k) ge += t;
  }
  return ge / total;
}

/** Clopper-Pearson lower bound by bisection on the binomial tail: P(Bin(n, p) >= k) = alpha. */
function referenceLowerBound(k: number, n: number, alpha: number): number {
  if (k === 0) return 0;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (binomialTailGe(k, n, mid) < alpha) lo = mid;
    else hi = mid;
  }
  return lo;
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

// ---------------------------------------------------------------- models with known probabilities

/**
 * Two classes on R^d: class 0 iff w.x + b > 0 (logits [w.x + b, 0]). Under noise N(0, sigma^2 I)
 * P(class 0) = Phi((w.x + b) / (sigma ||w||)), and the exact smoothed radius is the distance
 * |w.x + b| / ||w|| to the hyperplane.
 */
function linearClassifier(w: readonly number[], b: number): Linear {
  const lin = new Linear(w.length, 2).to("float64");
  noGrad(() =>
    scope(() => {
      lin.weight.copy_(tensor([[...w], w.map(() => 0)], { dtype: "float64" }));
      (lin.bias as Tensor).copy_(tensor([b, 0], { dtype: "float64" }));
    }),
  );
  return lin;
}

/** A point at signed distance `margin` from the hyperplane w.x + b = 0. */
function pointAtMargin(w: readonly number[], b: number, margin: number, rng: () => number): number[] {
  const norm = Math.sqrt(sum(w.map((v) => v * v)));
  const base = w.map(() => rng());
  const dist = (sum(base.map((v, i) => v * (w[i] as number))) + b) / norm;
  return base.map((v, i) => v + ((margin - dist) * (w[i] as number)) / norm);
}

/** 1-D, three classes: 0 below -t, 2 above t, 1 between (logits [-u - t, 0, u - t]). */
function threeWayClassifier(t: number): Linear {
  const lin = new Linear(1, 3).to("float64");
  noGrad(() =>
    scope(() => {
      lin.weight.copy_(tensor([[-1], [0], [1]], { dtype: "float64" }));
      (lin.bias as Tensor).copy_(tensor([-t, 0, -t], { dtype: "float64" }));
    }),
  );
  return lin;
}

function row(values: readonly number[]): Tensor {
  return tensor([[...values]], { dtype: "float64" });
}

// ---------------------------------------------------------------- tests

describe("normalQuantile (Phi^-1)", () => {
  it("matches mpmath and the table values to 1e-12", () => {
    for (const { p, quantile } of reference.normal) {
      const got = normalQuantile(p);
      assert.ok(
        Math.abs(got - quantile) <= 1e-12 * Math.max(1, Math.abs(quantile)),
        `Phi^-1(${p}) = ${got}, expected ${quantile}`,
      );
    }
    for (const [p, z] of [
      [0.975, 1.959963984540054],
      [0.995, 2.5758293035489004],
      [0.999, 3.090232306167813],
      [0.95, 1.6448536269514722],
      [0.5, 0],
      [0.025, -1.959963984540054],
    ] as const) {
      assert.ok(Math.abs(normalQuantile(p) - z) <= 1e-12, `Phi^-1(${p}) = ${normalQuantile(p)}, expected ${z}`);
    }
  });

  it("inverts a Phi computed here by series and continued fraction, in all three regions of AS241", () => {
    for (const p of [1e-300, 1e-50, 1e-12, 1e-5, 0.01, 0.074, 0.076, 0.3, 0.5, 0.51, 0.7, 0.924, 0.926, 0.99, 0.99999]) {
      const z = normalQuantile(p);
      const back = phi(z);
      assert.ok(Math.abs(back - p) <= 1e-12 * p, `Phi(Phi^-1(${p})) = ${back}`);
      assert.ok(
        Math.abs(z - phiInverse(p)) <= 1e-9 * Math.max(1, Math.abs(z)),
        `Phi^-1(${p}) = ${z} vs bisection ${phiInverse(p)}`,
      );
    }
    assert.equal(normalQuantile(0), Number.NEGATIVE_INFINITY);
    assert.equal(normalQuantile(1), Number.POSITIVE_INFINITY);
    assert.throws(() => normalQuantile(1.5), /p must be in \[0, 1\]/);
    assert.throws(() => normalQuantile(Number.NaN), /p must be in \[0, 1\]/);
  });
});

describe("Smooth on classifiers with known probabilities under noise", () => {
  guardLeaks();

  it("a constant classifier: counts all n, pA_lower = alpha^(1/n), radius sigma Phi^-1(alpha^(1/n))", () => {
    const lin = new Linear(4, 3);
    noGrad(() =>
      scope(() => {
        lin.weight.zero_();
        (lin.bias as Tensor).copy_(tensor([0, 0, 1]));
      }),
    );
    const smooth = new Smooth(lin, { sigma: 0.5, seed: 1 });
    const x = randn([1, 4], { generator: smooth.generator });
    for (const n of [10, 1000]) {
      const cert = smooth.certify(x, 20, n, 0.001, 256);
      assert.deepEqual(cert.counts, [0, 0, n]);
      assert.deepEqual(cert.selectionCounts, [0, 0, 20]);
      assert.equal(cert.prediction, 2);
      const pA = 0.001 ** (1 / n);
      assert.ok(Math.abs(cert.pALower - pA) <= 1e-12 * pA, `pA_lower ${cert.pALower} vs ${pA}`);
      assert.ok(Math.abs(cert.radius - 0.5 * phiInverse(pA)) <= 1e-9, `radius ${cert.radius} vs ${0.5 * phiInverse(pA)}`);
    }
    // PREDICT: p-value 2 * 2^-n of n against 0.
    const pred = smooth.predict(x, 30, 0.001, 7);
    assert.equal(pred.prediction, 2);
    assert.ok(Math.abs(pred.pValue - 2 * 0.5 ** 30) <= 1e-12 * pred.pValue);
    // At n = 10 and alpha 0.001 even unanimity cannot pass the test: 2 * 2^-10 > 0.001.
    const small = smooth.predict(x, 10, 0.001);
    assert.equal(small.prediction, ABSTAIN);
    assert.equal(small.abstained, true);
    x.dispose();
    smooth.dispose();
    lin.dispose();
  });

  it("a linear classifier: the radius is sigma Phi^-1 of the test's own Clopper-Pearson bound and approaches the distance to the hyperplane", () => {
    const rng = mulberry32(5);
    const w = Array.from({ length: 8 }, () => rng() - 0.5);
    const b = 0.1;
    const lin = linearClassifier(w, b);
    const sigma = 0.5;
    const smooth = new Smooth(lin, { sigma, seed: 2 });
    for (const margin of [0.3, -0.6, 1.0]) {
      const x = row(pointAtMargin(w, b, margin, rng));
      const n = 100_000;
      const alpha = 0.001;
      const cert = smooth.certify(x, 100, n, alpha, 20_000);
      x.dispose();
      const expected = margin > 0 ? 0 : 1;
      const pTrue = phi(Math.abs(margin) / sigma);
      assert.equal(cert.selected, expected, `margin ${margin}: selected class`);
      assert.equal(sum(cert.counts), n);
      assert.equal(sum(cert.selectionCounts), 100);
      const nA = cert.counts[expected] as number;
      // The bound from the counts, computed independently here.
      const lower = referenceLowerBound(nA, n, alpha);
      assert.ok(Math.abs(cert.pALower - lower) <= 1e-9, `pA_lower ${cert.pALower} vs reference ${lower}`);
      assert.ok(Math.abs(cert.radius - sigma * phiInverse(cert.pALower)) <= 1e-9, `radius ${cert.radius}`);
      // The empirical frequency is within 5 standard errors of the closed form ...
      const se = Math.sqrt((pTrue * (1 - pTrue)) / n);
      assert.ok(Math.abs(nA / n - pTrue) < 5 * se, `margin ${margin}: frequency ${nA / n} vs Phi(m / sigma) = ${pTrue}`);
      // ... the bound is below the truth (a 1 - alpha event; the seed is fixed), and the radius
      // is within what 6 standard errors of pA allow of the exact radius |margin|.
      assert.ok(cert.pALower <= pTrue, `pA_lower ${cert.pALower} exceeds the true ${pTrue}`);
      const worst = sigma * phiInverse(pTrue - 6 * se);
      assert.ok(cert.radius <= Math.abs(margin) && cert.radius >= worst, `radius ${cert.radius} vs exact ${Math.abs(margin)}`);
      assert.equal(cert.prediction, expected);
    }
    smooth.dispose();
    lin.dispose();
  });

  it("a linear classifier: along -w the class probability follows Phi(Phi^-1(pA) - t / sigma), the Neyman-Pearson worst case", () => {
    // Theorem 1's bound is tight for linear classifiers: this checks the theory the radius
    // rests on, and that the majority survives exactly up to the certified distance.
    const rng = mulberry32(6);
    const w = Array.from({ length: 5 }, () => rng() - 0.5);
    const norm = Math.sqrt(sum(w.map((v) => v * v)));
    const lin = linearClassifier(w, 0);
    const sigma = 0.25;
    const smooth = new Smooth(lin, { sigma, seed: 3 });
    const margin = 0.4;
    const x0 = pointAtMargin(w, 0, margin, rng);
    const n = 40_000;
    for (const t of [0, 0.2, 0.39, 0.41, 0.6]) {
      const x = row(x0.map((v, i) => v - (t * (w[i] as number)) / norm));
      const counts = smooth.sampleCounts(x, n, 10_000);
      x.dispose();
      const expected = phi(phiInverse(phi(margin / sigma)) - t / sigma);
      const se = Math.sqrt((expected * (1 - expected)) / n);
      const got = (counts[0] as number) / n;
      assert.ok(Math.abs(got - expected) < 5 * se, `t ${t}: P(class 0) ${got} vs ${expected}`);
      assert.equal((counts[0] as number) > n / 2, t < margin, `t ${t}: majority`);
    }
    smooth.dispose();
    lin.dispose();
  });

  it("abstains when the top two classes are tied or nearly so", () => {
    // Two classes on the hyperplane: pA = 1/2 exactly.
    const lin = linearClassifier([1, -2, 0.5], 0);
    const smooth = new Smooth(lin, { sigma: 0.25, seed: 4 });
    const onPlane = row([1, 1, 2]);
    const cert = smooth.certify(onPlane, 100, 10_000, 0.001, 5000);
    assert.equal(cert.prediction, ABSTAIN);
    assert.equal(cert.abstained, true);
    assert.equal(cert.radius, 0);
    assert.ok(cert.pALower < 0.5);
    const pred = smooth.predict(onPlane, 10_000, 0.001, 5000);
    assert.equal(pred.prediction, ABSTAIN);
    assert.ok(pred.pValue > 0.001);
    onPlane.dispose();
    smooth.dispose();
    lin.dispose();

    // Three classes with probabilities 0.45 / 0.10 / 0.45 at u = 0: PREDICT cannot separate the
    // top two; CERTIFY's bound on the selected class is at most ~0.45 < 1/2.
    const sigma = 0.5;
    const three = threeWayClassifier(sigma * phiInverse(0.55));
    const smooth3 = new Smooth(three, { sigma, seed: 5 });
    const zero = tensor([[0]], { dtype: "float64" });
    const c3 = smooth3.certify(zero, 100, 20_000, 0.001, 10_000);
    assert.equal(c3.prediction, ABSTAIN);
    assert.ok(c3.selected === 0 || c3.selected === 2);
    assert.ok(Math.abs((c3.counts[1] as number) / 20_000 - 0.1) < 5 * Math.sqrt((0.1 * 0.9) / 20_000), `middle ${c3.counts[1]}`);
    assert.equal(smooth3.predict(zero, 20_000, 0.001, 10_000).prediction, ABSTAIN);
    // Shifted to u = 0.3 the right class has Phi((0.3 - t) / sigma) ~ 0.67 against ~0.2: certified.
    const shifted = tensor([[0.3]], { dtype: "float64" });
    const c4 = smooth3.certify(shifted, 100, 20_000, 0.001, 10_000);
    assert.equal(c4.prediction, 2);
    assert.equal(smooth3.predict(shifted, 20_000, 0.001, 10_000).prediction, 2);
    for (const t of [zero, shifted]) t.dispose();
    smooth3.dispose();
    three.dispose();
  });

  it("certifiedAccuracy counts correct, non-abstained certificates with radius > r", () => {
    const certs = [
      { prediction: 1, radius: 0.5 },
      { prediction: 0, radius: 0.2 },
      { prediction: ABSTAIN, radius: 0 },
      { prediction: 2, radius: 1.0 },
    ];
    assert.deepEqual(certifiedAccuracy(certs, [1, 0, 0, 1], [0, 0.2, 0.25, 0.5, 2]), [0.5, 0.25, 0.25, 0, 0]);
    assert.deepEqual(certifiedAccuracy([], [], [0]), [0]);
    assert.throws(() => certifiedAccuracy(certs, [1], [0]), /4 certificates but 1 labels/);
    assert.throws(() => certifiedAccuracy(certs, [1, 0, 0, 1], [-1]), /radii must be >= 0/);
  });

  it("rejects bad inputs with messages", () => {
    const lin = new Linear(2, 2);
    assert.throws(() => new Smooth(lin, { sigma: 0 }), /sigma must be a finite number > 0/);
    const g = new Generator({ seed: 1 });
    assert.throws(() => new Smooth(lin, { generator: g, seed: 1 }), /either generator or seed/);
    const smooth = new Smooth(lin, { generator: g });
    const two = scope(() =>
      tensor([
        [0, 0],
        [1, 1],
      ]),
    );
    assert.throws(() => smooth.certify(two, 10, 10, 0.01), /batch dimension of 1/);
    const one = scope(() => tensor([[0, 0]]));
    assert.throws(() => smooth.certify(one, 0, 10, 0.01), /n0 must be an integer >= 1/);
    assert.throws(() => smooth.certify(one, 10, 10, 1), /alpha must be in \(0, 1\)/);
    assert.throws(() => smooth.predict(one, 10, 0.01, 0), /batch must be an integer >= 1/);
    smooth.dispose();
    // The caller's generator is still usable after the Smooth that borrowed it is disposed.
    assert.equal(g.isDisposed, false);
    g.dispose();
    for (const t of [two, one]) t.dispose();
    lin.dispose();
  });
});

/** A MoE of linear experts on [N, 1, 4, 4], with router noise (which draws from the global stream in training mode). */
function tinyMoE(): MoE<Sequential> {
  const experts = Array.from({ length: 3 }, () => new Sequential(new Flatten(), new Linear(16, 10)));
  return new MoE(experts, { k: 2, imageShape: [1, 4, 4], normalize: { mean: [0.5], std: [0.25] }, routerNoise: 0.5 });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

describe("Smooth on a MoE and a dual model", () => {
  guardLeaks();

  it("counts equal a hand-written loop over the same noise; modes, global generator, gradients and memory untouched", () => {
    manualSeed(7);
    const moe = tinyMoE();
    const dual = new DualModel(tinyMoE(), tinyMoE(), { alpha: 0.3, space: "probs" });
    const x = scope(() => randn([1, 1, 4, 4]).mul(0.2).add(0.5));
    for (const model of [moe, dual] as Module[]) {
      const classifier = model as MoE | DualModel;
      // Mixed modes, which must come back exactly as they were.
      classifier.train();
      const first = [...model.modules()][2] as Module;
      first.eval();
      const modesBefore = modes(model);
      const globalBefore = defaultGenerator.getState();
      const live = memoryStats().liveTensors;

      const smooth = new Smooth(classifier, { sigma: 0.3, seed: 11 });
      const cert = smooth.certify(x, 20, 200, 0.01, 64);
      assert.equal(cert.counts.length, 10);
      assert.equal(sum(cert.counts), 200);
      assert.equal(sum(cert.selectionCounts), 20);
      assert.ok(cert.prediction === ABSTAIN || (cert.prediction >= 0 && cert.prediction < 10));
      assert.ok(cert.radius >= 0 && cert.pALower >= 0 && cert.pALower <= 1);
      const pred = smooth.predict(x, 100, 0.01, 64);
      assert.equal(sum(pred.counts), 100);

      // The same draws by hand: batches 64, 64, 64, 8 after the 20 selection samples.
      const manual = new Generator({ seed: 11 });
      const handCounts = new Array<number>(10).fill(0);
      classifier.eval();
      for (const b of [20, 64, 64, 64, 8]) {
        const preds = scope(() =>
          noGrad(() =>
            classifier
              .forward(randn([b, 1, 4, 4], { generator: manual }).mul(0.3).add(x))
              .argmax(1)
              .toFlatArray(),
          ),
        );
        if (b === 20) continue; // the selection batch
        for (const c of preds) handCounts[c] = (handCounts[c] as number) + 1;
      }
      manual.dispose();
      assert.deepEqual(cert.counts, handCounts, "counts over the same noise, computed by hand");
      classifier.train();
      first.eval();

      assert.deepEqual(modes(model), modesBefore, "module modes restored");
      assert.ok(sameBytes(defaultGenerator.getState(), globalBefore), "the global generator did not move");
      assert.equal(memoryStats().liveTensors, live, "no tensors left behind");
      for (const p of model.parameters()) assert.equal(p.grad, null, "no parameter gradient written");
      smooth.dispose();
    }
    x.dispose();
    moe.dispose();
    dual.dispose();
  });

  it("is reproducible with the same seed, differs with another, and certifies a batch in order", () => {
    manualSeed(8);
    const moe = tinyMoE();
    const xs = scope(() => randn([3, 1, 4, 4]).mul(0.2).add(0.5));
    const run = (seed: number): SmoothCertificate[] => {
      const smooth = new Smooth(moe, { sigma: 0.25, seed });
      const seen: number[] = [];
      const out = smooth.certifyMany(xs, { n0: 10, n: 300, alpha: 0.01, batch: 100, onResult: (i) => seen.push(i) });
      assert.deepEqual(seen, [0, 1, 2]);
      smooth.dispose();
      return out;
    };
    const strip = (cs: SmoothCertificate[]) => cs.map(({ ms: _ms, ...rest }) => rest);
    const a = run(21);
    const b = run(21);
    const c = run(22);
    assert.deepEqual(strip(a), strip(b));
    assert.notDeepEqual(
      a.map((x) => x.counts),
      c.map((x) => x.counts),
    );
    xs.dispose();
    moe.dispose();
  });
});

describe("soundness spot-check on a trained model", () => {
  guardLeaks();

  it("attacked points within the certified radius keep the guaranteed class probability", () => {
    // Three Gaussian blobs in [0, 1]^8, an MLP trained with Gaussian noise augmentation (as
    // Cohen et al. train base classifiers), smoothed at sigma 0.25.
    //
    // What is checked, and why this way: g(x + d) is itself a Monte-Carlo quantity, so an attack
    // on the smoothed classifier cannot be verified exactly. Theorem 1's proof gives more than
    // the class: for ||d|| < r, P(f(x + d + e) = cA) >= Phi(Phi^-1(pA_lower) - ||d|| / sigma) > 1/2.
    // For each certified point we attack with (1) PGD on the smoothed soft classifier
    // (SmoothAdv: the log of the noise-averaged softmax over 64 fixed draws), (2) L2 PGD on the
    // base classifier, (3) random directions, all at ||d|| <= 0.95 r, then estimate
    // P(f(x + d + e) = cA) with 20,000 fresh draws and require it to be at least that bound
    // minus 4.5 standard errors (and a strict majority where the bound clears 1/2 by that
    // much). Any failure is a real violation with probability > 1 - 1e-4 over the whole test.
    manualSeed(9);
    const dim = 8;
    const sigma = 0.25;
    const centers = [
      [0.3, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
      [0.7, 0.3, 0.5, 0.5, 0.3, 0.5, 0.5, 0.6],
      [0.5, 0.7, 0.5, 0.4, 0.5, 0.5, 0.6, 0.5],
    ];
    const centerT = tensor(centers, { dtype: "float32" });
    const net = new Sequential(new Linear(dim, 32), new ReLU(), new Linear(32, 3));
    const opt = new Adam(net.parameters(), { lr: 0.01 });
    const data = new Generator({ seed: 30 });
    const sample = (n: number): { x: Tensor; y: Tensor } =>
      scope(() => {
        const y = randint(0, 3, [n], { generator: data });
        const x = centerT.indexSelect(0, y).add(randn([n, dim], { generator: data }).mul(0.08));
        return { x, y };
      });
    net.train();
    for (let step = 0; step < 300; step++) {
      scope(() => {
        const { x, y } = sample(128);
        opt.zeroGrad();
        const loss = crossEntropy(net.forward(x.add(randn([128, dim], { generator: data }).mul(sigma))), y);
        loss.backward();
        opt.step();
      });
    }
    opt.dispose();

    const test = sample(12);
    const labels = test.y.toFlatArray();
    const smooth = new Smooth(net, { sigma, seed: 40 });
    const estimator = new Smooth(net, { sigma, seed: 41 });
    const attackNoise = new Generator({ seed: 42 });
    const certs = smooth.certifyMany(test.x, { n0: 100, n: 2000, alpha: 0.001, batch: 1000 });
    const accuracy = certifiedAccuracy(certs, labels, [0, 0.1, 0.2]);
    assert.ok((accuracy[0] as number) >= 0.75, `certified accuracy at r = 0: ${accuracy}`);

    const N = 20_000;
    let checked = 0;
    // Points where the strongest attack lowered P(cA) below its clean estimate: the attacks
    // must bite, or the check above would be vacuous.
    let bitten = 0;
    const rng = mulberry32(43);
    net.eval();
    certs.forEach((cert, i) => {
      if (cert.abstained) return;
      const cA = cert.prediction;
      const eps = 0.95 * cert.radius;
      scope(() => {
        const x = test.x.narrow(0, i, 1);
        const y = tensor([cA], { dtype: "int64" });
        const noise = randn([64, dim], { generator: attackNoise }).mul(sigma);
        // SmoothAdv: log E_e softmax(f(x + e)) over the fixed draws, a [1, 3] "logit".
        const smoothed = (xa: Tensor) =>
          softmax(net.forward(xa.add(noise)), -1)
            .mean(0, true)
            .log();
        const candidates: Tensor[] = [
          pgdOn(smoothed, x, y, { norm: "l2", eps, alpha: eps / 4, steps: 20, randomStart: false }),
          new PGD(net, { norm: "l2", eps, alpha: eps / 4, steps: 20, randomStart: false }).run(x, y),
        ];
        for (let r = 0; r < 3; r++) {
          const dir = Array.from({ length: dim }, () => rng() - 0.5);
          const len = Math.sqrt(sum(dir.map((v) => v * v)));
          candidates.push(x.add(tensor([dir.map((v) => (v / len) * eps)])));
        }
        let weakest = 1;
        for (const adv of candidates) {
          const dist = adv.sub(x).norm().item();
          assert.ok(dist <= eps * (1 + 1e-5) + 1e-6, `perturbation ${dist} beyond ${eps}`);
          const counts = estimator.sampleCounts(adv, N, 5000);
          const pHat = (counts[cA] as number) / N;
          const bound = phi(phiInverse(cert.pALower) - dist / sigma);
          const slack = 4.5 * Math.sqrt(0.25 / N);
          assert.ok(pHat >= bound - slack, `sample ${i}: P(cA) at ||d|| = ${dist} is ${pHat}, below the guaranteed ${bound}`);
          if (bound - slack > 0.5) {
            assert.ok(2 * (counts[cA] as number) > N, `sample ${i}: class ${cA} lost its majority at ||d|| = ${dist}`);
          }
          weakest = Math.min(weakest, pHat);
          checked++;
        }
        if (weakest < (cert.counts[cA] as number) / cert.n - 0.02) bitten++;
      });
    });
    assert.ok(checked >= 5 * 9, `only ${checked} attacked points were checked`);
    assert.ok(bitten >= (0.8 * checked) / 5, `the attacks lowered P(cA) at only ${bitten} of ${checked / 5} points`);
    for (const t of [test.x, test.y, centerT]) t.dispose();
    for (const g of [smooth, estimator]) g.dispose();
    for (const g of [attackNoise, data]) g.dispose();
    net.dispose();
  });
});
