// FAB, the Fast Adaptive Boundary attack (Croce & Hein, "Minimally distorted adversarial
// examples with a fast adaptive boundary attack", ICML 2020), as AutoAttack runs it
// (fra31/auto-attack: autoattack/fab_base.py, fab_pt.py, fab_projections.py). Re-implemented
// from the paper and those files; docs/ATTACKS.md (FAB) lists where this code differs.
//
// FAB looks for the adversarial example of smallest L-inf or L2 norm. Each iteration
// linearises the decision boundary at the current iterate x1: the boundary between y and
// the class j whose linearised boundary is closest (untargeted), or the target class
// (targeted), is the hyperplane f + g . (z - x1) = 0, with f = z_j - z_y and g its input
// gradient. It projects both x1 and the clean x0 onto that hyperplane intersected with the
// box [0, 1]^D (an exact, sorting-based minimal-norm projection), and moves to
//   x1 <- clip((x1 + eta d1)(1 - alpha) + (x0 + eta d2) alpha),
//   alpha = min(|d1| / (|d1| + |d2|), alpha_max),
// so that the iterate is pulled towards x0 when it is far from it. An iterate that is
// misclassified is recorded if it is the closest to x0 so far, and then pulled back to
// x0 + beta (x1 - x0). Restarts after the first start at a random point of radius eps / 2.
import { autograd, enableGrad, noGrad } from "../tensor/autograd.js";
import { cat, stack, where } from "../tensor/combine.js";
import { full, randLike, randnLike, zeros, zerosLike } from "../tensor/creation.js";
import { manualSeed } from "../tensor/runtime.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { Attack, type Classifier, checkBatch, checkCount, checkEps, deviceOf, type Norm, withModelMode } from "./attack.js";
import { rowsWhere, scatterRows } from "./best-iterate.js";
import { perSample, sampleNorm } from "./projections.js";

export interface FABOptions {
  /**
   * The threat model's radius: run() returns, per sample, the minimal adversarial example
   * found when its norm is at most eps, else x. It also sets the radius (eps / 2) of the
   * random starts of restarts 2, 3, ... Default 8/255 for L-inf, 0.5 for L2.
   */
  eps?: number;
  /** Default 'linf'. */
  norm?: Norm;
  /** Iterations per run (n_iter). Default 100. */
  steps?: number;
  /** Runs; the first starts at x, the others at random points. Default 1 (AutoAttack's FAB-T). */
  restarts?: number;
  /** Largest weight of the step from x0 (alpha_max). Default 0.1. */
  alphaMax?: number;
  /** Overshoot of the projection steps (eta). Default 1.05. */
  eta?: number;
  /** Backward step towards x0 after an adversarial iterate (beta). Default 0.9. */
  beta?: number;
  /**
   * Steps of the final linear-interpolation search between x0 and each minimal adversarial
   * example (the `las` option of the original FAB code). AutoAttack's FAB has none, so the
   * default is 0; 3 tightens minimal distances on nearly linear models.
   */
  finalSearch?: number;
  /**
   * Seeds LibTorch's global generator at the start of run() and minimalAdversarial(), as
   * AutoAttack does (it passes its own seed, 0 by default). null leaves the generator alone.
   * Default 0.
   */
  seed?: number | null;
}

export interface FABTOptions extends FABOptions {
  /** Target classes per sample: the n highest clean logits other than the top one. Default 9. */
  targets?: number;
}

/** Per sample, the closest adversarial example found and its distance to x. */
export interface MinimalAdversarial {
  /** Adversarial images [N, ...] (x itself where none was found). */
  x: Tensor;
  /**
   * Norm of x_adv - x [N] in the attack's norm, in x's dtype: 0 for samples misclassified at
   * x, +Infinity where no adversarial example was found. An upper bound on the true minimal
   * adversarial distance, so every certified radius must be at most this.
   */
  distance: Tensor;
}

/** One run's settings. */
interface FabConfig {
  eps: number;
  norm: Norm;
  steps: number;
  alphaMax: number;
  eta: number;
  beta: number;
  finalSearch: number;
}

type Forward = (x: Tensor) => Tensor;

