// Auto-PGD (Croce & Hein, ICML 2020), L-inf and L2: PGD with momentum 0.75 and a step size
// that starts at 2 eps and is halved, per sample, at checkpoints where progress stalled;
// after a halving the iterate restarts from the best point found so far.
// Checkpoints at w_j ~ p_j N with p_0 = 0, p_1 = 0.22 and
// p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06); the step is halved at w_j when
//   (1) the loss increased in at most rho * (w_j - w_{j-1}) of the steps since w_{j-1}, or
//   (2) the step was not halved at w_{j-1} and the best loss did not improve since then.
// APGD-T runs the targeted DLR loss against the top-n other classes of the clean logits.

import { noGrad } from "../tensor/autograd.js";
import { where } from "../tensor/combine.js";
import { full, zeros } from "../tensor/creation.js";
import { manualSeed } from "../tensor/runtime.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { Attack, type Classifier, checkCount, checkEps, deviceOf, type Norm } from "./attack.js";
import { BestIterate, rowsWhere, type SearchResult } from "./best-iterate.js";
import { type LossContext, type LossFn, resolveLoss, targetedDlr } from "./losses.js";
import { defaultEps, type Forward, lossAndGrad } from "./pgd.js";
import { ascentDirection, perSample, project, randomSurfacePoint } from "./projections.js";

const MOMENTUM = 0.75;

export interface APGDOptions {
  /** Default 8/255 for L-inf, 0.5 for L2. */
  eps?: number;
  /** Default 'linf'. */
  norm?: Norm;
  /** Iterations per run (gradient evaluations). Default 100. */
  steps?: number;
  /** Runs; each later run attacks only the samples still robust. Default 1. */
  restarts?: number;
  /** 'ce' (APGD-CE), 'dlr' (APGD-DLR, needs >= 3 classes) or a custom per-sample loss. Default 'ce'. */
  loss?: "ce" | "dlr" | LossFn;
  /** Oscillation threshold of condition (1). Default 0.75. */
  rho?: number;
  /** Seeds LibTorch's generator at the start of run() (AutoAttack does); default: leave it alone. */
  seed?: number;
  /**
   * Expectation over transformation: each iteration averages the loss and the gradient over
   * this many forward passes (AutoAttack's eot_iter; its 'rand' version uses 20 against
   * randomised defences). Default 1.
   */
  eot?: number;
}

export interface APGDTOptions extends Omit<APGDOptions, "loss"> {
  /** Target classes per sample: the n highest clean logits other than the top one. Default 9. */
  targets?: number;
}

/** One APGD run's settings. */
export interface ApgdConfig {
  eps: number;
  norm: Norm;
  steps: number;
  rho: number;
  loss: LossFn;
  /** Forward passes averaged per iteration (default 1). */
  eot?: number;
}

/** lossAndGrad averaged over c.eot forward passes; success is read off the last pass, as AutoAttack does. */
function eotLossAndGrad(forward: Forward, x: Tensor, y: Tensor, c: ApgdConfig, ctx: LossContext) {
  const eot = c.eot ?? 1;
  if (eot <= 1) return lossAndGrad(forward, x, y, c.loss, ctx);
  return scope(() => {
    let loss: Tensor | null = null;
    let grad: Tensor | null = null;
    let fooled: Tensor | null = null;
    for (let i = 0; i < eot; i++) {
      const at = lossAndGrad(forward, x, y, c.loss, ctx);
      loss = loss === null ? at.loss : noGrad(() => (loss as Tensor).add(at.loss));
      grad = grad === null ? (at.grad as Tensor) : noGrad(() => (grad as Tensor).add(at.grad as Tensor));
      fooled = at.fooled;
    }
    return noGrad(() => ({ loss: (loss as Tensor).div(eot), grad: (grad as Tensor).div(eot), fooled: fooled as Tensor }));
  });
}

/**
 * Iteration counts after which the step size is reviewed: the first window is
 * floor(0.22 N) iterations, each next one floor(0.03 N) shorter but at least
 * floor(0.06 N), and every window at least 1 (as in the authors' code); for N = 100 this
 * is 22, 41, 57, 70, 80, 87, 93, 99.
 */
export function apgdCheckpoints(steps: number): number[] {
  const shrink = Math.max(Math.floor(0.03 * steps), 1);
  const min = Math.max(Math.floor(0.06 * steps), 1);
  let window = Math.max(Math.floor(0.22 * steps), 1);
  const out: number[] = [];
  for (let at = window; at <= steps; at += window) {
    out.push(at);
    window = Math.max(window - shrink, min);
  }
  return out;
}

