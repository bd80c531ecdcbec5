// Projected gradient descent (Madry et al. 2018), L-inf and L2, with random restarts.
// The search itself (pgdSearch) takes any differentiable map x -> logits, so the MoE
// attacks (frozen router, frozen experts) reuse it unchanged.
import { noGrad } from "../tensor/autograd.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { Attack, type Classifier, checkCount, checkEps, inputGradient, type Norm } from "./attack.js";
import { BestIterate, type SearchResult } from "./best-iterate.js";
import { type LossContext, type LossFn, type LossName, resolveLoss } from "./losses.js";
import { ascentDirection, project, randomStart } from "./projections.js";

/** A differentiable map from (perturbed) images to logits. */
export type Forward = (x: Tensor) => Tensor;

export interface PGDOptions {
  /** Radius of the threat model. Default 8/255 for L-inf, 0.5 for L2. */
  eps?: number;
  /** Step size. Default eps / 4 (2/255 at eps 8/255). */
  alpha?: number;
  /** Gradient steps per restart. Default 10. */
  steps?: number;
  /** Default 'linf'. */
  norm?: Norm;
  /** Independent runs; the strongest point per sample over all of them is kept. Default 1. */
  restarts?: number;
  /** Start uniformly in the L-inf ball / at a random L2 point (else at x). Default true. */
  randomStart?: boolean;
  /** Objective to maximise. Default 'ce'. */
  loss?: LossName | LossFn;
}

export interface ResolvedPGDOptions {
  eps: number;
  alpha: number;
  steps: number;
  norm: Norm;
  restarts: number;
  randomStart: boolean;
  loss: LossFn;
  lossName: string;
  /** Whether the loss may read ctx.cleanLogits ('kl' and custom functions). */
  needsClean: boolean;
}

export function defaultEps(norm: Norm): number {
  return norm === "linf" ? 8 / 255 : 0.5;
}

export function resolvePGDOptions(what: string, o: PGDOptions): ResolvedPGDOptions {
  const norm = o.norm ?? "linf";
  const eps = o.eps ?? defaultEps(norm);
  checkEps(what, eps, norm);
  const alpha = o.alpha ?? eps / 4;
  if (!(Number.isFinite(alpha) && alpha >= 0)) throw new RangeError(`${what}: alpha must be a finite number >= 0, got ${alpha}`);
  const steps = o.steps ?? 10;
  const restarts = o.restarts ?? 1;
  checkCount(what, "steps", steps, 0);
  checkCount(what, "restarts", restarts, 1);
  const loss = o.loss ?? "ce";
  return {
    eps,
    alpha,
    steps,
    norm,
    restarts,
    randomStart: o.randomStart ?? true,
    loss: resolveLoss(loss),
    lossName: typeof loss === "function" ? loss.name || "custom" : loss,
    needsClean: typeof loss === "function" || loss === "kl",
  };
}

/** Loss [N] at x, its input gradient and whether each sample is misclassified (no graph kept). */
export function lossAndGrad(
  forward: Forward,
  x: Tensor,
  y: Tensor,
  loss: LossFn,
  ctx: LossContext,
  withGrad = true,
): { loss: Tensor; grad: Tensor | null; fooled: Tensor } {
  return scope(() => {
    if (!withGrad) {
      return noGrad(() => {
        const logits = forward(x);
        return { loss: loss(logits, y, ctx), grad: null, fooled: logits.argmax(1).ne(y) };
      });
    }
    const xa = x.detach().requiresGrad_();
    const logits = forward(xa);
    const l = loss(logits, y, ctx);
    const grad = inputGradient(l, xa);
    return noGrad(() => ({ loss: l.detach(), grad, fooled: logits.argmax(1).ne(y) }));
  });
}

/**
 * PGD on forward from x: every iterate (including the last) is offered to a per-sample
 * tracker, so the result is the strongest point over all steps and restarts.
 */
export function pgdSearch(forward: Forward, x: Tensor, y: Tensor, o: ResolvedPGDOptions, ctx: LossContext): SearchResult {
  return scope(() => {
    const best = new BestIterate(x);
    for (let r = 0; r < o.restarts; r++) {
      scope(() => {
        const xAdv = o.randomStart ? randomStart(x, o.eps, o.norm) : noGrad(() => x.clone());
        for (let s = 0; s <= o.steps; s++) {
          const last = s === o.steps;
          scope(() => {
            const at = lossAndGrad(forward, xAdv, y, o.loss, ctx, !last);
            best.update(xAdv, at.loss, at.fooled);
            const g = at.grad;
            if (g !== null) {
              noGrad(() => xAdv.copy_(project(o.norm, xAdv.add(ascentDirection(g, o.norm).mul(o.alpha)), x, o.eps)));
            }
          });
        }
      });
    }
    return { x: best.x, loss: best.loss, fooled: best.fooled };
  });
}

/** Clean logits for losses that compare against them (KL), without a graph; skipped when not needed. */
export function cleanContext(forward: Forward, x: Tensor, needed = true): LossContext {
  return { cleanLogits: needed ? noGrad(() => forward(x)) : null, target: null };
}

export class PGD<M extends Classifier = Classifier> extends Attack<M> {
  readonly options: Readonly<ResolvedPGDOptions>;

  constructor(model: M, options: PGDOptions = {}) {
    super(model);
    this.options = resolvePGDOptions("PGD", options);
  }

  get name(): string {
    const o = this.options;
    const restarts = o.restarts > 1 ? ` x${o.restarts}` : "";
    return `PGD-${o.steps}${restarts} (${o.norm}, ${o.lossName})`;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    const forward: Forward = (xa) => this.model.forward(xa);
    return pgdSearch(forward, x, y, this.options, cleanContext(forward, x, this.options.needsClean)).x;
  }
}