/** Keeps |d1| / (|d1| + |d2|) defined when both projections are empty (AutoAttack's 1e-8). */
const MIN_STEP_NORM = 1e-8;
/** Guards the distance to a boundary whose gradient is zero (AutoAttack's 1e-12). */
const GRAD_NORM_FLOOR = 1e-12;
/** L2 projection: weights below this are treated as zero (fab_projections.projection_l2). */
const L2_TINY_WEIGHT = 1e-8;
/** Stands for an infinite breakpoint; finite so that 0 * BIG = 0 in the prefix sums. */
const BIG = 1e30;
/**
 * The final search aims this fraction past the interpolated crossing, so that on a locally
 * linear boundary the point lands on the adversarial side despite rounding of the logits:
 * well above the float's relative precision (about 1e-7 and 1e-16), well below what the
 * distances are needed to.
 */
const SEARCH_OVERSHOOT = { float32: 1e-5, float64: 1e-9 } as const;

/**
 * For each row m, the d of least L-inf or L2 norm with w_m . (t_m + d) = b_m and t_m + d in
 * [0, 1]^D: the projection of t onto the hyperplane intersected with the box (t [M, D] in
 * the box, w [M, D], b [M]; returns d [M, D]). When the hyperplane misses the box, d moves
 * every coordinate as far towards it as the box allows (the box corner closest to it), as
 * AutoAttack's projection_linf / projection_l2 do.
 *
 * Both norms reduce to one problem. After flipping signs so that c = w . t - b >= 0, the
 * point must lower w . t by c. For a Lagrange multiplier lambda the optimal move of
 * coordinate i is -sign(w_i) min(lambda, r_i) (L-inf: r_i is the room to the box edge) or
 * -w_i min(lambda, r_i) (L2: r_i = room / |w_i|), which lowers w . t by
 * g(lambda) = sum_i a_i min(lambda, r_i), a_i = |w_i| (L-inf) or w_i^2 (L2). g is piecewise
 * linear and increasing, so sorting the breakpoints r_i, evaluating g at each of them with
 * prefix sums, and counting those below c locates the linear piece that contains the
 * solution, which is then solved exactly. (AutoAttack binary-searches the same sorted
 * breakpoints; the answer is the same.)
 */
export function projectOntoHyperplaneBox(t: Tensor, w: Tensor, b: Tensor, norm: Norm): Tensor {
  if (t.ndim !== 2 || w.ndim !== 2 || b.ndim !== 1 || t.shape[0] !== w.shape[0] || t.shape[1] !== w.shape[1])
    throw new TypeError(
      `projectOntoHyperplaneBox: expected t [M, D], w [M, D], b [M], got [${t.shape}], [${w.shape}], [${b.shape}]`,
    );
  return noGrad(() =>
    scope(() => {
      const m = t.size(0);
      const dim = t.size(1);
      const c = w.mul(t).sum(1).sub(b);
      const side = c.ge(0).to(t.dtype).mul(2).sub(1);
      const ws = w.mul(side.unsqueeze(1));
      const need = c.mul(side);
      const wAbs = ws.abs();
      const room = where(ws.gt(0), t, t.neg().add(1));
      const active = norm === "linf" ? ws.ne(0) : wAbs.ge(L2_TINY_WEIGHT);
      const inactive = active.logicalNot();
      const a = (norm === "linf" ? wAbs : wAbs.mul(wAbs)).maskedFill(inactive, 0);
      // For inactive coordinates room / |w| may be inf or NaN; maskedFill replaces it.
      const r = (norm === "linf" ? room : room.div(wAbs)).maskedFill(inactive, BIG);
      const [rs, order] = r.sort(1);
      const as = a.gather(1, order);
      const ar = as.mul(rs);
      // Exclusive prefix sums of a_i r_i (coordinates already saturated below a breakpoint)
      // and suffix sums of a_i (coordinates still moving at it).
      const prefix = cat([zeros([m, 1], { dtype: t.dtype, device: deviceOf(t) }), ar.cumsum(1).narrow(1, 0, dim - 1)], 1);
      const suffix = as.flip([1]).cumsum(1).flip([1]);
      const gAtBreaks = prefix.add(rs.mul(suffix));
      const below = gAtBreaks.lt(need.unsqueeze(1)).sum(1);
      const infeasible = below.eq(dim);
      const k = below.clamp(null, dim - 1).unsqueeze(1);
      const sufK = suffix.gather(1, k).squeeze(1);
      const lambda = need
        .sub(prefix.gather(1, k).squeeze(1))
        .div(sufK.maskedFill(sufK.le(0), 1))
        .clamp(0)
        .maskedFill(infeasible, BIG);
      const move = r
        .minimum(lambda.unsqueeze(1))
        .mul(norm === "linf" ? ws.sign() : ws)
        .neg();
      return move.maskedFill(inactive, 0);
    }),
  );
}

