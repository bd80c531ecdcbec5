// The Square attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020) as AutoAttack runs
// it (fra31/auto-attack, autoattack/square.py). It is the gradient-free member of AutoAttack's
// standard suite: a random search that never looks at a gradient, so it is the attack that
// catches gradient masking. Robustness numbers are compared with AutoAttack's, so every rule
// below follows the official code, including its quirks (listed in docs/ATTACKS.md, Square):
//
// - One window position (and, for L-inf, one ±eps value per channel) is drawn per iteration
//   and shared by every sample still being attacked, exactly as square.py does. The result
//   for a sample therefore depends on the batch it is attacked in, as in AutoAttack.
// - Every random number comes from a CPU generator, drawn with the shapes, the order and the
//   float32 arithmetic of square.py (which also draws on the CPU and moves the values to the
//   device). With the same seed the stream is the official one, so on the same model and
//   batch the run follows the official run step for step (up to float rounding in the model).
// - Windows start at random_int(0, h - s), which never reaches the last row and column unless
//   s = h: the official code has this off-by-one, and so does this one.
import { noGrad } from "../tensor/autograd.js";
import { where } from "../tensor/combine.js";
import { fullLike, ones, rand, scalar, zeros, zerosLike } from "../tensor/creation.js";
import { Generator } from "../tensor/generator.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { Attack, type Classifier, checkCount, checkEps, deviceOf, type Norm } from "./attack.js";
import { ceLoss, maxOtherLogit, trueLogit } from "./losses.js";
import { defaultEps } from "./pgd.js";
import { perSample } from "./projections.js";

/** What Square minimises: the margin z_y - max_{j != y} z_j (AutoAttack's choice) or -CE. */
export type SquareLoss = "margin" | "ce";

export interface SquareOptions {
  /** Default 8/255 for L-inf, 0.5 for L2. */
  eps?: number;
  /** Default 'linf'. */
  norm?: Norm;
  /**
   * Iterations per restart (square.py's n_queries), one model query per still-robust sample
   * each, after one query at the initial point. Default 5000 (AutoAttack's standard version).
   */
  queries?: number;
  /** Fraction of the image the first windows cover (square.py's p_init). Default 0.8. */
  pInit?: number;
  /** Independent runs; each attacks only the samples that all earlier runs left robust. Default 1. */
  restarts?: number;
  /** Default 'margin' (AutoAttack's). */
  loss?: SquareLoss;
  /**
   * The run draws from a private CPU generator seeded with this at the start of every run(),
   * as square.py reseeds at every perturb() call; the global generator is neither used nor
   * advanced. Default 0, SquareAttack's default. null: draw from the global generator.
   */
  seed?: number | null;
  /**
   * Stretch the schedule of p from its 10000-iteration scale to `queries` (square.py's
   * resc_schedule, True in SquareAttack's own default). Default false: AutoAttack's standard
   * version uses the 10000-iteration breakpoints as they are at 5000 queries.
   */
  rescaleSchedule?: boolean;
}

/** square.py's p_selection: p_init halves after these iterations (on a 10000-iteration scale). */
export const SQUARE_P_BREAKPOINTS: readonly number[] = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];

/**
 * The window fraction p at iteration `iteration` (0-based) of a run of `queries` iterations:
 * pInit / 2^k with k the number of breakpoints strictly below the (optionally rescaled)
 * iteration, as square.py's p_selection.
 */
export function squareP(pInit: number, iteration: number, queries: number, rescale = false): number {
  // int(it / n_queries * 10000): the same double operations in the same order, then truncation.
  const it = rescale ? Math.trunc((iteration / queries) * 10000) : iteration;
  let halvings = 0;
  for (const b of SQUARE_P_BREAKPOINTS) if (it > b) halvings++;
  return pInit / 2 ** halvings;
}