/**
 * One APGD run on the whole batch: per sample the latest misclassified iterate when there
 * is one, else the highest-loss iterate, with the highest loss seen.
 */
export function apgdRun(forward: Forward, x: Tensor, y: Tensor, c: ApgdConfig, ctx: LossContext): SearchResult {
  return scope(() => {
    const n = x.size(0);
    const xAdv = randomSurfacePoint(x, c.eps, c.norm);
    const start = eotLossAndGrad(forward, xAdv, y, c, ctx);
    const grad = start.grad as Tensor;
    const [xBest, gradBest, lossBest, xFooled, fooled, xOld, prevLoss, lossBestAtCheck] = noGrad(() => [
      xAdv.clone(),
      grad.clone(),
      start.loss.clone(),
      xAdv.clone(),
      start.fooled.clone(),
      xAdv.clone(),
      start.loss.clone(),
      start.loss.clone(),
    ]);
    const device = deviceOf(x);
    const step = full([n, ...new Array<number>(x.ndim - 1).fill(1)], 2 * c.eps, { dtype: x.dtype, device });
    const increases = zeros([n], { dtype: x.dtype, device });
    const halvedAtCheck = full([n], true, { dtype: "bool", device });
    const checkpoints = apgdCheckpoints(c.steps);
    let lastCheck = 0;

    for (let i = 0; i < c.steps; i++) {
      scope(() =>
        noGrad(() => {
          const a = i === 0 ? 1 : MOMENTUM;
          const previous = xAdv.sub(xOld);
          xOld.copy_(xAdv);
          const z = project(c.norm, xAdv.add(ascentDirection(grad, c.norm).mul(step)), x, c.eps);
          xAdv.copy_(project(c.norm, xAdv.add(z.sub(xAdv).mul(a)).add(previous.mul(1 - a)), x, c.eps));
        }),
      );
      scope(() => {
        const at = eotLossAndGrad(forward, xAdv, y, c, ctx);
        noGrad(() => {
          grad.copy_(at.grad as Tensor);
          xFooled.copy_(where(perSample(at.fooled, x), xAdv, xFooled));
          fooled.copy_(fooled.logicalOr(at.fooled));
          increases.add_(at.loss.gt(prevLoss).to(x.dtype));
          prevLoss.copy_(at.loss);
          const improved = at.loss.gt(lossBest);
          const rows = perSample(improved, x);
          xBest.copy_(where(rows, xAdv, xBest));
          gradBest.copy_(where(rows, grad, gradBest));
          lossBest.copy_(where(improved, at.loss, lossBest));
        });
      });
      const done = i + 1;
      if (checkpoints.includes(done)) {
        const window = done - lastCheck;
        lastCheck = done;
        scope(() =>
          noGrad(() => {
            const oscillating = increases.le(c.rho * window);
            const stalled = halvedAtCheck.logicalNot().logicalAnd(lossBestAtCheck.ge(lossBest));
            const halve = oscillating.logicalOr(stalled);
            halvedAtCheck.copy_(halve);
            lossBestAtCheck.copy_(lossBest);
            const rows = perSample(halve, x);
            step.copy_(where(rows, step.mul(0.5), step));
            xAdv.copy_(where(rows, xBest, xAdv));
            grad.copy_(where(rows, gradBest, grad));
            increases.zero_();
          }),
        );
      }
    }
    const out = noGrad(() => where(perSample(fooled, x), xFooled, xBest));
    return { x: out, loss: lossBest, fooled };
  });
}

function subsetContext(ctx: LossContext, idx: Tensor): LossContext {
  return {
    cleanLogits: ctx.cleanLogits === null ? null : ctx.cleanLogits.indexSelect(0, idx),
    target: ctx.target === null ? null : ctx.target.indexSelect(0, idx),
  };
}

/**
 * Restarted APGD, AutoAttack-style: each run attacks only the samples not yet fooled; per
 * sample the strongest point over all runs is kept into best.
 */
export function apgdRestarts(
  forward: Forward,
  x: Tensor,
  y: Tensor,
  c: ApgdConfig,
  ctx: LossContext,
  restarts: number,
  best: BestIterate,
): void {
  for (let r = 0; r < restarts; r++) {
    const done = scope(() => {
      const idx = rowsWhere(best.fooled.logicalNot());
      if (idx.size(0) === 0) return true;
      const sub = apgdRun(forward, x.indexSelect(0, idx), y.indexSelect(0, idx), c, subsetContext(ctx, idx));
      best.updateRows(idx, sub);
      return false;
    });
    if (done) return;
  }
}

