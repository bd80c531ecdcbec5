// One certificate kind applied batch by batch: per sample and radius, is the sample's label
// provably the prediction everywhere in the ball (within [0, 1])? Shared by `rmoe certify`
// (run-certify.ts, over a dataset) and by `rmoe eval`'s certified-accuracy metric (over the
// evaluation's own batches), so both count a certificate the same way.
//   ibp        interval bounds (CROWN-IBP with refine), L-inf; a MoE's route reasoning included
//   smoothing  randomized smoothing (Cohen et al.), L2, probabilistic at confidence 1 - alpha
//   lipschitz  the paper's Lipschitz-margin radius (Thm 5.4; Thm 5.5 for a dual model), L-inf or
//              L2; a certified sample must also be classified correctly by the model itself
// The caller puts the model in eval mode (certificates are of the eval-mode function).
import { DualModel } from "../models/dual.js";
import type { Module, UnaryModule } from "../nn/module.js";
import { noGrad } from "../tensor/autograd.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { ibpCertify } from "./ibp.js";
import { type DualAlphaCertificate, dualLipschitzRadius, lipschitzRadius, type ModelConstants } from "./lipschitz-radius.js";
import { ABSTAIN, Smooth } from "./smoothing.js";

export type CertifyMethod = "ibp" | "smoothing" | "lipschitz";
export const CERTIFY_METHODS: readonly CertifyMethod[] = ["ibp", "smoothing", "lipschitz"];

/** How to certify: the method and its settings (radii are given per call). */
export interface CertifierOptions {
  method: CertifyMethod;
  /** lipschitz only: 'linf' (default) or 'l2'. ibp is always L-inf, smoothing L2. */
  norm?: "linf" | "l2";
  /** Smoothing: noise std (0.25), samples for selection (100) and estimation (1000), alpha (0.001), seed (0). */
  sigma?: number;
  n0?: number;
  samples?: number;
  alpha?: number;
  seed?: number;
}

/** Per radius and sample: certified correct; radius per sample where the method gives one (0 when wrong or abstaining). */
export interface BatchCertificates {
  certified: boolean[][];
  radius: number[] | null;
}

/** The norm a method certifies in. */
export function certifyNorm(o: Pick<CertifierOptions, "method" | "norm">): "linf" | "l2" {
  return o.method === "ibp" ? "linf" : o.method === "smoothing" ? "l2" : (o.norm ?? "linf");
}

/** Radii must be finite, >= 0 and increasing (a certificate at eps covers every smaller radius). */
export function checkCertifyEps(what: string, eps: readonly number[]): void {
  if (eps.length === 0) throw new RangeError(`${what}: no radius to certify at`);
  for (const [i, e] of eps.entries()) {
    if (!(Number.isFinite(e) && e >= 0)) throw new RangeError(`${what}: eps ${e} must be a finite number >= 0`);
    if (i > 0 && e <= (eps[i - 1] as number)) throw new RangeError(`${what}: eps must be increasing`);
  }
}

export class BatchCertifier {
  readonly options: Readonly<CertifierOptions>;
  readonly norm: "linf" | "l2";
  readonly #model: Module & UnaryModule;
  readonly #smooth: Smooth | null;
  // The layers' constants depend on the weights only: computed on the first batch, then reused.
  #constants: ModelConstants | undefined;
  #dualConstants: { standard: ModelConstants; robust: ModelConstants } | undefined;

  constructor(model: Module & UnaryModule, options: CertifierOptions) {
    if (!["ibp", "smoothing", "lipschitz"].includes(options.method))
      throw new RangeError(`certify: unknown method '${String(options.method)}' (ibp, smoothing or lipschitz)`);
    if (options.norm !== undefined && options.norm !== "linf" && options.norm !== "l2")
      throw new RangeError(`certify: norm must be linf or l2, got '${String(options.norm)}'`);
    this.options = { ...options };
    this.norm = certifyNorm(options);
    this.#model = model;
    this.#smooth =
      options.method === "smoothing" ? new Smooth(model, { sigma: options.sigma ?? 0.25, seed: options.seed ?? 0 }) : null;
  }

  /** Certificates of one batch at each radius of eps (increasing). */
  certify(x: Tensor, y: Tensor, eps: readonly number[]): BatchCertificates {
    return scope(() => {
      const labels = y.toFlatArray();
      if (this.options.method === "ibp") {
        return { certified: ibpCertify(this.#model, x, y, eps, { batchSize: 64 }).certified, radius: null };
      }
      if (this.options.method === "smoothing") {
        const o = this.options;
        const certs = (this.#smooth as Smooth).certifyMany(x, {
          n0: o.n0 ?? 100,
          n: o.samples ?? 1000,
          alpha: o.alpha ?? 0.001,
          batch: 500,
        });
        const radius = certs.map((c, s) => (c.prediction !== ABSTAIN && c.prediction === labels[s] ? c.radius : 0));
        return { certified: eps.map((e) => radius.map((r) => r > e)), radius };
      }
      const radius = this.#lipschitzRadii(x, y);
      return { certified: eps.map((e) => radius.map((r) => r > e)), radius };
    });
  }

  #lipschitzRadii(x: Tensor, y: Tensor): number[] {
    const model = this.#model;
    const ok = noGrad(() => model.forward(x).argmax(1).eq(y).toFlatArray());
    if (model instanceof DualModel) {
      const c = dualLipschitzRadius(model, x, {
        norm: this.norm,
        labels: y,
        ...(this.#dualConstants === undefined
          ? {}
          : { standardConstants: this.#dualConstants.standard, robustConstants: this.#dualConstants.robust }),
      });
      this.#dualConstants = { standard: c.standard.constants, robust: c.robust.constants };
      const a = c.alphas[0] as DualAlphaCertificate;
      return a.radius.map((rad, s) => ((a.correct?.[s] ?? false) && (a.agreesWithModel[s] ?? false) && ok[s] !== 0 ? rad : 0));
    }
    const c = lipschitzRadius(model, x, {
      norm: this.norm,
      labels: y,
      ...(this.#constants === undefined ? {} : { constants: this.#constants }),
    });
    this.#constants = c.constants;
    return c.radius.map((rad, s) => ((c.correct?.[s] ?? false) && (c.agreesWithModel[s] ?? false) && ok[s] !== 0 ? rad : 0));
  }

  /** Restarts smoothing's noise stream from seed (so a batch's certificates need not depend on the batches before it). */
  reseed(seed: number): void {
    this.#smooth?.generator.manualSeed(seed);
  }

  dispose(): void {
    this.#smooth?.dispose();
  }
}
