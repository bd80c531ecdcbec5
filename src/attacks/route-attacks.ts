// Worst-case attacks on top-1 and hard routing (issue 15, item 2). With one expert per sample,
// the router decides which classifier answers, and an untargeted objective can flip a sample
// onto another expert that happens to be right while a wrong one was reachable. Two attacks
// close that gap:
//  - TargetedRouteAttack (RA-R's worst case, experts frozen at their clean outputs): for each
//    expert j whose clean prediction is wrong, maximise the route margin r_j - max_{i != j} r_i;
//    a sample is broken when any run routes it to such an expert.
//  - RouteThenExpertAttack (adaptive, on the real MoE): for each expert j, maximise CE(f_j(x+d), y)
//    while a penalty keeps the route on j; a sample is broken when the route is j and f_j is wrong
//    at the same point, i.e. the MoE itself is fooled there.
// Both run the shared PGD kernel (pgdSearch) once per expert on the samples that can still be
// broken, and keep the first breaking point per sample.
import type { MoE } from "../models/moe.js";
import { noGrad } from "../tensor/autograd.js";
import { cat, stack } from "../tensor/combine.js";
import { fullLike } from "../tensor/creation.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { Attack } from "./attack.js";
import { rowsWhere, scatterRows } from "./best-iterate.js";
import { ceLoss, type LossContext, maxOtherLogit, trueLogit } from "./losses.js";
import { type PGDOptions, pgdSearch, type ResolvedPGDOptions, resolvePGDOptions } from "./pgd.js";

/** The MoE routes each sample to one expert: top-1 or hard gating. */
function checkSingleRoute(what: string, moe: MoE): void {
  if (moe.k !== 1 || moe.gating === "dense")
    throw new TypeError(
      `${what}: needs top-1 or hard routing (k = 1); with k > 1 or dense gating the output objective has gradients, use PGD on the MoE`,
    );
}

/** Route margin towards ctx.target: r_t - max_{i != t} r_i (positive once the route is t). */
function routeMargin(logits: Tensor, _y: Tensor, ctx: LossContext): Tensor {
  const t = ctx.target as Tensor;
  return scope(() => trueLogit(logits, t).sub(maxOtherLogit(logits, t)));
}

/** Clean predictions of every expert, [N, E] int64, without a graph. */
function expertPredictions(moe: MoE, x: Tensor): Tensor {
  return noGrad(() =>
    scope(() =>
      stack(
        Array.from({ length: moe.numExperts }, (_, e) => moe.expertLogits(x, e).argmax(1)),
        1,
      ),
    ),
  );
}

/** Runs one search per expert on the rows that `eligible(j)` selects, keeping the first breaking point per sample. */
function perExpert(
  x: Tensor,
  numExperts: number,
  eligible: (j: number, broken: Tensor) => Tensor,
  search: (j: number, rows: Tensor) => { x: Tensor; fooled: Tensor },
): Tensor {
  return scope(() => {
    let result = noGrad(() => x.clone());
    let broken = noGrad(() => fullLike(x.flatten(1).select(1, 0), false, { dtype: "bool" }));
    for (let j = 0; j < numExperts; j++) {
      const step = scope(() => {
        const mask = noGrad(() => eligible(j, broken));
        const rows = rowsWhere(mask);
        if (rows.size(0) === 0) return null;
        const out = search(j, rows);
        const hit = rowsWhere(out.fooled);
        if (hit.size(0) === 0) return null;
        const idx = rows.indexSelect(0, hit);
        return {
          result: scatterRows(result, idx, out.x.indexSelect(0, hit)),
          broken: scatterRows(
            broken,
            idx,
            noGrad(() => fullLike(idx, true, { dtype: "bool" })),
          ),
        };
      });
      if (step !== null) {
        result = step.result;
        broken = step.broken;
      }
    }
    return result;
  });
}

/**
 * RA-R's worst case for top-1 and hard routing: experts frozen at their clean outputs, one
 * targeted route search per expert whose clean prediction is wrong. The returned point of a
 * broken sample routes it to a wrong expert; other samples come back as x.
 */
export class TargetedRouteAttack extends Attack<MoE> {
  readonly options: Readonly<ResolvedPGDOptions>;

