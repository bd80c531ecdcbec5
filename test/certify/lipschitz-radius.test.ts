// Certified radii of Theorem 5.4 (MoE) and 5.5 (dual model), src/certify/lipschitz-radius.ts and
// src/certify/router-stability.ts: the route-stable radius of a linear router is exactly where a
// line search first flips the route; the gate weights and the MoE's local constant K(x) are never
// beaten by an attack on their ratio; the dual radius grows with alpha when K_S > K_R; and on
// small trained models no certified sample is broken by PGD with restarts at any eps <= radius.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pgdOn } from "../../src/attacks/pgd.js";
import {
  certifiedAccuracy,
  dualLipschitzRadius,
  dualProbabilityOutput,
  lipschitzRadius,
  modelConstants,
  probabilityOutput,
} from "../../src/certify/lipschitz-radius.js";
import { routerConstants, softmaxWeightConstant } from "../../src/certify/router-stability.js";
import { DualModel, type GatingMode, MoE, ResNet18, ViT } from "../../src/models/index.js";
import { crossEntropy, softmax } from "../../src/nn/functional.js";
import { Flatten, Linear, ReLU, Sequential } from "../../src/nn/index.js";
import { Adam } from "../../src/optim/index.js";
import {
  autograd,
  cat,
  enableGrad,
  Generator,
  manualSeed,
  memoryStats,
  noGrad,
  rand,
  randn,
  scope,
  type Tensor,
  tensor,
} from "../../src/tensor/index.js";
import { mulberry32 } from "../helpers/rng.js";
import { maxLipschitzRatio, type Norm } from "./lipschitz-helpers.js";

const SHAPE = [2, 3, 3] as const;
const PIXELS = 18;
const CLASSES = 3;
// Distinct channel stds, so that mapping the router's tie distance back to pixels matters.
const NORMALIZE = { mean: [0.4, 0.6], std: [0.2, 0.5] };
const NORMS: Norm[] = ["linf", "l2"];

function mlp(hidden = 12): Sequential {
  return new Sequential(new Flatten(), new Linear(PIXELS, hidden), new ReLU(), new Linear(hidden, CLASSES));
}

function tinyMoE(gating: GatingMode, k = 1, experts = 3, renormalize = false): MoE<Sequential> {
  const list = Array.from({ length: experts }, () => mlp());
  return new MoE(list, { gating, k, renormalize, imageShape: SHAPE, normalize: NORMALIZE }).to("float64").eval();
}

function sampleImages(n: number, seed: number): Tensor {
  const generator = new Generator({ seed });
  const x = rand([n, ...SHAPE], { dtype: "float64", generator });
  generator.dispose();
  return x;
}

/** Pixel-space router weights v = W / sigma and logits, computed here from the raw parameters. */
function routerByHand(moe: MoE, x: Tensor): { v: number[][]; z: number[][] } {
  const w = moe.router.gate.weight.toArray() as number[][];
  const b = moe.router.gate.bias?.toFlatArray() as number[];
  // The model's own (float32-rounded) normalisation constants.
  const std = moe.normalize.std.toFlatArray() as number[];
  const mean = moe.normalize.mean.toFlatArray() as number[];
  const perPixel = Array.from({ length: PIXELS }, (_, k) => std[Math.floor(k / 9)] as number);
  const meanPixel = Array.from({ length: PIXELS }, (_, k) => mean[Math.floor(k / 9)] as number);
  const v = w.map((row) => row.map((wk, k) => wk / (perPixel[k] as number)));
  const xs = scope(() => x.flatten(1).toArray() as number[][]);
  const z = xs.map((xi) =>
    w.map(
      (row, e) =>
        row.reduce((acc, wk, k) => acc + (wk * ((xi[k] as number) - (meanPixel[k] as number))) / (perPixel[k] as number), 0) +
        (b[e] as number),
    ),
  );
  return { v, z };
}