/** Per-row norm of [M, D]. */
function rowNorm(d: Tensor, norm: Norm): Tensor {
  return d.norm(norm === "linf" ? Number.POSITIVE_INFINITY : 2, 1);
}

/** Norm dual to the attack's: the distance to a hyperplane is |f| / |g|_dual. */
function dualRowNorm(g: Tensor, norm: Norm, dim: number): Tensor {
  return norm === "linf" ? g.abs().sum(dim) : g.norm(2, dim);
}

/**
 * The linearised boundary between y and the closest other class at x1: f = z_j - z_y [n]
 * and g = d f / d x [n, D], with j minimising |f_j| / |g_j|_dual. Needs the gradient of
 * every logit (one backward pass per class, as fab_pt.py does).
 */
function closestBoundary(forward: Forward, x1: Tensor, y: Tensor, norm: Norm): { f: Tensor; g: Tensor } {
  return scope(() => {
    const n = x1.size(0);
    const xa = x1.detach().requiresGrad_();
    const logits = forward(xa);
    const k = logits.size(1);
    const grads: Tensor[] = [];
    for (let c = 0; c < k; c++) {
      // A model that does not depend on x differentiably has zero gradients (attack contract).
      const [gc] = logits.requiresGrad
        ? autograd.grad(logits.select(1, c).sum(), [xa], { retainGraph: c < k - 1, allowUnused: true })
        : [null];
      grads.push(gc ?? noGrad(() => zerosLike(xa)));
    }
    return noGrad(() => {
      const jac = stack(grads, 1).flatten(2);
      const z = logits.detach();
      const yCol = y.unsqueeze(1);
      const df = z.sub(z.gather(1, yCol));
      const dg = jac.sub(jac.gather(1, yCol.unsqueeze(2).expand(n, 1, jac.size(2))));
      const dist = df
        .abs()
        .div(dualRowNorm(dg, norm, 2).add(GRAD_NORM_FLOOR))
        .scatter(1, yCol, Number.POSITIVE_INFINITY);
      const j = dist.argmin(1).unsqueeze(1);
      return { f: df.gather(1, j).squeeze(1), g: dg.gather(1, j.unsqueeze(2).expand(n, 1, dg.size(2))).squeeze(1) };
    });
  });
}

/** The linearised boundary between y and the target class: f = z_t - z_y and its gradient. */
function targetBoundary(forward: Forward, x1: Tensor, y: Tensor, target: Tensor): { f: Tensor; g: Tensor } {
  return scope(() => {
    const xa = x1.detach().requiresGrad_();
    const logits = forward(xa);
    const f = logits
      .gather(1, target.unsqueeze(1))
      .sub(logits.gather(1, y.unsqueeze(1)))
      .squeeze(1);
    const [g] = f.requiresGrad ? autograd.grad(f.sum(), [xa], { allowUnused: true }) : [null];
    return noGrad(() => ({ f: f.detach(), g: (g ?? zerosLike(xa)).flatten(1) }));
  });
}

/** The start of restarts after the first: a random point at radius eps / 2, clipped to the box. */
function randomStart(x0: Tensor, eps: number, norm: Norm): Tensor {
  return noGrad(() =>
    scope(() => {
      const t = norm === "linf" ? randLike(x0).mul(2).sub(1) : randnLike(x0);
      return x0.add(t.div(perSample(sampleNorm(t, norm), x0)).mul(eps / 2)).clamp(0, 1);
    }),
  );
}

/**
 * The linear-interpolation search of the original FAB code (linear_approximation_search):
 * between the clean x0 (class y) and the adversarial point (class l), it moves to where
 * z_y - z_l crosses zero if z were linear along the segment, and keeps the half that
 * still brackets the boundary. Updates adv and dist in place for the rows that have one.
 */
