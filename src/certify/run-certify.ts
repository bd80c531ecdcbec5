// Certified accuracy of a model on a dataset with one certificate kind, per sample and per
// radius: the library side of `rmoe certify` (and of any report that wants certificates).
// Every method answers the same question per sample and radius: is the sample's label
// provably the prediction everywhere in the ball (within [0, 1])?
//   ibp        interval bounds (CROWN-IBP with refine), L-inf; a MoE's route reasoning included
//   smoothing  randomized smoothing (Cohen et al.), L2, probabilistic at confidence 1 - alpha
//   lipschitz  the paper's Lipschitz-margin radius (Thm 5.4; Thm 5.5 for a dual model), L-inf or
//              L2; a certified sample must also be classified correctly by the model itself

import { withEvalMode } from "../attacks/attack.js";
import type { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import { DualModel } from "../models/dual.js";
import type { Module, UnaryModule } from "../nn/module.js";
import { noGrad } from "../tensor/autograd.js";
import { dispose, scope } from "../tensor/scope.js";
import { ibpCertify } from "./ibp.js";
import type { ModelConstants } from "./lipschitz-radius.js";
import { type DualAlphaCertificate, dualLipschitzRadius, lipschitzRadius } from "./lipschitz-radius.js";
import { ABSTAIN, Smooth } from "./smoothing.js";

export type CertifyMethod = "ibp" | "smoothing" | "lipschitz";

export interface CertifyRunOptions {
  method: CertifyMethod;
  /** lipschitz only: 'linf' (default) or 'l2'. */
  norm?: "linf" | "l2";
  /** Radii, increasing (L-inf for ibp, L2 for smoothing). */
  eps: readonly number[];
  /** First n images (default all). */
  n?: number;
  batchSize?: number;
  /** Smoothing: noise std (0.25), samples for selection (100) and estimation (1000), alpha (0.001), seed (0). */
  sigma?: number;
  n0?: number;
  samples?: number;
  alpha?: number;
  seed?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface CertifyRunResult {
  method: CertifyMethod;
  norm: "linf" | "l2";
  n: number;
  cleanAccuracy: number;
  eps: number[];
  /** certifiedAccuracy[i]: fraction of samples certified correct at eps[i]. */
  certifiedAccuracy: number[];
  /** certified[i][s]: sample s is certified correct at eps[i]. */
  certified: boolean[][];
  /** smoothing and lipschitz: each sample's certified radius (0 when abstaining or wrong). */
  radius?: number[];
  seconds: number;
}

export function certifyDataset(model: Module & UnaryModule, dataset: ImageDataset, o: CertifyRunOptions): CertifyRunResult {
  const t0 = performance.now();
  const eps = [...o.eps];
  for (const [i, e] of eps.entries()) {
    if (!(Number.isFinite(e) && e >= 0)) throw new RangeError(`certify: eps ${e} must be a finite number >= 0`);
    if (i > 0 && e <= (eps[i - 1] as number)) throw new RangeError("certify: eps must be increasing");
  }
  const total = Math.min(o.n ?? dataset.length, dataset.length);
  const loader = new DataLoader(dataset, { batchSize: o.batchSize ?? 100, shuffle: false, workers: 0 });
  const certified: boolean[][] = eps.map(() => []);
  const radius: number[] = [];
  let clean = 0;
  let done = 0;
  const smooth = o.method === "smoothing" ? new Smooth(model, { sigma: o.sigma ?? 0.25, seed: o.seed ?? 0 }) : null;
  const lipNorm = o.norm ?? "linf";
  // The layers' constants depend on the weights only: computed on the first batch, then reused.
  let constants: ModelConstants | undefined;
  let dualConstants: { standard: ModelConstants; robust: ModelConstants } | undefined;
  try {
    withEvalMode(model, () => {
      for (const batch of loader.epoch(0)) {
        if (done >= total) {
          dispose(batch);
          break;
        }
        scope(() => {
          const take = Math.min(batch.x.size(0), total - done);
          const x = batch.x.narrow(0, 0, take);
          const y = batch.y.narrow(0, 0, take);
          const labels = y.toFlatArray();
          const ok = noGrad(() => model.forward(x).argmax(1).eq(y).toFlatArray());
          clean += ok.filter((v) => v !== 0).length;
          if (o.method === "lipschitz") {
            const radii = (() => {
              if (model instanceof DualModel) {
                const c = dualLipschitzRadius(model, x, {
                  norm: lipNorm,
                  labels: y,
                  ...(dualConstants === undefined
                    ? {}
                    : { standardConstants: dualConstants.standard, robustConstants: dualConstants.robust }),
                });
                dualConstants = { standard: c.standard.constants, robust: c.robust.constants };
                const a = c.alphas[0] as DualAlphaCertificate;
                return a.radius.map((rad, s) =>
                  (a.correct?.[s] ?? false) && (a.agreesWithModel[s] ?? false) && ok[s] !== 0 ? rad : 0,
                );
              }
              const c = lipschitzRadius(model, x, {
                norm: lipNorm,
                labels: y,
                ...(constants === undefined ? {} : { constants }),
              });
              constants = c.constants;
              return c.radius.map((rad, s) =>
                (c.correct?.[s] ?? false) && (c.agreesWithModel[s] ?? false) && ok[s] !== 0 ? rad : 0,
              );
            })();
            radius.push(...radii);
            eps.forEach((e, i) => {
              certified[i]?.push(...radii.map((rad) => rad > e));
            });
          } else if (o.method === "ibp") {
            const r = ibpCertify(model, x, y, eps, { batchSize: 64 });
            r.certified.forEach((row, i) => {
              certified[i]?.push(...row);
            });
          } else {
            const certs = (smooth as Smooth).certifyMany(x, {
              n0: o.n0 ?? 100,
              n: o.samples ?? 1000,
              alpha: o.alpha ?? 0.001,
              batch: 500,
            });
            certs.forEach((c, s) => {
              const right = c.prediction !== ABSTAIN && c.prediction === labels[s];
              radius.push(right ? c.radius : 0);
              eps.forEach((e, i) => {
                certified[i]?.push(right && c.radius > e);
              });
            });
          }
          done += take;
        });
        dispose(batch);
        o.onProgress?.(done, total);
      }
    });
  } finally {
    loader.close();
    smooth?.dispose();
  }
  return {
    method: o.method,
    norm: o.method === "ibp" ? "linf" : o.method === "smoothing" ? "l2" : lipNorm,
    n: done,
    cleanAccuracy: done === 0 ? 0 : clean / done,
    eps,
    certifiedAccuracy: certified.map((row) => (done === 0 ? 0 : row.filter(Boolean).length / done)),
    certified,
    ...(o.method !== "ibp" ? { radius } : {}),
    seconds: (performance.now() - t0) / 1000,
  };
}
