// Certified accuracy of a model on a dataset with one certificate kind, per sample and per
// radius: the library side of `rmoe certify`. The per-batch work is BatchCertifier's
// (batch-certifier.ts), which `rmoe eval`'s certified-accuracy metric uses too.
import { withEvalMode } from "../attacks/attack.js";
import type { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import type { Module, UnaryModule } from "../nn/module.js";
import { noGrad } from "../tensor/autograd.js";
import { dispose, scope } from "../tensor/scope.js";
import { BatchCertifier, type CertifierOptions, type CertifyMethod, checkCertifyEps } from "./batch-certifier.js";

export type { CertifyMethod } from "./batch-certifier.js";

export interface CertifyRunOptions extends CertifierOptions {
  /** Radii, increasing (L-inf for ibp, L2 for smoothing). */
  eps: readonly number[];
  /** First n images (default all). */
  n?: number;
  batchSize?: number;
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
  checkCertifyEps("certify", eps);
  const total = Math.min(o.n ?? dataset.length, dataset.length);
  const loader = new DataLoader(dataset, { batchSize: o.batchSize ?? 100, shuffle: false, workers: 0 });
  const certified: boolean[][] = eps.map(() => []);
  const radius: number[] = [];
  let clean = 0;
  let done = 0;
  const certifier = new BatchCertifier(model, o);
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
          clean += noGrad(() => model.forward(x).argmax(1).eq(y).sum().item());
          const c = certifier.certify(x, y, eps);
          c.certified.forEach((row, i) => {
            certified[i]?.push(...row);
          });
          if (c.radius !== null) radius.push(...c.radius);
          done += take;
        });
        dispose(batch);
        o.onProgress?.(done, total);
      }
    });
  } finally {
    loader.close();
    certifier.dispose();
  }
  return {
    method: o.method,
    norm: certifier.norm,
    n: done,
    cleanAccuracy: done === 0 ? 0 : clean / done,
    eps,
    certifiedAccuracy: certified.map((row) => (done === 0 ? 0 : row.filter(Boolean).length / done)),
    certified,
    ...(o.method !== "ibp" ? { radius } : {}),
    seconds: (performance.now() - t0) / 1000,
  };
}