function finalSearch(forward: Forward, x0: Tensor, y: Tensor, adv: Tensor, dist: Tensor, c: FabConfig): void {
  scope(() =>
    noGrad(() => {
      const idx = rowsWhere(dist.lt(Number.POSITIVE_INFINITY));
      if (idx.size(0) === 0) return;
      const clean = x0.indexSelect(0, idx);
      const yy = y.indexSelect(0, idx).unsqueeze(1);
      const lo = clean.clone();
      const hi = adv.indexSelect(0, idx);
      const zLo = forward(lo);
      const zHi = forward(hi);
      const label = zHi.argmax(1, true);
      const overshoot = x0.dtype === "float64" ? SEARCH_OVERSHOOT.float64 : SEARCH_OVERSHOOT.float32;
      for (let s = 0; s < c.finalSearch; s++) {
        scope(() => {
          const m1 = zLo.gather(1, yy).sub(zLo.gather(1, label));
          const m2 = zHi.gather(1, label).sub(zHi.gather(1, yy));
          let frac = m1.div(m1.add(m2).add(1e-10));
          frac = frac.maskedFill(frac.lt(0).logicalOr(frac.gt(1)), 1);
          frac = frac.mul(1 + overshoot).clamp(null, 1);
          const mid = lo.add(hi.sub(lo).mul(perSample(frac.squeeze(1), lo)));
          const zMid = forward(mid);
          const pMid = zMid.argmax(1, true);
          const fooled = pMid.ne(yy);
          const rows = perSample(fooled.squeeze(1), lo);
          lo.copy_(where(rows, lo, mid));
          hi.copy_(where(rows, mid, hi));
          zLo.copy_(where(fooled, zLo, zMid));
          zHi.copy_(where(fooled, zMid, zHi));
          label.copy_(where(fooled, pMid, label));
        });
      }
      adv.copy_(scatterRows(adv, idx, hi));
      dist.copy_(scatterRows(dist, idx, sampleNorm(hi.sub(clean), c.norm)));
    }),
  );
}

/**
 * One FAB run on every sample of x0 (all correctly classified): per sample the closest
 * misclassified iterate (x0 where none) and its distance (+Infinity where none).
 */
function fabRun(
  forward: Forward,
  x0: Tensor,
  y: Tensor,
  target: Tensor | null,
  c: FabConfig,
  start: "clean" | "random",
): { adv: Tensor; dist: Tensor } {
  return scope(() => {
    const n = x0.size(0);
    const x1 = start === "random" ? randomStart(x0, c.eps, c.norm) : noGrad(() => x0.clone());
    const [adv, dist] = noGrad(() => [
      x0.clone(),
      full([n], Number.POSITIVE_INFINITY, { dtype: x0.dtype, device: deviceOf(x0) }),
    ]);
    const flat0 = x0.flatten(1);
    for (let i = 0; i < c.steps; i++) {
      scope(() => {
        const { f, g } = target === null ? closestBoundary(forward, x1, y, c.norm) : targetBoundary(forward, x1, y, target);
        noGrad(() => {
          const flat1 = x1.flatten(1);
          // The hyperplane g . z = g . x1 - f, on which the linearised f vanishes.
          const b = g.mul(flat1).sum(1).sub(f);
          const d = projectOntoHyperplaneBox(cat([flat1, flat0]), cat([g, g]), cat([b, b]), c.norm);
          const d1 = d.narrow(0, 0, n);
          const d2 = d.narrow(0, n, n);
          const a1 = rowNorm(d1, c.norm).clamp(MIN_STEP_NORM);
          const a2 = rowNorm(d2, c.norm).clamp(MIN_STEP_NORM);
          const alpha = a1.div(a1.add(a2)).clamp(0, c.alphaMax).unsqueeze(1);
          const fromX1 = flat1.add(d1.mul(c.eta)).mul(alpha.neg().add(1));
          const fromX0 = flat0.add(d2.mul(c.eta)).mul(alpha);
          x1.copy_(
            fromX1
              .add(fromX0)
              .clamp(0, 1)
              .reshape(...x0.shape),
          );
          const fooled = forward(x1).argmax(1).ne(y);
          const norms = sampleNorm(x1.sub(x0), c.norm);
          const closer = fooled.logicalAnd(norms.lt(dist));
          adv.copy_(where(perSample(closer, x0), x1, adv));
          dist.copy_(where(closer, norms, dist));
          // Back towards x0, so that the next steps look for a closer crossing.
          x1.copy_(where(perSample(fooled, x0), x0.add(x1.sub(x0).mul(c.beta)), x1));
        });
      });
    }
    if (c.finalSearch > 0) finalSearch(forward, x0, y, adv, dist, c);
    return { adv, dist };
  });
}

