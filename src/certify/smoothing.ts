// Randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019): the smoothed classifier
//   g(x) = argmax_c P(f(x + e) = c),  e ~ N(0, sigma^2 I),
// of any base classifier f (a MoE, a dual model, a ResNet), with Cohen et al.'s Monte-Carlo
// PREDICT (a binomial test, abstaining when the top two classes are not separated) and
// CERTIFY (select the class with n0 samples, bound its probability from below with n fresh
// samples and Clopper-Pearson, radius sigma * Phi^-1(pA_lower)). Theorem 1 of the paper: if
// pA_lower > 1/2 then g(x + d) = cA for every ||d||_2 < sigma * Phi^-1(pA_lower). The
// statement is probabilistic: with probability at least 1 - alpha over the noise draws,
// CERTIFY's answer (when it does not abstain) is correct about g.
//
// Noise is added in the model's input space ([0, 1] pixels, before the model's own
// normalisation, as in the paper), drawn from a seeded Generator of its own so that a run is
// reproducible and never advances the global stream (dropout, shuffling and attacks elsewhere
// see the same numbers with or without certification in between). Noise is drawn on the CPU
// (LibTorch generators here are CPU-only) and copied to the model's device, which also makes
// CPU and CUDA runs draw the same noise.
import { type Classifier, withEvalMode } from "../attacks/attack.js";
import { noGrad } from "../tensor/autograd.js";
import { randn } from "../tensor/creation.js";
import { Generator } from "../tensor/generator.js";
import { scope } from "../tensor/scope.js";
import type { Device, Tensor } from "../tensor/tensor.js";
import { binomialTestHalf, clopperPearsonLower } from "./clopper-pearson.js";
import { normalQuantile } from "./normal.js";

/** The class index of an abstention (PREDICT and CERTIFY both may abstain). */
export const ABSTAIN = -1;

/** The paper's settings (Cohen et al. section 4): sigma 0.25, n0 100, n 100,000, alpha 0.001. */
export const PAPER_SMOOTHING = { sigma: 0.25, n0: 100, n: 100_000, alpha: 0.001, batch: 1000 } as const;

/**
 * Quick settings for development runs: with n = 1,000 and alpha = 0.001 the largest radius
 * that can be certified is sigma * Phi^-1(0.001^(1/1000)) = 2.4 sigma (0.6 at sigma 0.25),
 * against 3.8 sigma with the paper's n; certified accuracy at small radii is close to the
 * paper's setting, at large radii it is an underestimate.
 */
export const QUICK_SMOOTHING = { sigma: 0.25, n0: 100, n: 1000, alpha: 0.001, batch: 500 } as const;

export interface SmoothOptions {
  /** Standard deviation of the Gaussian noise, in input units ([0, 1] pixels). Default 0.25. */
  sigma?: number;
  /**
   * The noise stream. Not disposed by Smooth (the caller owns it). Default: a Generator owned
   * by this Smooth, seeded with `seed`, released by dispose().
   */
  generator?: Generator;
  /** Seed of the owned generator when no `generator` is given. Default 0. */
  seed?: number | bigint;
}

/** What PREDICT returns for one input. */
export interface SmoothPrediction {
  /** The predicted class, or ABSTAIN. */
  prediction: number;
  abstained: boolean;
  /** How often the base classifier chose each class among the n noisy copies. */
  counts: number[];
  /** Two-sided binomial-test p-value of the top count against the runner-up (abstain if > alpha). */
  pValue: number;
  n: number;
  alpha: number;
}

/** What CERTIFY returns for one input. */
export interface SmoothCertificate {
  /** The certified class, or ABSTAIN. */
  prediction: number;
  abstained: boolean;
  /**
   * L2 radius: g is constant (= prediction) on the open ball of this radius around x, with
   * probability at least 1 - alpha over the noise. 0 when abstaining.
   */
  radius: number;
  /** The class chosen from the selection samples (reported even when abstaining). */
  selected: number;
  /** One-sided Clopper-Pearson lower bound on P(f(x + e) = selected), confidence 1 - alpha. */
  pALower: number;
  /** Class counts of the n0 selection samples. */
  selectionCounts: number[];
  /** Class counts of the n estimation samples (counts[selected] is the number of successes). */
  counts: number[];
  n0: number;
  n: number;
  alpha: number;
  sigma: number;
  /** Wall-clock milliseconds spent on this input. */
  ms: number;
}

export interface CertifyManyOptions {
  n0?: number;
  n?: number;
  alpha?: number;
  batch?: number;
  /** Called after each input with its index and certificate (progress bars, logs). */
  onResult?: (index: number, certificate: SmoothCertificate) => void;
}