function selectedSet(moe: MoE, x: Tensor): string {
  return scope(() => {
    const idx = moe.gates(x).indices.toFlatArray() as number[];
    return [...idx].sort().join(",");
  });
}

describe("Lipschitz-margin certificates", () => {
  let start = 0;
  before(() => {
    start = memoryStats().liveTensors;
  });
  after(() => {
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });

  for (const [gating, k] of [
    ["hard", 1],
    ["topk", 1],
    ["topk", 2],
  ] as const) {
    it(`route radius of a linear router = where a line search first flips the route (${gating}, k ${k})`, () => {
      manualSeed(21);
      const moe = tinyMoE(gating, k, 4);
      const x = sampleImages(6, 21);
      const r = mulberry32(21);
      for (const norm of NORMS) {
        const cert = lipschitzRadius(moe, x, { norm });
        const { v, z } = routerByHand(moe, x);
        for (let b = 0; b < x.size(0); b++) {
          const xb = x.narrow(0, b, 1);
          const clean = selectedSet(moe, xb);
          const chosen = clean.split(",").map(Number);
          // The worst pair and its direction, from the raw weights.
          let best = { rho: Number.POSITIVE_INFINITY, i: -1, j: -1 };
          for (const i of chosen) {
            for (let j = 0; j < 4; j++) {
              if (chosen.includes(j)) continue;
              const diff = (v[i] as number[]).map((vi, p) => vi - ((v[j] as number[])[p] as number));
              const dual = norm === "linf" ? diff.reduce((a, d) => a + Math.abs(d), 0) : Math.hypot(...diff);
              const rho = (((z[b] as number[])[i] as number) - ((z[b] as number[])[j] as number)) / dual;
              if (rho < best.rho) best = { rho, i, j };
            }
          }
          const rho = cert.routeRadius[b] as number;
          assert.ok(Math.abs(rho - best.rho) <= 1e-9 * best.rho, `sample ${b}: certificate ${rho}, by hand ${best.rho}`);
          const diff = (v[best.i] as number[]).map((vi, p) => vi - ((v[best.j] as number[])[p] as number));
          const l2 = Math.hypot(...diff);
          const dir = diff.map((d) => (norm === "linf" ? -Math.sign(d) : -d / l2));
          const flipsAt = (t: number) =>
            scope(
              () =>
                selectedSet(
                  moe,
                  xb.add(
                    tensor(dir, { dtype: "float64" })
                      .reshape(1, ...SHAPE)
                      .mul(t),
                  ),
                ) !== clean,
            );
          // First flip on a grid, then bisection between the last stable and the first flipped point.
          let lo = 0;
          let hi = Number.NaN;
          for (let g = 1; g <= 300; g++) {
            const t = (1.5 * rho * g) / 300;
            if (flipsAt(t)) {
              hi = t;
              break;
            }
            lo = t;
          }
          assert.ok(Number.isFinite(hi), `sample ${b}: the route never flipped along the worst direction`);
          for (let s = 0; s < 60; s++) {
            const mid = (lo + hi) / 2;
            if (flipsAt(mid)) hi = mid;
            else lo = mid;
          }
          assert.ok(Math.abs(hi - rho) <= 1e-6, `sample ${b} ${norm}: line search flips at ${hi}, route radius ${rho}`);
          // And no direction flips it strictly inside the ball (random directions on its surface).
          for (let d = 0; d < 50; d++) {
            const raw = Array.from({ length: PIXELS }, () => r() * 2 - 1);
            const size = norm === "linf" ? Math.max(...raw.map(Math.abs)) : Math.hypot(...raw);
            const inside = scope(
              () =>
                selectedSet(
                  moe,
                  xb.add(
                    tensor(
                      raw.map((q) => (q / size) * rho * (1 - 1e-9)),
                      { dtype: "float64" },
                    ).reshape(1, ...SHAPE),
                  ),
                ) === clean,
            );
            assert.ok(inside, `sample ${b}: a random direction flipped the route inside the radius`);
          }
          xb.dispose();
        }
      }
      x.dispose();
      moe.dispose();
    });
  }

  it("gate weights: no attack beats r_i = max_j |v_i - v_j|_* / 4 (softmax of a linear router)", () => {
    manualSeed(22);
    const moe = tinyMoE("dense", 3, 3);
    for (const norm of NORMS) {
      const rc = routerConstants(moe, norm);
      assert.ok(rc.exact);
      for (let i = 0; i < 3; i++) {
        const ri = softmaxWeightConstant(rc.gap, i, [0, 1, 2]);
        const found = maxLipschitzRatio((x) => softmax(moe.routerLogits(x), -1).narrow(1, i, 1), SHAPE, norm, {
          seed: 22 + i,
          steps: 60,
        });
        assert.ok(found <= ri * (1 + 1e-9), `gate ${i} ${norm}: found ${found} > r_i ${ri}`);
        assert.ok(found >= 0.3 * ri, `gate ${i} ${norm}: the attack found only ${found} of ${ri}`);
      }
    }
    moe.dispose();
  });

  it("Theorem 5.4's local constant: |P(x + d) - P(x)| <= K(x) |d| for an attacked d (dense and top-2 mixtures)", () => {
    manualSeed(23);
    for (const [gating, k, renormalize] of [
      ["dense", 3, false],
      ["topk", 2, false],
      ["topk", 2, true],
    ] as const) {
      const moe = tinyMoE(gating, k, 3, renormalize);
      const x = sampleImages(4, 23);
      for (const norm of NORMS) {
        const cert = lipschitzRadius(moe, x, { norm });
        assert.equal(cert.certifies, "probability-mixture");
        for (let b = 0; b < 4; b++) {
          const xb = x.narrow(0, b, 1);
          // Inside the route-stable ball only (top-k): perturbations up to a tenth of it.
          const cap = Math.min(cert.routeRadius[b] as number, 1) / 10;
          const found = localRatio((y) => probabilityOutput(moe, y), xb, norm, cap, 23 + b);
          const kx = cert.localConstant[b] as number;
          assert.ok(found <= kx * (1 + 1e-9), `${gating} k ${k} sample ${b} ${norm}: ratio ${found} > K(x) ${kx}`);
          xb.dispose();
        }
      }
      x.dispose();
      moe.dispose();
    }
  });

  it("the dual radius grows with alpha when K_S > K_R (same function, inflated standard member)", () => {
    manualSeed(24);
    const build = () => {
      const compact = new Sequential(new Flatten(), new Linear(PIXELS, CLASSES)).to("float64").eval();
      // The same map written as B A with A = [I; I] and B = [W/2 + N, W/2 - N]: a larger product of
      // norms. Built in float64, so that B A = W up to rounding.
      const a = new Linear(PIXELS, 2 * PIXELS, { bias: false }).to("float64");
      const bLayer = new Linear(2 * PIXELS, CLASSES).to("float64");
      noGrad(() =>
        scope(() => {
          const eye = tensor(
            Array.from({ length: 2 * PIXELS }, (_, r) => Array.from({ length: PIXELS }, (_, c) => (r % PIXELS === c ? 1 : 0))),
            { dtype: "float64" },
          );
          a.weight.copy_(eye);
          const w = (compact.at(1) as Linear).weight;
          const noise = randn([CLASSES, PIXELS], { dtype: "float64" }).mul(0.5);
          bLayer.weight.copy_(cat([w.div(2).add(noise), w.div(2).sub(noise)], 1));
          bLayer.bias?.copy_((compact.at(1) as Linear).bias as Tensor);
        }),
      );
      return { compact, inflated: new Sequential(new Flatten(), a, bLayer).eval() };
    };
    const plain = build();
    const moeParts = [build(), build()];
    const moeS = new MoE(
      moeParts.map((p) => p.inflated),
      { imageShape: SHAPE, normalize: NORMALIZE },
    )
      .to("float64")
      .eval();
    const moeR = new MoE(
      moeParts.map((p) => p.compact),
      { imageShape: SHAPE, normalize: NORMALIZE },
    )
      .to("float64")
      .eval();
    noGrad(() => {
      moeR.router.gate.weight.copy_(moeS.router.gate.weight);
      moeR.router.gate.bias?.copy_(moeS.router.gate.bias as Tensor);
    });
    const alphas = [0, 0.1, 0.3, 0.5, 0.7, 0.9, 1];
    const x = sampleImages(8, 24);
    for (const [title, dual] of [
      ["plain classifiers", new DualModel(plain.inflated, plain.compact, { space: "probs" }).eval()],
      ["top-1 MoEs with the same router", new DualModel(moeS, moeR, { space: "probs" }).eval()],
    ] as const) {
      for (const norm of NORMS) {
        const cert = dualLipschitzRadius(dual, x, { norm, alphas });
        for (let b = 0; b < 8; b++) {
          const ks = cert.standard.localConstant[b] as number;
          const kr = cert.robust.localConstant[b] as number;
          assert.ok(ks > kr * 1.05, `${title} ${norm}: K_S ${ks} is not above K_R ${kr}`);
          const m0 = cert.alphas[0]?.margin[b] as number;
          let previous = 0;
          for (const a of cert.alphas) {
            const margin = a.margin[b] as number;
            assert.ok(Math.abs(margin - m0) <= 1e-9, `${title}: the members differ (margin ${margin} vs ${m0})`);
            const expected = margin / (2 * ((1 - a.alpha) * ks + a.alpha * kr));
            assert.ok(Math.abs((a.lipschitzRadius[b] as number) - expected) <= 1e-12 * expected);
            const radius = a.radius[b] as number;
            assert.ok(
              radius >= previous,
              `${title} ${norm} sample ${b}: radius fell from ${previous} to ${radius} at alpha ${a.alpha}`,
            );
            if (a.limitedBy[b] === "lipschitz" && a.alpha > 0) assert.ok(radius > previous);
            previous = radius;
          }
        }
      }
      dual.dispose();
    }
    x.dispose();
  });

  describe("no certified sample is broken by PGD at any eps <= its radius (trained models)", () => {
    const data = () => {
      const generator = new Generator({ seed: 5 });
      const protos = scope(() =>
        rand([CLASSES, ...SHAPE], { dtype: "float64", generator })
          .mul(0.6)
          .add(0.2),
      );
      const y = tensor(
        Array.from({ length: 150 }, (_, i) => i % CLASSES),
        { dtype: "int64" },
      );
      const x = scope(() =>
        protos
          .indexSelect(0, y)
          .add(randn([150, ...SHAPE], { dtype: "float64", generator }).mul(0.06))
          .clamp(0, 1),
      );
      protos.dispose();
      generator.dispose();
      return { x, y };
    };

    function train(model: MoE<Sequential>, x: Tensor, y: Tensor, steps = 300): void {
      // Sequential expert backward: for networks this small the thread hand-off costs more than it saves.
      model.concurrentBackward = false;
      model.train();
      const opt = new Adam(model.parameters(), { lr: 0.01 });
      for (let s = 0; s < steps; s++) {
        scope(() => {
          opt.zeroGrad();
          crossEntropy(model.forward(x), y).backward();
          opt.step();
        });
      }
      opt.dispose();
      model.eval();
    }

    /** PGD (margin loss, restarts) on f at eps slightly below each certified radius, samples binned by radius. */
    function assertUnbroken(
      f: (x: Tensor) => Tensor,
      x: Tensor,
      radius: readonly number[],
      predicted: readonly number[],
      norm: Norm,
    ) {
      const order = radius
        .map((r, i) => [r, i] as const)
        .filter(([r]) => r > 1e-3)
        .sort((a, b) => a[0] - b[0]);
      assert.ok(order.length >= 15, `only ${order.length} samples certified beyond 1e-3 (${norm})`);
      let attacked = 0;
      for (let s = 0; s < order.length; ) {
        const lo = (order[s] as readonly [number, number])[0];
        let e = s;
        while (e < order.length && (order[e] as readonly [number, number])[0] <= lo * 1.5) e++;
        const rows = order.slice(s, e).map(([, i]) => i);
        const eps = lo * (1 - 1e-6);
        scope(() => {
          const idx = tensor(rows, { dtype: "int64" });
          const xs = x.indexSelect(0, idx);
          const ys = tensor(
            rows.map((i) => predicted[i] as number),
            { dtype: "int64" },
          );
          const adv = pgdOn(f, xs, ys, { eps, alpha: eps / 4, steps: 20, restarts: 3, norm, loss: "margin" });
          const dist = adv
            .sub(xs)
            .flatten(1)
            .norm(norm === "linf" ? Number.POSITIVE_INFINITY : 2, 1)
            .max()
            .item();
          assert.ok(dist <= eps * (1 + 1e-9));
          const after = noGrad(() => f(adv).argmax(1).toFlatArray());
          rows.forEach((i, r) => {
            assert.equal(after[r], predicted[i], `sample ${i} certified at ${radius[i]} (${norm}) broken at eps ${eps}`);
          });
        });
        attacked += rows.length;
        s = e;
      }
      return attacked;
    }

    for (const [gating, k] of [
      ["dense", 3],
      ["topk", 1],
      ["hard", 1],
      ["topk", 2],
    ] as const) {
      it(`MoE gating ${gating}, k ${k}`, () => {
        manualSeed(30);
        const { x, y } = data();
        const moe = tinyMoE(gating, k, 3);
        train(moe, x, y);
        const f = (v: Tensor) => (gating === "dense" || k > 1 ? probabilityOutput(moe, v) : moe.forward(v));
        for (const norm of NORMS) {
          const cert = lipschitzRadius(moe, x, { norm, labels: y });
          assert.equal(cert.certifies, gating === "dense" || k > 1 ? "probability-mixture" : "model");
          assert.ok(cert.sound);
          const acc = certifiedAccuracy(cert, [0, 0.01]);
          assert.ok((acc[0]?.accuracy as number) > 0.9, `clean accuracy ${acc[0]?.accuracy}`);
          assertUnbroken(f, x, cert.radius, cert.predicted, norm);
        }
        for (const t of [x, y]) t.dispose();
        moe.dispose();
      });
    }

    it("dual model of a dense and a top-1 MoE, at alpha 0.5", () => {
      manualSeed(31);
      const { x, y } = data();
      const s = tinyMoE("dense", 3, 3);
      const r = tinyMoE("topk", 1, 3);
      train(s, x, y);
      train(r, x, y);
      const dual = new DualModel(s, r, { alpha: 0.5, space: "probs" }).eval();
      for (const norm of NORMS) {
        const cert = dualLipschitzRadius(dual, x, { norm, alphas: [0, 0.5, 1], labels: y });
        // At alpha 0 the dual certificate is the standard member's own (probability-form) one.
        const alone = lipschitzRadius(s, x, { norm });
        (cert.alphas[0]?.radius ?? []).forEach((rad, i) => {
          assert.ok(Math.abs(rad - (alone.radius[i] as number)) <= 1e-12 * Math.max(1e-300, rad));
        });
        const half = cert.alphas[1];
        assert.ok(half !== undefined);
        assertUnbroken((v) => dualProbabilityOutput(dual, v, 0.5), x, half.radius, half.predicted, norm);
      }
      for (const t of [x, y]) t.dispose();
      dual.dispose();
    });
  });

  it("reports vacuous radii (random ResNet18 experts), soundness flags, and refuses ViT experts and training mode", () => {
    manualSeed(25);
    const moe = new MoE([new ResNet18({ width: 2 }), new ResNet18({ width: 2 })], { imageShape: [3, 16, 16] }).eval();
    const x = rand([3, 3, 16, 16]);
    const cert = lipschitzRadius(moe, x, { norm: "linf" });
    assert.ok(cert.vacuous.every((v) => v));
    assert.ok(cert.radius.every((r) => r >= 0 && r < 1e-4));
    assert.equal(lipschitzRadius(moe, x, { norm: "linf", c: 1, constants: cert.constants }).sound, false);
    assert.equal(lipschitzRadius(moe, x, { norm: "l2", c: Math.SQRT2 }).sound, true);
    assert.equal(modelConstants(moe, "l2", { l2Method: "power" }).sound, false);
    assert.throws(() => moe.lipschitz("linf"), /MoE: no global Lipschitz bound.*Theorem 5.4/);
    moe.train();
    assert.throws(() => lipschitzRadius(moe, x), /training mode/);
    moe.dispose();
    const vits = new MoE(
      [0, 1].map(() => new ViT({ imageSize: 8, patchSize: 4, dim: 8, depth: 1, heads: 2 })),
      { imageShape: [3, 8, 8] },
    ).eval();
    const xv = rand([2, 3, 8, 8]);
    assert.throws(() => lipschitzRadius(vits, xv), /ViT: no global Lipschitz bound: dot-product self-attention/);
    vits.dispose();
    for (const t of [x, xv]) t.dispose();
  });
});