/** Python's round(): halves go to the even neighbour (round(2.5) = 2), unlike Math.round. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const frac = v - f;
  if (frac !== 0.5) return frac < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Side of the square window for fraction p on images [C, H, W]: round(sqrt(p * C*H*W / C)),
 * at least 1 (L-inf) or at least 3 and odd (L2), at most min(H, W). This is square.py's
 * formula, so p is the fraction of pixels of one channel a window covers.
 */
export function squareWindowSide(p: number, channels: number, height: number, width: number, norm: Norm): number {
  const features = channels * height * width;
  const side = roundHalfEven(Math.sqrt((p * features) / channels));
  if (norm === "linf") return Math.min(Math.max(side, 1), Math.min(height, width));
  let s = Math.max(side, 3);
  if (s % 2 === 0) s += 1;
  return Math.min(s, Math.min(height, width));
}

/**
 * square.py's eta_rectangles for L2: nested centred rectangles of growing size on a
 * rows x cols grid, the k-th adding 1/(k+1)^2, normalised to unit L2 norm. Computed with
 * float32 tensor ops as the official code does, so that the values agree bit for bit.
 */
function etaRectangles(rows: number, cols: number): Tensor {
  return scope(() => {
    const d = zeros([rows, cols]);
    if (rows === 0 || cols === 0) return d;
    const rowCentre = Math.floor(rows / 2) + 1;
    const colCentre = Math.floor(cols / 2) + 1;
    let r = rowCentre - 1;
    let c = colCentre - 1;
    for (let k = 0; k < Math.max(rowCentre, colCentre); k++) {
      const r0 = Math.max(r, 0);
      const r1 = Math.min(r + 2 * k + 1, rows);
      const c0 = Math.max(c, 0);
      const c1 = Math.min(c + 2 * k + 1, cols);
      // 1.0 / tensor([k + 1])**2 in float32, as square.py computes the increment.
      if (r1 > r0 && c1 > c0)
        d.narrow(0, r0, r1 - r0)
          .narrow(1, c0, c1 - c0)
          .add_(scalar(1).div(scalar((k + 1) ** 2)));
      r--;
      c--;
    }
    return d.div(d.pow(2).sum([0, 1], true).sqrt());
  });
}

/**
 * square.py's eta(s) for L2 before its random transposition: the upper half of the s x s
 * window holds positive rectangles, the lower half negative ones, unit L2 norm overall
 * (float32, CPU).
 */
export function squareEta(s: number): Tensor {
  return scope(() => {
    const d = zeros([s, s]);
    const half = Math.floor(s / 2);
    if (half > 0) d.narrow(0, 0, half).copy_(etaRectangles(half, s));
    d.narrow(0, half, s - half).copy_(etaRectangles(s - half, s).neg());
    return d.div(d.pow(2).sum([0, 1], true).sqrt());
  });
}

/** The state of one single run: the samples still robust, compacted in their original order. */
interface Active {
  /** Positions of these samples in the run's batch (int64). */
  idx: Tensor;
  x: Tensor;
  y: Tensor;
  best: Tensor;
  margin: Tensor;
  loss: Tensor;
  /** Same positions as idx, in JS (for the query counts). */
  positions: number[];
}

interface SingleRun {
  best: Tensor;
  loss: Tensor;
  queries: number[];
}

export class Square<M extends Classifier = Classifier> extends Attack<M> {
  readonly eps: number;
  readonly norm: Norm;
  readonly queries: number;
  readonly pInit: number;
  readonly restarts: number;
  readonly loss: SquareLoss;
  readonly seed: number | null;
  readonly rescaleSchedule: boolean;
  #queryCounts: number[] = [];
  #generator: Generator | undefined;

