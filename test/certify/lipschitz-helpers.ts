// Shared by the Lipschitz tests (lipschitz.test.ts, lipschitz-radius.test.ts): two attacks on
// the Lipschitz ratio |f(x + d) - f(x)| / |d| (every value found is a lower bound on the true
// constant, so any value above a claimed upper bound disproves it) and random BatchNorm
// statistics. Written from autograd and plain tensor ops, independently of src/certify.
import { BatchNorm2d } from "../../src/nn/index.js";
import type { Module } from "../../src/nn/module.js";
import { autograd, enableGrad, Generator, noGrad, rand, randn, scope, type Tensor, tensor } from "../../src/tensor/index.js";
import { mulberry32 } from "../helpers/rng.js";

export type Norm = "linf" | "l2";

function perSampleNorm(t: Tensor, norm: Norm): Tensor {
  return t.flatten(1).norm(norm === "linf" ? Number.POSITIVE_INFINITY : 2, 1);
}

function broadcast(v: Tensor, like: Tensor): Tensor {
  return v.reshape(v.size(0), ...new Array<number>(like.ndim - 1).fill(1));
}

/** Unit steepest-ascent direction per sample: sign for L-inf, g / |g|_2 for L2. */
function direction(g: Tensor, norm: Norm): Tensor {
  return norm === "linf" ? g.sign() : g.div(broadcast(perSampleNorm(g, "l2").add(1e-300), g));
}

export interface RatioAttackOptions {
  /** Parallel starts (default 24), with perturbation sizes spread over 1e-3 .. 1. */
  starts?: number;
  steps?: number;
  seed?: number;
  /** Std of the random start points (default 1). */
  spread?: number;
}

/**
 * The largest |f(x + d) - f(x)| / |d| (same norm on both sides) found by projected gradient
 * ascent on the numerator over x and d, with d kept at a fixed size per start (the ratio's
 * denominator), from many random starts; the larger of this and the per-coordinate attack
 * below. A lower bound on the true Lipschitz constant of f.
 */
export function maxLipschitzRatio(
  f: (x: Tensor) => Tensor,
  inputShape: readonly number[],
  norm: Norm,
  o: RatioAttackOptions = {},
): number {
  const other = maxLipschitzRatioPerCoordinate(f, inputShape, norm, { seed: o.seed ?? 0, steps: Math.min(o.steps ?? 100, 30) });
  return Math.max(other, ascentRatio(f, inputShape, norm, o));
}

function ascentRatio(f: (x: Tensor) => Tensor, inputShape: readonly number[], norm: Norm, o: RatioAttackOptions): number {
  const starts = o.starts ?? 24;
  const steps = o.steps ?? 100;
  const generator = new Generator({ seed: o.seed ?? 0 });
  const p = norm === "linf" ? Number.POSITIVE_INFINITY : 2;
  try {
    return scope(() => {
      const sizes = Float64Array.from({ length: starts }, (_, i) => 10 ** (-3 + (3 * i) / Math.max(1, starts - 1)));
      const t = tensor(sizes, { dtype: "float64" }).reshape(starts, ...inputShape.map(() => 1));
      let x = randn([starts, ...inputShape], { dtype: "float64", generator }).mul(o.spread ?? 1);
      let d = scope(() => {
        const r = randn([starts, ...inputShape], { dtype: "float64", generator });
        return direction(r, norm).mul(t);
      });
      let best = 0;
      for (let s = 0; s < steps; s++) {
        const stepSize = 0.5 * (1 - s / steps) + 0.02;
        const next = scope(() =>
          enableGrad(() => {
            const xv = x.detach().requiresGrad_();
            const dv = d.detach().requiresGrad_();
            const num = f(xv.add(dv)).sub(f(xv)).flatten(1).norm(p, 1);
            const ratio = noGrad(() => num.div(perSampleNorm(dv, norm)).max().item());
            const [gx, gd] = autograd.grad([num.sum()], [xv, dv], { allowUnused: true });
            return noGrad(() => {
              let nd = gd ? d.add(direction(gd, norm).mul(t).mul(stepSize)) : d.clone();
              // Back onto the sphere of radius t (the box for L-inf).
              nd = norm === "linf" ? nd.clamp(t.neg(), t) : nd.mul(t).div(broadcast(perSampleNorm(nd, "l2").add(1e-300), nd));
              const nx = gx ? x.add(direction(gx, norm).mul(0.05 * stepSize)) : x.clone();
              return { ratio, x: nx, d: nd };
            });
          }),
        );
        best = Math.max(best, next.ratio);
        x.dispose();
        d.dispose();
        x = next.x;
        d = next.d;
      }
      x.dispose();
      d.dispose();
      return best;
    });
  } finally {
    generator.dispose();
  }
}