function resolveCommon(
  what: string,
  o: APGDOptions,
): { eps: number; norm: Norm; steps: number; restarts: number; rho: number; eot: number } {
  const norm = o.norm ?? "linf";
  const eps = o.eps ?? defaultEps(norm);
  checkEps(what, eps, norm);
  const steps = o.steps ?? 100;
  const restarts = o.restarts ?? 1;
  checkCount(what, "steps", steps, 1);
  checkCount(what, "restarts", restarts, 1);
  const rho = o.rho ?? 0.75;
  if (!(rho > 0 && rho <= 1)) throw new RangeError(`${what}: rho must be in (0, 1], got ${rho}`);
  if (o.seed !== undefined) checkCount(what, "seed", o.seed, 0);
  const eot = o.eot ?? 1;
  checkCount(what, "eot", eot, 1);
  return { eps, norm, steps, restarts, rho, eot };
}

/** Samples misclassified at x start as fooled (kept at x): no run is spent on them. */
function startTracker(forward: Forward, x: Tensor, y: Tensor): { best: BestIterate; clean: Tensor } {
  const best = new BestIterate(x);
  const clean = noGrad(() => forward(x));
  noGrad(() => scope(() => best.fooled.copy_(clean.argmax(1).ne(y))));
  return { best, clean };
}

export class APGD<M extends Classifier = Classifier> extends Attack<M> {
  readonly eps: number;
  readonly norm: Norm;
  readonly steps: number;
  readonly restarts: number;
  readonly rho: number;
  readonly seed: number | undefined;
  readonly eot: number;
  readonly loss: LossFn;
  readonly lossName: string;

  constructor(model: M, options: APGDOptions = {}) {
    super(model);
    const r = resolveCommon("APGD", options);
    this.eps = r.eps;
    this.norm = r.norm;
    this.steps = r.steps;
    this.restarts = r.restarts;
    this.rho = r.rho;
    this.eot = r.eot;
    const loss = options.loss ?? "ce";
    this.loss = resolveLoss(loss);
    this.lossName = typeof loss === "function" ? loss.name || "custom" : loss;
    this.seed = options.seed;
  }

  get name(): string {
    return `APGD-${this.lossName.toUpperCase()} (${this.norm}, ${this.steps} steps${this.restarts > 1 ? `, ${this.restarts} restarts` : ""}${this.eot > 1 ? `, EOT ${this.eot}` : ""})`;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    if (this.seed !== undefined) manualSeed(this.seed);
    const forward: Forward = (xa) => this.model.forward(xa);
    const { best, clean } = startTracker(forward, x, y);
    const c = { eps: this.eps, norm: this.norm, steps: this.steps, rho: this.rho, loss: this.loss, eot: this.eot };
    apgdRestarts(forward, x, y, c, { cleanLogits: clean, target: null }, this.restarts, best);
    return best.x;
  }
}

export class APGDT<M extends Classifier = Classifier> extends Attack<M> {
  readonly eps: number;
  readonly norm: Norm;
  readonly steps: number;
  readonly restarts: number;
  readonly rho: number;
  readonly seed: number | undefined;
  readonly targets: number;

  constructor(model: M, options: APGDTOptions = {}) {
    super(model);
    const r = resolveCommon("APGD-T", options);
    this.eps = r.eps;
    this.norm = r.norm;
    this.steps = r.steps;
    this.restarts = r.restarts;
    this.rho = r.rho;
    this.seed = options.seed;
    this.targets = options.targets ?? 9;
    checkCount("APGD-T", "targets", this.targets, 1);
  }

  get name(): string {
    return `APGD-T (${this.norm}, ${this.steps} steps, ${this.targets} targets)`;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    if (this.seed !== undefined) manualSeed(this.seed);
    const forward: Forward = (xa) => this.model.forward(xa);
    const { best, clean } = startTracker(forward, x, y);
    const classes = clean.size(1);
    if (classes < 4) throw new RangeError(`APGD-T: the targeted DLR loss needs at least 4 classes, the model has ${classes}`);
    const order = noGrad(() => clean.sort(1, true)[1]);
    const c = { eps: this.eps, norm: this.norm, steps: this.steps, rho: this.rho, loss: targetedDlr };
    for (let t = 1; t <= Math.min(this.targets, classes - 1); t++) {
      scope(() => apgdRestarts(forward, x, y, c, { cleanLogits: clean, target: order.select(1, t) }, this.restarts, best));
    }
    return best.x;
  }
}