const DEFAULT_EPS = { linf: 8 / 255, l2: 0.5 } as const;

function resolve(what: string, o: FABOptions): { config: FabConfig; restarts: number; seed: number | null } {
  const norm = o.norm ?? "linf";
  const eps = o.eps ?? DEFAULT_EPS[norm];
  checkEps(what, eps, norm);
  const steps = o.steps ?? 100;
  const restarts = o.restarts ?? 1;
  const finalSearch = o.finalSearch ?? 0;
  checkCount(what, "steps", steps, 1);
  checkCount(what, "restarts", restarts, 1);
  checkCount(what, "finalSearch", finalSearch, 0);
  const alphaMax = o.alphaMax ?? 0.1;
  const eta = o.eta ?? 1.05;
  const beta = o.beta ?? 0.9;
  if (!(alphaMax >= 0 && alphaMax <= 1)) throw new RangeError(`${what}: alphaMax must be in [0, 1], got ${alphaMax}`);
  if (!(eta >= 1 && Number.isFinite(eta))) throw new RangeError(`${what}: eta must be a finite number >= 1, got ${eta}`);
  if (!(beta > 0 && beta < 1)) throw new RangeError(`${what}: beta must be in (0, 1), got ${beta}`);
  const seed = o.seed === undefined ? 0 : o.seed;
  if (seed !== null) checkCount(what, "seed", seed, 0);
  return { config: { eps, norm, steps, alphaMax, eta, beta, finalSearch }, restarts, seed };
}

/** FAB and FAB-T: the same runs, against the closest class or against each target in turn. */
export abstract class FABBase<M extends Classifier = Classifier> extends Attack<M> {
  readonly eps: number;
  readonly norm: Norm;
  readonly steps: number;
  readonly restarts: number;
  readonly alphaMax: number;
  readonly eta: number;
  readonly beta: number;
  readonly finalSearch: number;
  readonly seed: number | null;
  protected readonly config: FabConfig;

  constructor(model: M, what: string, options: FABOptions) {
    super(model);
    const { config, restarts, seed } = resolve(what, options);
    this.config = config;
    this.eps = config.eps;
    this.norm = config.norm;
    this.steps = config.steps;
    this.alphaMax = config.alphaMax;
    this.eta = config.eta;
    this.beta = config.beta;
    this.finalSearch = config.finalSearch;
    this.restarts = restarts;
    this.seed = seed;
  }

  /** The runs' targets: [null] (closest class) or one target vector [N] per targeted pass. */
  protected abstract targetsFor(clean: Tensor): (Tensor | null)[];

  /**
   * AutoAttack's FAB: for each target (FAB-T) and restart, attacks the samples not yet
   * fooled; a sample is fooled when the run's closest adversarial example is within eps
   * and misclassified. Fooled samples get that example, the others stay at x.
   */
  protected perturb(x: Tensor, y: Tensor): Tensor {
    if (this.seed !== null) manualSeed(this.seed);
    const forward: Forward = (xa) => this.model.forward(xa);
    const clean = noGrad(() => forward(x));
    const robust = noGrad(() => clean.argmax(1).eq(y));
    const out = noGrad(() => x.clone());
    for (const target of this.targetsFor(clean)) {
      for (let r = 0; r < this.restarts; r++) {
        const done = scope(() => {
          const idx = rowsWhere(robust);
          if (idx.size(0) === 0) return true;
          const xs = x.indexSelect(0, idx);
          const ys = y.indexSelect(0, idx);
          const ts = target === null ? null : target.indexSelect(0, idx);
          const run = fabRun(forward, xs, ys, ts, this.config, r === 0 ? "clean" : "random");
          noGrad(() => {
            const within = run.dist.le(this.eps);
            const cand = where(perSample(within, xs), run.adv, xs);
            // Judged again on the returned points, as AutoAttack does.
            const success = within.logicalAnd(forward(cand).argmax(1).ne(ys));
            out.copy_(scatterRows(out, idx, where(perSample(success, xs), cand, out.indexSelect(0, idx))));
            robust.copy_(scatterRows(robust, idx, success.logicalNot()));
          });
          return false;
        });
        if (done) return out;
      }
    }
    return out;
  }

