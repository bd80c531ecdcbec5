// A gradient-free attack in the spirit of the Square attack (Andriushchenko et al. 2020):
// random search over the vertices of the L-inf ball, changing one random square window
// (one value per channel) at a time and keeping a change only when it lowers the margin
// z_y - max_{j != y} z_j. It needs no gradient, so it is the reference point of the
// gradient-masking checks: when it fools samples that PGD cannot, the gradients lie.
// The L2 variant is a plain random search on the sphere |d|_2 = eps with window-local
// Gaussian proposals, not Square's L2 algorithm.
import { noGrad } from "../tensor/autograd.js";
import { where } from "../tensor/combine.js";
import { arange, rand, randint, randnLike } from "../tensor/creation.js";
import { manualSeed } from "../tensor/runtime.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { Attack, type Classifier, checkCount, checkEps, deviceOf, type Norm } from "./attack.js";
import { marginLoss } from "./losses.js";
import { defaultEps } from "./pgd.js";
import { ascentDirection, perSample } from "./projections.js";

export interface RandomSearchOptions {
  /** Default 8/255 for L-inf, 0.5 for L2. */
  eps?: number;
  /** Default 'linf'. */
  norm?: Norm;
  /** Model evaluations per sample after the clean one (the query budget). Default 200. */
  queries?: number;
  /** Initial fraction of the image a window covers, halved on Square's schedule. Default 0.8 (L-inf), 0.3 (L2). */
  pInit?: number;
  /** Seeds LibTorch's generator at the start of run(); default: leave it alone. */
  seed?: number;
}

/** Square's schedule on a 10000-query scale: p halves after 10, 50, 200, 500, 1000, ... queries. */
const HALVING_POINTS = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];

export function windowFraction(pInit: number, query: number, budget: number): number {
  const t = Math.floor((query / budget) * 10000);
  return pInit / 2 ** HALVING_POINTS.filter((h) => t > h).length;
}

export class RandomSearch<M extends Classifier = Classifier> extends Attack<M> {
  readonly eps: number;
  readonly norm: Norm;
  readonly queries: number;
  readonly pInit: number;
  readonly seed: number | undefined;

  constructor(model: M, options: RandomSearchOptions = {}) {
    super(model);
    this.norm = options.norm ?? "linf";
    this.eps = options.eps ?? defaultEps(this.norm);
    checkEps("RandomSearch", this.eps, this.norm);
    this.queries = options.queries ?? 200;
    checkCount("RandomSearch", "queries", this.queries, 1);
    this.pInit = options.pInit ?? (this.norm === "linf" ? 0.8 : 0.3);
    if (!(this.pInit > 0 && this.pInit <= 1)) throw new RangeError(`RandomSearch: pInit must be in (0, 1], got ${this.pInit}`);
    this.seed = options.seed;
    if (this.seed !== undefined) checkCount("RandomSearch", "seed", this.seed, 0);
  }

  get name(): string {
    return `RandomSearch (${this.norm}, ${this.queries} queries)`;
  }

  /** Margin z_y - max_{j != y} z_j at x: negative exactly when x is misclassified. */
  #margin(x: Tensor, y: Tensor): Tensor {
    return scope(() => marginLoss(this.model.forward(x), y).neg());
  }

  /** Where a proposal may change delta: a random square per sample (images) or random coordinates. */
  #window(x: Tensor, p: number): Tensor {
    return scope(() => {
      const n = x.size(0);
      const device = deviceOf(x);
      if (x.ndim !== 4) return rand(x.shape, { device }).lt(p);
      const [, , h, w] = x.shape as [number, number, number, number];
      const side = Math.max(Math.min(Math.round(Math.sqrt(p * h * w)), Math.min(h, w) - 1), 1);
      const top = randint(0, h - side + 1, [n, 1, 1, 1], { device });
      const left = randint(0, w - side + 1, [n, 1, 1, 1], { device });
      const rows = arange(h, undefined, 1, { device }).view(1, 1, h, 1);
      const cols = arange(w, undefined, 1, { device }).view(1, 1, 1, w);
      return rows
        .ge(top)
        .logicalAnd(rows.lt(top.add(side)))
        .logicalAnd(cols.ge(left))
        .logicalAnd(cols.lt(left.add(side)));
    });
  }

  /** Random vertex values: one sign per sample and channel for images, per coordinate otherwise. */
  #signs(x: Tensor, perColumn: boolean): Tensor {
    return scope(() => {
      const s = x.shape;
      const shape =
        x.ndim !== 4
          ? s
          : perColumn
            ? [s[0] as number, s[1] as number, 1, s[3] as number]
            : [s[0] as number, s[1] as number, 1, 1];
      return randint(0, 2, shape, { dtype: x.dtype, device: deviceOf(x) })
        .mul(2 * this.eps)
        .sub(this.eps);
    });
  }

  #toSphere(delta: Tensor): Tensor {
    return scope(() => ascentDirection(delta, "l2").mul(this.eps));
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    if (this.seed !== undefined) manualSeed(this.seed);
    return noGrad(() =>
      scope(() => {
        const cleanMargin = this.#margin(x, y);
        // Samples misclassified at x stay at x: no query is spent on them.
        const done = cleanMargin.lt(0);
        const initDelta = this.norm === "linf" ? this.#signs(x, true).expand(...x.shape) : this.#toSphere(randnLike(x));
        const best = x.add(initDelta).clamp(0, 1);
        best.copy_(where(perSample(done, x), x, best));
        const margin = where(done, cleanMargin, this.#margin(best, y));
        done.copy_(margin.lt(0));
        for (let q = 1; q < this.queries; q++) {
          const finished = scope(() => {
            if (done.all().item() !== 0) return true;
            const p = windowFraction(this.pInit, q, this.queries);
            const mask = this.#window(x, p);
            const delta = best.sub(x);
            let proposal: Tensor;
            if (this.norm === "linf") {
              proposal = where(mask, this.#signs(x, false), delta);
            } else {
              const noise = this.#toSphere(randnLike(x).mul(mask));
              proposal = this.#toSphere(delta.add(noise));
            }
            const candidate = x.add(proposal).clamp(0, 1);
            const m = this.#margin(candidate, y);
            const accept = m.lt(margin).logicalAnd(done.logicalNot());
            best.copy_(where(perSample(accept, x), candidate, best));
            margin.copy_(where(accept, m, margin));
            done.copy_(margin.lt(0));
            return false;
          });
          if (finished) break;
        }
        return best;
      }),
    );
  }
}