/** Random eval statistics and affine parameters for every BatchNorm2d of m (small variances, so scales reach ~4). */
export function randomizeBatchNorms(m: Module, seed: number): void {
  const generator = new Generator({ seed });
  noGrad(() =>
    scope(() => {
      for (const sub of m.modules()) {
        if (!(sub instanceof BatchNorm2d)) continue;
        const c = sub.numFeatures;
        sub.runningMean?.copy_(randn([c], { generator }).mul(0.5));
        sub.runningVar?.copy_(rand([c], { generator }).mul(1.5).add(0.06));
        sub.weight?.copy_(randn([c], { generator }));
        sub.bias?.copy_(randn([c], { generator }).mul(0.3));
      }
    }),
  );
  generator.dispose();
}

export interface PerCoordinateOptions {
  /** Seed of the start points and directions (default 0). */
  seed?: number;
  /** Ascent steps per radius (default 50). */
  steps?: number;
  /** Start points searched in parallel (default 6). */
  restarts?: number;
}

function normOf(t: Tensor, norm: Norm): Tensor {
  const flat = t.flatten(1);
  return norm === "linf" ? flat.abs().max(1)[0] : flat.norm(2, 1);
}

/**
 * A second, differently built ratio attack (written by the IBP session): the largest
 * |f(x + d) - f(x)| / |d| (the same norm on input and output) an ascent finds over
 * start points x and perturbations d of a few radii. L2: power iteration on d (d <- J^T J d,
 * exact for a linear map up to convergence) with sign ascent on x. L-inf: per output
 * coordinate j, d = radius * sign(grad of f_j(x + d) - f_j(x)) (one step reaches the largest
 * row L1 norm of a linear map), x again by sign ascent. Float64 inputs.
 */
export function maxLipschitzRatioPerCoordinate(
  f: (x: Tensor) => Tensor,
  shape: readonly number[],
  norm: Norm,
  options: PerCoordinateOptions = {},
): number {
  const r = mulberry32(options.seed ?? 0);
  const steps = options.steps ?? 50;
  const restarts = options.restarts ?? 6;
  const numel = shape.reduce((a, b) => a * b, 1);
  const random = (n: number, g: () => number) =>
    tensor(Array.from({ length: n * numel }, g), { dtype: "float64" }).view(n, ...shape);
  let best = 0;
  const ratio = (x: Tensor, d: Tensor) => {
    const diff = f(x.add(d)).sub(f(x));
    return normOf(diff, norm).div(normOf(d, norm));
  };
  scope(() => {
    const outDim = noGrad(() => f(random(1, r)).numel);
    for (const radius of [1e-3, 0.1, 1]) {
      // L-inf: one row of the search batch per (start point, output coordinate), at most 512.
      const coords =
        norm === "linf" ? Array.from({ length: Math.min(outDim, Math.max(1, Math.floor(512 / restarts))) }, (_, i) => i) : [0];
      if (norm === "linf" && outDim > coords.length) {
        for (let i = 0; i < coords.length; i++) coords[i] = Math.floor(r() * outDim);
      }
      const rows = restarts * coords.length;
      let x = scope(() => {
        const starts = random(restarts, r);
        return starts.repeat(coords.length, ...shape.map(() => 1));
      });
      const pick = tensor(
        Array.from({ length: rows }, (_, i) => coords[Math.floor(i / restarts)] as number),
        { dtype: "int64" },
      ).view(rows, 1);
      let d = random(rows, () => r() * 2 - 1);
      d = scope(() => d.div(normOf(d, norm).view(rows, ...shape.map(() => 1))).mul(radius));
      for (let s = 0; s <= steps; s++) {
        const stepX = 0.05 * (1 - s / (steps + 1));
        const next = scope(() => {
          const xg = x.detach().requiresGrad_();
          const dg = d.detach().requiresGrad_();
          const diff = f(xg.add(dg)).sub(f(xg)).flatten(1);
          const value = normOf(diff, norm).div(normOf(dg, norm));
          const found = noGrad(() => value.max().item());
          let objective: Tensor;
          if (norm === "l2") {
            objective = diff.pow(2).sum().mul(0.5);
          } else {
            const picked = diff.gather(1, pick).squeeze(1);
            objective = picked.mul(picked.sign().detach()).sum();
          }
          const [gd] = autograd.grad(objective, dg, { retainGraph: true });
          const [gx] = autograd.grad(value.sum(), xg);
          const gradD = gd as Tensor;
          const nd =
            norm === "l2"
              ? gradD
                  .div(
                    normOf(gradD, norm)
                      .clamp(1e-300, null)
                      .view(rows, ...shape.map(() => 1)),
                  )
                  .mul(radius)
              : gradD.sign().mul(radius);
          // A zero gradient (dead ReLUs) keeps the previous direction.
          const dead = normOf(gradD, norm)
            .eq(0)
            .view(rows, ...shape.map(() => 1));
          const dNext = nd.mul(dead.logicalNot()).add(dg.detach().mul(dead));
          const xNext = xg.detach().add((gx as Tensor).sign().mul(stepX));
          return { x: xNext, d: dNext, found };
        });
        best = Math.max(best, next.found);
        x.dispose();
        d.dispose();
        x = next.x;
        d = next.d;
      }
      best = Math.max(
        best,
        noGrad(() => ratio(x, d).max().item()),
      );
    }
  });
  return best;
}