  constructor(model: M, options: SquareOptions = {}) {
    super(model);
    this.norm = options.norm ?? "linf";
    this.eps = options.eps ?? defaultEps(this.norm);
    checkEps("Square", this.eps, this.norm);
    this.queries = options.queries ?? 5000;
    checkCount("Square", "queries", this.queries, 0);
    this.pInit = options.pInit ?? 0.8;
    if (!(this.pInit > 0 && this.pInit <= 1)) throw new RangeError(`Square: pInit must be in (0, 1], got ${this.pInit}`);
    this.restarts = options.restarts ?? 1;
    checkCount("Square", "restarts", this.restarts, 1);
    this.loss = options.loss ?? "margin";
    if (this.loss !== "margin" && this.loss !== "ce")
      throw new TypeError(`Square: loss must be 'margin' or 'ce', got '${String(this.loss)}'`);
    this.seed = options.seed === undefined ? 0 : options.seed;
    if (this.seed !== null) checkCount("Square", "seed", this.seed, 0);
    this.rescaleSchedule = options.rescaleSchedule ?? false;
  }

  get name(): string {
    return `Square (${this.norm}, ${this.queries} queries)`;
  }

  /**
   * Model queries the last run() spent on each sample: 0 for samples misclassified at x,
   * otherwise 1 for the initial point plus 1 per iteration in which the sample was still
   * robust, summed over restarts (square.py's n_queries). The clean forward is not counted.
   */
  get queryCounts(): number[] {
    return this.#queryCounts.slice();
  }

  // ---- random draws: square.py's helpers, on the CPU in float32 ----------------------------