function checkInteger(what: string, name: string, v: number, min: number): void {
  if (!(Number.isSafeInteger(v) && v >= min)) throw new RangeError(`${what}: ${name} must be an integer >= ${min}, got ${v}`);
}

function checkAlpha(what: string, alpha: number): void {
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`${what}: alpha must be in (0, 1), got ${alpha}`);
}

/** Index of the largest count, the lowest index among ties (as argmax). */
function argmaxCount(counts: readonly number[]): number {
  let best = 0;
  for (let c = 1; c < counts.length; c++) if ((counts[c] as number) > (counts[best] as number)) best = c;
  return best;
}

/**
 * A base classifier smoothed with isotropic Gaussian noise. The model runs in eval mode during
 * every call (BatchNorm statistics, no dropout or router noise: the base classifier f must be a
 * fixed function for the theorem to apply), and each module's mode is put back afterwards.
 */
export class Smooth<M extends Classifier = Classifier> {
  readonly base: M;
  readonly sigma: number;
  readonly #generator: Generator;
  readonly #ownsGenerator: boolean;

  constructor(base: M, options: SmoothOptions = {}) {
    const sigma = options.sigma ?? PAPER_SMOOTHING.sigma;
    if (!(Number.isFinite(sigma) && sigma > 0)) throw new RangeError(`Smooth: sigma must be a finite number > 0, got ${sigma}`);
    this.base = base;
    this.sigma = sigma;
    if (options.generator !== undefined) {
      if (options.seed !== undefined) throw new TypeError("Smooth: give either generator or seed, not both");
      this.#generator = options.generator;
      this.#ownsGenerator = false;
    } else {
      this.#generator = new Generator({ seed: options.seed ?? 0 });
      this.#ownsGenerator = true;
    }
  }

  /** The noise stream (its state can be saved with getState() to resume a run exactly). */
  get generator(): Generator {
    return this.#generator;
  }

