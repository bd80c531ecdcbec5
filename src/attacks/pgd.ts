// Projected gradient descent (Madry et al. 2018), L-inf and L2, with random restarts.
// The search itself (pgdSearch) takes any differentiable map x -> logits, so the MoE
// attacks (frozen router, frozen experts) reuse it unchanged.
import { enableGrad, noGrad } from "../tensor/autograd.js";
import { randnLike } from "../tensor/creation.js";
import type { Generator } from "../tensor/generator.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import {
  Attack,
  type AttackMode,
  type Classifier,
  checkBatch,
  checkCount,
  checkEps,
  inputGradient,
  type Norm,
} from "./attack.js";
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
  /**
   * Start at x + gaussianStart * N(0, I) (clipped to the ball and the box) instead of the
   * uniform random start: TRADES starts 0.001 * N(0, I) from x, where the KL objective has
   * a zero gradient. Default: none.
   */
  gaussianStart?: number;
  /** Objective to maximise. Default 'ce' ('targeted-ce' when targeted). */
  loss?: LossName | LossFn;
  /**
   * 'best' (default, for evaluation): per sample the strongest iterate over all steps and
   * restarts. 'last': the last iterate, as adversarial training uses it (Madry, TRADES);
   * it saves the final forward pass.
   */
  iterate?: "best" | "last";
  /**
   * Targeted PGD: run(x, y, target) moves x towards the target classes (by default it
   * maximises -CE(logits, target)); a sample counts as fooled when it reaches its target.
   */
  targeted?: boolean;
  /** The model's mode during the attack (default 'eval'). */
  mode?: AttackMode;
  /**
   * Where the random starts come from (default: the global generator). A seeded Generator
   * makes an attack reproducible without touching the global stream, e.g. a validation attack
   * inside a training run.
   */
  generator?: Generator;
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
  iterate: "best" | "last";
  targeted: boolean;
  /** Std of a Gaussian start (0: none, then randomStart decides). */
  gaussianStart: number;
  generator: Generator | null;
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
  const iterate = o.iterate ?? "best";
  if (iterate !== "best" && iterate !== "last")
    throw new TypeError(`${what}: iterate must be 'best' or 'last', got '${String(iterate)}'`);
  if (iterate === "last" && restarts !== 1)
    throw new RangeError(`${what}: iterate 'last' takes a single restart (there is no best point to keep across restarts)`);
  const targeted = o.targeted ?? false;
  const gaussianStart = o.gaussianStart ?? 0;
  if (!(Number.isFinite(gaussianStart) && gaussianStart >= 0))
    throw new RangeError(`${what}: gaussianStart must be a finite number >= 0, got ${gaussianStart}`);
  const loss = o.loss ?? (targeted ? "targeted-ce" : "ce");
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
    iterate,
    targeted,
    gaussianStart,
    generator: o.generator ?? null,
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
  targeted = false,
): { loss: Tensor; grad: Tensor | null; fooled: Tensor } {
  // A targeted attack succeeds when the prediction reaches the target, not merely leaves y.
  const fooledBy = (logits: Tensor) =>
    ctx.success !== undefined
      ? ctx.success(logits, y)
      : targeted && ctx.target !== null
        ? logits.argmax(1).eq(ctx.target)
        : logits.argmax(1).ne(y);
  return scope(() => {
    if (!withGrad) {
      return noGrad(() => {
        const logits = forward(x);
        return { loss: loss(logits, y, ctx), grad: null, fooled: fooledBy(logits) };
      });
    }
    const xa = x.detach().requiresGrad_();
    const logits = forward(xa);
    const l = loss(logits, y, ctx);
    const grad = inputGradient(l, xa);
    return noGrad(() => ({ loss: l.detach(), grad, fooled: fooledBy(logits) }));
  });
}

/** Where a run starts: a Gaussian start, the uniform random start, or x itself. */
function startPoint(x: Tensor, o: ResolvedPGDOptions): Tensor {
  const g = o.generator ?? undefined;
  if (o.gaussianStart > 0)
    return noGrad(() =>
      scope(() => project(o.norm, x.add(randnLike(x, g === undefined ? {} : { generator: g }).mul(o.gaussianStart)), x, o.eps)),
    );
  return o.randomStart ? randomStart(x, o.eps, o.norm, g) : noGrad(() => x.clone());
}

/**
 * The last-iterate search adversarial training uses: steps of projected ascent from the
 * (random) start, no bookkeeping of the best point and no forward after the last step.
 */