/**
 * max |f(x0 + d) - f(x0)| / |d| over d at a fixed point x0 [1, ...]: projected gradient ascent on
 * d from 16 random starts whose sizes spread over (cap/1000 .. cap].
 */
function localRatio(f: (x: Tensor) => Tensor, x0: Tensor, norm: Norm, cap: number, seed: number): number {
  const generator = new Generator({ seed });
  const p = norm === "linf" ? Number.POSITIVE_INFINITY : 2;
  const starts = 16;
  try {
    return scope(() => {
      const shape = x0.shape.slice(1);
      const ones = shape.map(() => 1);
      const t = tensor(
        Float64Array.from({ length: starts }, (_, i) => cap * 10 ** (-3 + (3 * i) / (starts - 1))),
        {
          dtype: "float64",
        },
      ).reshape(starts, ...ones);
      const xs = x0.expand(starts, ...shape);
      const fx = noGrad(() => f(xs));
      const unit = (g: Tensor) =>
        norm === "linf"
          ? g.sign()
          : g.div(
              g
                .flatten(1)
                .norm(2, 1)
                .add(1e-300)
                .reshape(starts, ...ones),
            );
      let d = scope(() => unit(randn([starts, ...shape], { dtype: "float64", generator })).mul(t));
      let best = 0;
      for (let s = 0; s < 60; s++) {
        const next = scope(() =>
          enableGrad(() => {
            const dv = d.detach().requiresGrad_();
            const num = f(xs.add(dv)).sub(fx).flatten(1).norm(p, 1);
            const ratio = noGrad(() => num.div(dv.flatten(1).norm(p, 1)).max().item());
            const [g] = autograd.grad([num.sum()], [dv], { allowUnused: true });
            return noGrad(() => {
              const moved = g ? d.add(unit(g).mul(t).mul(0.3)) : d.clone();
              const nd =
                norm === "linf"
                  ? moved.clamp(t.neg(), t)
                  : moved.mul(t).div(
                      moved
                        .flatten(1)
                        .norm(2, 1)
                        .add(1e-300)
                        .reshape(starts, ...ones),
                    );
              return { ratio, d: nd };
            });
          }),
        );
        best = Math.max(best, next.ratio);
        d.dispose();
        d = next.d;
      }
      d.dispose();
      return best;
    });
  } finally {
    generator.dispose();
  }
}