  /**
   * Counts of the base classifier's predictions on num noisy copies of x, drawn `batch` at a
   * time. x is one input with a batch dimension of 1 ([1, C, H, W] for images). The counts
   * depend on the generator's state and on `batch` (LibTorch fills a normal tensor in blocks,
   * so splitting the same draws differently changes them); the same seed, call sequence and
   * batch give bit-identical counts.
   */
  sampleCounts(x: Tensor, num: number, batch: number = PAPER_SMOOTHING.batch): number[] {
    const what = "Smooth.sampleCounts";
    checkInput(what, x);
    checkInteger(what, "num", num, 0);
    checkInteger(what, "batch", batch, 1);
    return withEvalMode(this.base, () => noGrad(() => this.#counts(x, num, batch)));
  }

  #counts(x: Tensor, num: number, batch: number): number[] {
    const rest = x.shape.slice(1);
    const device = x.device as Device;
    let counts: number[] | null = null;
    for (let done = 0; done < num; ) {
      const b = Math.min(batch, num - done);
      const batchCounts = scope(() => {
        let noise = randn([b, ...rest], { dtype: x.dtype, generator: this.#generator });
        if (device !== "cpu") noise = noise.to(device);
        // noise becomes the model input in place: one batch-sized buffer instead of three.
        const input = noise.mul_(this.sigma).add_(x);
        const logits = this.base.forward(input);
        if (logits.ndim !== 2 || logits.size(0) !== b) {
          throw new TypeError(`Smooth: the base classifier must return logits [${b}, K], got shape [${logits.shape.join(", ")}]`);
        }
        return logits.argmax(1).bincount(logits.size(1)).toFlatArray();
      });
      if (counts === null) counts = batchCounts;
      else for (let c = 0; c < counts.length; c++) counts[c] = (counts[c] as number) + (batchCounts[c] as number);
      done += b;
    }
    // num = 0 (allowed for symmetry) never ran the model, so the class count is unknown.
    return counts ?? [];
  }

  /**
   * Cohen et al.'s PREDICT: the most frequent class among n noisy copies if a two-sided
   * binomial test rejects "the top two classes are equally likely" at level alpha, else
   * ABSTAIN. The probability of returning a class other than g(x) is at most alpha.
   */
  predict(x: Tensor, n: number, alpha: number, batch: number = PAPER_SMOOTHING.batch): SmoothPrediction {
    const what = "Smooth.predict";
    checkInput(what, x);
    checkInteger(what, "n", n, 1);
    checkAlpha(what, alpha);
    checkInteger(what, "batch", batch, 1);
    const counts = this.sampleCounts(x, n, batch);
    const top = argmaxCount(counts);
    let runnerUp = 0;
    for (let c = 0; c < counts.length; c++) if (c !== top) runnerUp = Math.max(runnerUp, counts[c] as number);
    const nA = counts[top] as number;
    const pValue = binomialTestHalf(nA, nA + runnerUp);
    const abstained = pValue > alpha;
    return { prediction: abstained ? ABSTAIN : top, abstained, counts, pValue, n, alpha };
  }

  /**
   * Cohen et al.'s CERTIFY: select cA from n0 noisy copies, count it among n fresh ones, bound
   * P(f(x + e) = cA) from below with a one-sided Clopper-Pearson bound at confidence 1 - alpha,
   * and certify radius sigma * Phi^-1(pA_lower) if that bound exceeds 1/2, else ABSTAIN. The
   * selection samples are not reused for the estimate (that would bias the bound).
   */
  certify(x: Tensor, n0: number, n: number, alpha: number, batch: number = PAPER_SMOOTHING.batch): SmoothCertificate {
    const what = "Smooth.certify";
    checkInput(what, x);
    checkInteger(what, "n0", n0, 1);
    checkInteger(what, "n", n, 1);
    checkAlpha(what, alpha);
    checkInteger(what, "batch", batch, 1);
    const start = performance.now();
    const { selectionCounts, counts } = withEvalMode(this.base, () =>
      noGrad(() => ({ selectionCounts: this.#counts(x, n0, batch), counts: this.#counts(x, n, batch) })),
    );
    const selected = argmaxCount(selectionCounts);
    const pALower = clopperPearsonLower(counts[selected] as number, n, alpha);
    // At pA_lower = 1/2 exactly the radius would be 0: nothing is certified, so abstain.
    const abstained = !(pALower > 0.5);
    return {
      prediction: abstained ? ABSTAIN : selected,
      abstained,
      radius: abstained ? 0 : this.sigma * normalQuantile(pALower),
      selected,
      pALower,
      selectionCounts,
      counts,
      n0,
      n,
      alpha,
      sigma: this.sigma,
      ms: performance.now() - start,
    };
  }

  /** certify() for every row of xs [N, ...], in order (one noise stream, so order matters). */
  certifyMany(xs: Tensor, options: CertifyManyOptions = {}): SmoothCertificate[] {
    if (xs.ndim < 2) throw new TypeError(`Smooth.certifyMany: xs must be a batch [N, ...], got shape [${xs.shape.join(", ")}]`);
    const n0 = options.n0 ?? PAPER_SMOOTHING.n0;
    const n = options.n ?? PAPER_SMOOTHING.n;
    const alpha = options.alpha ?? PAPER_SMOOTHING.alpha;
    const batch = options.batch ?? PAPER_SMOOTHING.batch;
    const out: SmoothCertificate[] = [];
    for (let i = 0; i < xs.size(0); i++) {
      const cert = scope(() => this.certify(xs.narrow(0, i, 1), n0, n, alpha, batch));
      out.push(cert);
      options.onResult?.(i, cert);
    }
    return out;
  }

  /** Releases the generator if this Smooth created it (a caller's generator stays open). */
  dispose(): void {
    if (this.#ownsGenerator) this.#generator.dispose();
  }
}

function checkInput(what: string, x: Tensor): void {
  if (x.ndim < 2 || x.size(0) !== 1) {
    throw new TypeError(`${what}: x must be one input with a batch dimension of 1 ([1, ...]), got shape [${x.shape.join(", ")}]`);
  }
  if (x.dtype !== "float32" && x.dtype !== "float64")
    throw new TypeError(`${what}: x must be float32 or float64, got ${x.dtype}`);
}

/**
 * Certified accuracy at each L2 radius: the fraction of inputs whose certificate is the true
 * label with radius > r (abstentions count as wrong). Cohen et al.'s analysis uses >=; the two
 * differ only when a radius equals r exactly, and the theorem's ball is open.
 */
export function certifiedAccuracy(
  certificates: readonly Pick<SmoothCertificate, "prediction" | "radius">[],
  labels: readonly number[],
  radii: readonly number[],
): number[] {
  if (certificates.length !== labels.length) {
    throw new RangeError(`certifiedAccuracy: ${certificates.length} certificates but ${labels.length} labels`);
  }
  return radii.map((r) => {
    if (!(r >= 0)) throw new RangeError(`certifiedAccuracy: radii must be >= 0, got ${r}`);
    if (certificates.length === 0) return 0;
    let hits = 0;
    certificates.forEach((c, i) => {
      if (c.prediction !== ABSTAIN && c.prediction === labels[i] && c.radius > r) hits++;
    });
    return hits / certificates.length;
  });
}