export function pgdLastIterate(forward: Forward, x: Tensor, y: Tensor, o: ResolvedPGDOptions, ctx: LossContext): Tensor {
  return scope(() => {
    const xAdv = startPoint(x, o);
    for (let s = 0; s < o.steps; s++) {
      scope(() => {
        const g = lossAndGrad(forward, xAdv, y, o.loss, ctx, true, o.targeted).grad as Tensor;
        noGrad(() => xAdv.copy_(project(o.norm, xAdv.add(ascentDirection(g, o.norm).mul(o.alpha)), x, o.eps)));
      });
    }
    return xAdv;
  });
}

/**
 * PGD on forward from x: every iterate (including the last) is offered to a per-sample
 * tracker, so the result is the strongest point over all steps and restarts.
 */
export function pgdSearch(forward: Forward, x: Tensor, y: Tensor, o: ResolvedPGDOptions, ctx: LossContext): SearchResult {
  if (o.iterate === "last") {
    return scope(() => {
      const xAdv = pgdLastIterate(forward, x, y, o, ctx);
      const at = lossAndGrad(forward, xAdv, y, o.loss, ctx, false, o.targeted);
      return { x: xAdv, loss: at.loss, fooled: at.fooled };
    });
  }
  return scope(() => {
    const best = new BestIterate(x);
    for (let r = 0; r < o.restarts; r++) {
      scope(() => {
        const xAdv = startPoint(x, o);
        for (let s = 0; s <= o.steps; s++) {
          const last = s === o.steps;
          scope(() => {
            const at = lossAndGrad(forward, xAdv, y, o.loss, ctx, !last, o.targeted);
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
export function cleanContext(forward: Forward, x: Tensor, needed = true, target: Tensor | null = null): LossContext {
  return { cleanLogits: needed ? noGrad(() => forward(x)) : null, target };
}

/**
 * PGD on any differentiable map x -> logits (an expert alone, a frozen-router mixture, a
 * member of a dual model), for callers that own the model's mode themselves (training).
 * Returns the adversarial images (the last or the best iterate, as options.iterate says).
 */
export function pgdOn(forward: Forward, x: Tensor, y: Tensor, options: PGDOptions = {}, target: Tensor | null = null): Tensor {
  const o = resolvePGDOptions("pgdOn", options);
  if (o.targeted && target === null) throw new TypeError("pgdOn: a targeted attack needs target classes");
  return scope(() =>
    enableGrad(() => {
      const xd = x.detach();
      const ctx = cleanContext(forward, xd, o.needsClean, target);
      const out = o.iterate === "last" ? pgdLastIterate(forward, xd, y, o, ctx) : pgdSearch(forward, xd, y, o, ctx).x;
      return noGrad(() => out.detach());
    }),
  );
}

export class PGD<M extends Classifier = Classifier> extends Attack<M> {
  readonly options: Readonly<ResolvedPGDOptions>;

  #target: Tensor | null = null;

  constructor(model: M, options: PGDOptions = {}) {
    super(model);
    this.options = resolvePGDOptions("PGD", options);
    if (options.mode !== undefined) this.setMode(options.mode);
  }

  get name(): string {
    const o = this.options;
    const restarts = o.restarts > 1 ? ` x${o.restarts}` : "";
    return `PGD-${o.steps}${restarts} (${o.norm}, ${o.lossName}${o.targeted ? ", targeted" : ""})`;
  }

  /**
   * Untargeted: run(x, y). Targeted PGD (options.targeted): run(x, y, target) with target
   * classes [N] (int64), which must differ from y to mean anything.
   */
  override run(x: Tensor, y: Tensor, target?: Tensor): Tensor {
    if (this.options.targeted) {
      if (target === undefined) throw new TypeError(`${this.name}: a targeted attack needs run(x, y, target)`);
      checkBatch(this.name, x, target);
    } else if (target !== undefined) {
      throw new TypeError(`${this.name}: target classes given to an untargeted attack (set targeted: true)`);
    }
    this.#target = target ?? null;
    try {
      return super.run(x, y);
    } finally {
      this.#target = null;
    }
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    const forward: Forward = (xa) => this.model.forward(xa);
    const ctx = cleanContext(forward, x, this.options.needsClean, this.#target);
    return this.options.iterate === "last"
      ? pgdLastIterate(forward, x, y, this.options, ctx)
      : pgdSearch(forward, x, y, this.options, ctx).x;
  }
}