  #rand(shape: readonly number[]): Tensor {
    return this.#generator === undefined ? rand(shape) : rand(shape, { generator: this.#generator });
  }

  /** random_choice: sign(2u - 1), i.e. ±1 (0 when u is exactly 0.5, as in the official code). */
  #randomChoice(shape: readonly number[]): Tensor {
    return scope(() => this.#rand(shape).mul(2).sub(1).sign());
  }

  /** random_int(low, high): trunc(low + (high - low) * u) in float32, so in [low, high - 1] when high > low. */
  #randomInt(low: number, high: number): number {
    return scope(() =>
      this.#rand([1])
        .mul(high - low)
        .add(low)
        .long()
        .item(),
    );
  }

  /** eta(s) from its precomputed base: transposed when a fresh uniform exceeds 0.5. */
  #eta(e: Tensor): Tensor {
    const flip = scope(() => this.#rand([1]).gt(0.5).item()) !== 0;
    return flip ? e.transpose(0, 1) : e;
  }

  // ---- objective ----------------------------------------------------------------------------

  /** square.py's margin_and_loss: (z_y - max_{j != y} z_j, the loss to minimise). */
  #marginAndLoss(x: Tensor, y: Tensor): [Tensor, Tensor] {
    return scope(() => {
      const logits = this.model.forward(x);
      const margin = trueLogit(logits, y).sub(maxOtherLogit(logits, y));
      return [margin, this.loss === "ce" ? ceLoss(logits, y).neg() : margin];
    });
  }

  // ---- one run ------------------------------------------------------------------------------

  /** The initial point: vertical stripes of ±eps (L-inf) or the tiled pseudo-Gaussian (L2). */
  #init(x: Tensor): Tensor {
    return scope(() => {
      const [n, c, h, w] = x.shape as [number, number, number, number];
      if (this.norm === "linf") {
        const stripes = this.#randomChoice([n, c, 1, w]).to(x.dtype).to(deviceOf(x));
        return x.add(stripes.mul(this.eps)).clamp(0, 1);
      }
      // A grid of tiles of side h/5 (at least 1 here; the official code divides by zero below
      // 5 pixels), each an eta pattern with one random sign per sample and channel. The random
      // draws happen for every tile of the official loop, also for tiles that fall outside
      // the image, so that the stream stays the official one.
      const s = Math.max(Math.floor(h / 5), 1);
      const start = Math.max(Math.floor((h - s * 5) / 2), 0);
      const etaBase = squareEta(s);
      const delta = zerosLike(x);
      let top = start;
      for (let i = 0; i < Math.floor(h / s); i++) {
        let left = start;
        for (let j = 0; j < Math.floor(w / s); j++) {
          scope(() => {
            const e = this.#eta(etaBase).reshape(1, 1, s, s);
            const tile = e
              .mul(this.#randomChoice([n, c, 1, 1]))
              .to(x.dtype)
              .to(deviceOf(x));
            // Tiles are cut at the border (the official code raises on a partial tile).
            const rows = Math.min(top + s, h) - top;
            const cols = Math.min(left + s, w) - left;
            if (rows > 0 && cols > 0) {
              delta
                .narrow(2, top, rows)
                .narrow(3, left, cols)
                .add_(tile.narrow(2, 0, rows).narrow(3, 0, cols));
            }
          });
          left += s;
        }
        top += s;
      }
      return x.add(this.#normalize(delta).mul(this.eps)).clamp(0, 1);
    });
  }

  /** d / (|d|_2 + 1e-12) per sample (square.py's normalize for L2). */
  #normalize(d: Tensor): Tensor {
    return scope(() => d.div(this.#l2(d).add(1e-12)));
  }

  /** |d|_2 per sample as [N, 1, 1, 1] (square.py's lp_norm). */
  #l2(d: Tensor): Tensor {
    return scope(() => d.pow(2).reshape(d.size(0), -1).sum(-1).sqrt().reshape(-1, 1, 1, 1));
  }

  /** The L-inf proposal: one window of ±2 eps per channel on the current best, projected. */
  #proposeLinf(a: Active, s: number): Tensor {
    return scope(() => {
      const [, c, h, w] = a.x.shape as [number, number, number, number];
      const top = this.#randomInt(0, h - s);
      const left = this.#randomInt(0, w - s);
      const values = this.#randomChoice([c, 1, 1])
        .to(a.x.dtype)
        .to(deviceOf(a.x))
        .mul(2 * this.eps);
      const step = zeros([c, h, w], { dtype: a.x.dtype, device: deviceOf(a.x) });
      step
        .narrow(1, top, s)
        .narrow(2, left, s)
        .copy_(values.expand(c, s, s));
      return a.best.add(step).maximum(a.x.sub(this.eps)).minimum(a.x.add(this.eps)).clamp(0, 1);
    });
  }

  /**
   * The L2 proposal: window 1 gets its old content (normalised) plus a fresh eta pattern
   * with one random sign per sample and channel, rescaled so that it also takes the mass of
   * window 2 (which is zeroed) and whatever budget eps^2 - |delta|^2 is left; then delta is
   * renormalised to norm eps and the point clipped to the box. square.py's formulas.
   */
  #proposeL2(a: Active, s: number, etaBase: Map<number, Tensor>): Tensor {
    return scope(() => {
      const [m, c, h, w] = a.x.shape as [number, number, number, number];
      const delta = a.best.sub(a.x);
      const top = this.#randomInt(0, h - s);
      const left = this.#randomInt(0, w - s);
      const mask1 = zerosLike(a.x);
      mask1.narrow(2, top, s).narrow(3, left, s).fill_(1);
      const window1 = delta.narrow(2, top, s).narrow(3, left, s);
      const window1Norm = window1.pow(2).sum([-2, -1], true).sqrt();
      const top2 = this.#randomInt(0, h - s);
      const left2 = this.#randomInt(0, w - s);
      const mask2 = zerosLike(a.x);
      mask2.narrow(2, top2, s).narrow(3, left2, s).fill_(1);
      const imageNorm = this.#l2(delta);
      const windowsNorm = delta.mul(mask1.maximum(mask2)).pow(2).sum([-2, -1], true).sqrt();
      const base = etaBase.get(s);
      if (base === undefined) throw new Error(`Square: no eta pattern for window side ${s}`);
      const e = this.#eta(base).reshape(1, 1, s, s);
      const pattern = e
        .mul(this.#randomChoice([m, c, 1, 1]))
        .to(a.x.dtype)
        .to(deviceOf(a.x));
      let fresh = ones([m, c, s, s], { dtype: a.x.dtype, device: deviceOf(a.x) }).mul(pattern);
      fresh = fresh.add(window1.div(window1Norm.add(1e-12)));
      const budget = fullLike(fresh, this.eps)
        .pow(2)
        .sub(imageNorm.pow(2))
        .maximum(zerosLike(fresh))
        .div(c)
        .add(windowsNorm.pow(2))
        .sqrt();
      fresh = fresh.div(fresh.pow(2).sum([-2, -1], true).sqrt().add(1e-12)).mul(budget);
      delta.narrow(2, top2, s).narrow(3, left2, s).zero_();
      delta.narrow(2, top, s).narrow(3, left, s).copy_(fresh);
      return a.x.add(this.#normalize(delta).mul(this.eps)).clamp(0, 1);
    });
  }

  /** square.py's attack_single_run on samples that are all correctly classified at x. */
  #singleRun(x: Tensor, y: Tensor): SingleRun {
    const n = x.size(0);
    const [, c, h, w] = x.shape as [number, number, number, number];
    const queries = new Array<number>(n).fill(1);
    const best = this.#init(x);
    const [margin0, loss0] = this.#marginAndLoss(best, y);
    const finalLoss = loss0.clone();
    // Eta patterns for every window side the schedule can produce (p takes 10 values).
    const etaBase = new Map<number, Tensor>();
    if (this.norm === "l2") {
      for (let k = 0; k <= SQUARE_P_BREAKPOINTS.length; k++) {
        const s = squareWindowSide(this.pInit / 2 ** k, c, h, w, "l2");
        if (!etaBase.has(s)) etaBase.set(s, squareEta(s));
      }
    }
    let a = this.#select(x, y, best, margin0, loss0);
    for (let it = 0; it < this.queries && a.positions.length > 0; it++) {
      const p = squareP(this.pInit, it, this.queries, this.rescaleSchedule);
      const s = squareWindowSide(p, c, h, w, this.norm);
      const allStillRobust = scope(() => {
        const proposal = this.norm === "linf" ? this.#proposeLinf(a, s) : this.#proposeL2(a, s, etaBase);
        const [margin, loss] = this.#marginAndLoss(proposal, a.y);
        // Lower loss is kept; so is any misclassified proposal, whatever its loss.
        const lower = loss.lt(a.loss);
        a.loss.copy_(where(lower, loss, a.loss));
        const accept = lower.logicalOr(margin.le(0));
        a.margin.copy_(where(accept, margin, a.margin));
        a.best.copy_(where(perSample(accept, a.best), proposal, a.best));
        return a.margin.gt(0).all().item() !== 0;
      });
      for (const i of a.positions) queries[i] = (queries[i] ?? 0) + 1;
      if (!allStillRobust) a = this.#compact(a, best, finalLoss);
    }
    this.#writeBack(a, best, finalLoss, null);
    disposeActive(a);
    return { best, loss: finalLoss, queries };
  }

  /** The initial active set: samples whose initial point is not yet misclassified (margin > 0). */
  #select(x: Tensor, y: Tensor, best: Tensor, margin: Tensor, loss: Tensor): Active {
    return scope(() => {
      const idx = margin.gt(0).nonzero().squeeze(1);
      return {
        idx,
        x: x.indexSelect(0, idx),
        y: y.indexSelect(0, idx),
        best: best.indexSelect(0, idx),
        margin: margin.indexSelect(0, idx),
        loss: loss.indexSelect(0, idx),
        positions: Array.from(idx.toTypedArray(), Number),
      };
    });
  }

  /** Writes the samples that left the active set (rows where keep is false) into the run's tensors. */
  #writeBack(a: Active, best: Tensor, loss: Tensor, keep: Tensor | null): void {
    scope(() => {
      const leave = keep === null ? null : keep.logicalNot().nonzero().squeeze(1);
      const rows = (t: Tensor) => (leave === null ? t : t.indexSelect(0, leave));
      const idx = rows(a.idx);
      if (idx.size(0) === 0) return;
      best.copy_(putRows(best, idx, rows(a.best)));
      loss.copy_(putRows(loss, idx, rows(a.loss)));
    });
  }

  /** Drops the samples whose margin reached <= 0, as square.py re-selects margin_min > 0. */
  #compact(a: Active, best: Tensor, loss: Tensor): Active {
    const next = scope(() => {
      const keep = a.margin.gt(0);
      this.#writeBack(a, best, loss, keep);
      const kept = keep.nonzero().squeeze(1);
      const flags = keep.toTypedArray();
      return {
        idx: a.idx.indexSelect(0, kept),
        x: a.x.indexSelect(0, kept),
        y: a.y.indexSelect(0, kept),
        best: a.best.indexSelect(0, kept),
        margin: a.margin.indexSelect(0, kept),
        loss: a.loss.indexSelect(0, kept),
        positions: a.positions.filter((_, i) => flags[i] !== 0),
      };
    });
    disposeActive(a);
    return next;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    if (x.ndim !== 4) throw new TypeError(`${this.name}: x must be images [N, C, H, W], got shape [${x.shape.join(", ")}]`);
    const n = x.size(0);
    this.#queryCounts = new Array<number>(n).fill(0);
    this.#generator = this.seed === null ? undefined : new Generator({ seed: this.seed });
    try {
      return noGrad(() =>
        scope(() => {
          const adv = x.clone();
          // Samples misclassified at x are never attacked (square.py's acc = predict(x) == y).
          const robust = scope(() => this.model.forward(x).argmax(1).eq(y));
          // The lowest loss reached so far per sample, to return the strongest point of the
          // samples that stay robust (the official code returns x for them).
          const bestLoss = fullLike(y, Number.POSITIVE_INFINITY, { dtype: x.dtype });
          for (let r = 0; r < this.restarts; r++) {
            const done = scope(() => {
              const idx = robust.nonzero().squeeze(1);
              if (idx.size(0) === 0) return true;
              const xs = x.indexSelect(0, idx);
              const ys = y.indexSelect(0, idx);
              const run = this.#singleRun(xs, ys);
              const positions = idx.toTypedArray();
              run.queries.forEach((q, i) => {
                const at = Number(positions[i]);
                this.#queryCounts[at] = (this.#queryCounts[at] ?? 0) + q;
              });
              // Misclassified at the end (square.py's final check), or robust at a lower loss
              // than any earlier restart reached: the point replaces the current one.
              const fooled = this.model.forward(run.best).argmax(1).ne(ys);
              const better = fooled.logicalOr(run.loss.lt(bestLoss.indexSelect(0, idx)));
              const rows = better.nonzero().squeeze(1);
              const at = idx.indexSelect(0, rows);
              adv.copy_(putRows(adv, at, run.best.indexSelect(0, rows)));
              bestLoss.copy_(putRows(bestLoss, at, run.loss.indexSelect(0, rows)));
              const broken = idx.indexSelect(0, fooled.nonzero().squeeze(1));
              robust.copy_(putRows(robust, broken, zeros([broken.size(0)], { dtype: "bool", device: deviceOf(x) })));
              return false;
            });
            if (done) break;
          }
          return adv;
        }),
      );
    } finally {
      this.#generator?.dispose();
      this.#generator = undefined;
    }
  }
}

/** full with full[idx[i]] = rows[i] (out of place; rows has full's shape past dim 0). */
function putRows(full: Tensor, idx: Tensor, rows: Tensor): Tensor {
  return scope(() => {
    if (idx.size(0) === 0) return full.clone();
    const index = idx.reshape(idx.size(0), ...new Array<number>(rows.ndim - 1).fill(1)).expand(...rows.shape);
    return full.scatter(0, index, rows);
  });
}

function disposeActive(a: Active): void {
  for (const t of [a.idx, a.x, a.y, a.best, a.margin, a.loss]) t.dispose();
}