  constructor(moe: MoE, options: PGDOptions = {}) {
    super(moe);
    checkSingleRoute("TargetedRouteAttack", moe);
    this.options = resolvePGDOptions("TargetedRouteAttack", { ...options, loss: routeMargin, targeted: true });
  }

  get name(): string {
    return `TargetedRouteAttack PGD-${this.options.steps} (${this.options.norm})`;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    const moe = this.model;
    const preds = expertPredictions(moe, x);
    const route = noGrad(() => scope(() => moe.routerLogits(x).argmax(1)));
    const forward = (xa: Tensor) => moe.routerLogits(xa);
    return perExpert(
      x,
      moe.numExperts,
      // Expert j is a target for the samples it gets wrong when clean and is not already routed to.
      (j, broken) => scope(() => preds.select(1, j).ne(y).logicalAnd(route.ne(j)).logicalAnd(broken.logicalNot())),
      (j, rows) => {
        const xs = x.indexSelect(0, rows);
        const target = noGrad(() => fullLike(rows, j));
        const ctx: LossContext = { cleanLogits: null, target };
        const r = pgdSearch(forward, xs, target, this.options, ctx);
        return { x: r.x, fooled: r.fooled };
      },
    );
  }
}

export interface RouteThenExpertOptions extends PGDOptions {
  /** Weight of the penalty max(0, max_{i != j} r_i - r_j) that keeps the route on j. Default 10. */
  routePenalty?: number;
}

/**
 * The adaptive attack on a top-1 or hard-routed MoE: for each expert j, maximise
 * CE(f_j(x + d), y) - routePenalty * max(0, max_{i != j} r_i(x + d) - r_j(x + d)). A sample is
 * fooled when, at one point, the route is j and f_j misclassifies it: the real MoE is wrong
 * there. Other samples come back as x.
 */
export class RouteThenExpertAttack extends Attack<MoE> {
  readonly options: Readonly<ResolvedPGDOptions>;
  readonly routePenalty: number;

  constructor(moe: MoE, options: RouteThenExpertOptions = {}) {
    super(moe);
    checkSingleRoute("RouteThenExpertAttack", moe);
    this.routePenalty = options.routePenalty ?? 10;
    if (!(Number.isFinite(this.routePenalty) && this.routePenalty >= 0))
      throw new RangeError(`RouteThenExpertAttack: routePenalty must be a finite number >= 0, got ${this.routePenalty}`);
    this.options = resolvePGDOptions("RouteThenExpertAttack", options);
  }

  get name(): string {
    return `RouteThenExpertAttack PGD-${this.options.steps} (${this.options.norm})`;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    const moe = this.model;
    const classes = noGrad(() => scope(() => moe.expertLogits(x.narrow(0, 0, 1), 0).size(1)));
    const e = moe.numExperts;
    const clean = noGrad(() => scope(() => moe.forward(x).argmax(1).eq(y)));
    const penalty = this.routePenalty;
    return perExpert(
      x,
      e,
      (_j, broken) => scope(() => clean.logicalAnd(broken.logicalNot())),
      (j, rows) => {
        const xs = x.indexSelect(0, rows);
        const ys = y.indexSelect(0, rows);
        const target = noGrad(() => fullLike(ys, j));
        const expert = moe.experts.at(j);
        // [f_j(x) | r(x)]: one output carries both parts of the objective and of success.
        const forward = (xa: Tensor) => scope(() => cat([expert.forward(xa), moe.routerLogits(xa)], 1));
        const split = (z: Tensor) => [z.narrow(1, 0, classes), z.narrow(1, classes, e)] as const;
        const ctx: LossContext = {
          cleanLogits: null,
          target,
          success: (z, yy) =>
            scope(() => {
              const [f, r] = split(z);
              return r.argmax(1).eq(target).logicalAnd(f.argmax(1).ne(yy));
            }),
        };
        const loss = (z: Tensor, yy: Tensor) =>
          scope(() => {
            const [f, r] = split(z);
            const offRoute = maxOtherLogit(r, target).sub(trueLogit(r, target)).clamp(0, null);
            return ceLoss(f, yy).sub(offRoute.mul(penalty));
          });
        const r = pgdSearch(forward, xs, ys, { ...this.options, loss }, ctx);
        return { x: r.x, fooled: r.fooled };
      },
    );
  }
}