  /**
   * Runs every target and restart on every correctly classified sample, whatever eps, and
   * keeps per sample the closest adversarial example found (eps only sets the radius of the
   * random starts). Same contract as run(): the model's mode, grad mode on, no .grad
   * writes; the returned tensors belong to the innermost enclosing scope.
   */
  minimalAdversarial(x: Tensor, y: Tensor): MinimalAdversarial {
    checkBatch(this.name, x, y);
    return withModelMode(this.model, this.mode, () =>
      scope(() =>
        enableGrad(() => {
          const xd = x.detach();
          const [best, distance] = noGrad(() => [
            xd.clone(),
            full([x.size(0)], Number.POSITIVE_INFINITY, { dtype: x.dtype, device: deviceOf(x) }),
          ]);
          if (x.size(0) === 0) return { x: best, distance };
          if (this.seed !== null) manualSeed(this.seed);
          const forward: Forward = (xa) => this.model.forward(xa);
          const clean = noGrad(() => forward(xd));
          const right = noGrad(() => clean.argmax(1).eq(y));
          noGrad(() => distance.maskedFill_(right.logicalNot(), 0));
          const idx = rowsWhere(right);
          if (idx.size(0) === 0) return { x: best, distance };
          const xs = xd.indexSelect(0, idx);
          const ys = y.indexSelect(0, idx);
          for (const target of this.targetsFor(clean)) {
            for (let r = 0; r < this.restarts; r++) {
              scope(() => {
                const ts = target === null ? null : target.indexSelect(0, idx);
                const run = fabRun(forward, xs, ys, ts, this.config, r === 0 ? "clean" : "random");
                noGrad(() => {
                  const old = distance.indexSelect(0, idx);
                  const closer = run.dist.lt(old);
                  best.copy_(scatterRows(best, idx, where(perSample(closer, xs), run.adv, best.indexSelect(0, idx))));
                  distance.copy_(scatterRows(distance, idx, where(closer, run.dist, old)));
                });
              });
            }
          }
          return { x: best, distance };
        }),
      ),
    );
  }
}

/** Untargeted FAB: each iteration heads for the closest linearised boundary of any class. */
export class FAB<M extends Classifier = Classifier> extends FABBase<M> {
  constructor(model: M, options: FABOptions = {}) {
    super(model, "FAB", options);
  }

  get name(): string {
    return `FAB (${this.norm}, ${this.steps} steps)`;
  }

  protected targetsFor(clean: Tensor): (Tensor | null)[] {
    const classes = clean.size(1);
    if (classes < 2) throw new RangeError(`FAB: the model needs at least 2 classes, it has ${classes}`);
    return [null];
  }
}

/**
 * FAB-T (AutoAttack's fab-t): one targeted pass for each of the `targets` classes with the
 * highest clean logits other than the top one, in that order. A sample counts as fooled
 * when it leaves its class, not only when it reaches the target (as in AutoAttack).
 */
export class FABT<M extends Classifier = Classifier> extends FABBase<M> {
  readonly targets: number;

  constructor(model: M, options: FABTOptions = {}) {
    super(model, "FAB-T", options);
    this.targets = options.targets ?? 9;
    checkCount("FAB-T", "targets", this.targets, 1);
  }

  get name(): string {
    return `FAB-T (${this.norm}, ${this.steps} steps, ${this.targets} targets)`;
  }

  protected targetsFor(clean: Tensor): (Tensor | null)[] {
    const classes = clean.size(1);
    if (classes < 2) throw new RangeError(`FAB-T: the model needs at least 2 classes, it has ${classes}`);
    const order = noGrad(() => clean.sort(1, true)[1]);
    const out: Tensor[] = [];
    for (let t = 1; t <= Math.min(this.targets, classes - 1); t++) out.push(order.select(1, t));
    return out;
  }
}
