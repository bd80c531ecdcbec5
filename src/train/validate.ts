// Per-epoch validation on the held-out split: SA and PGD RA (best iterate, eval mode) of the
// model being trained (a dual model end to end). Its randomness comes from its own seed, and
// the global generator's state is restored afterwards, so validating never changes the
// training stream: a run with validation trains the same weights as one without.
import { PGD } from "../attacks/pgd.js";
import type { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import type { Model } from "../models/config.js";
import { noGrad } from "../tensor/autograd.js";
import { defaultGenerator, Generator } from "../tensor/generator.js";
import { dispose, scope } from "../tensor/scope.js";
import type { TrainConfig } from "./config.js";

export interface ValidationResult {
  n: number;
  cleanAccuracy: number;
  robustAccuracy: number;
  /** What RA was measured with, e.g. "PGD-10 (linf, ce)" at eps. */
  attack: string;
  eps: number;
  seconds: number;
}

export function validate(model: Model, val: ImageDataset, c: TrainConfig, epoch: number): ValidationResult {
  const t0 = performance.now();
  const saved = defaultGenerator.getState();
  const v = c.validation;
  // Its own generator: the validation attack is the same every epoch and draws nothing from
  // the training stream (whose state is also restored below, in case a forward ever does).
  const generator = new Generator({ seed: v.seed + epoch });
  const attack = new PGD(model, { eps: v.eps, alpha: v.stepSize, steps: v.attackSteps, iterate: "best", generator });
  const loader = new DataLoader(val, {
    batchSize: v.batchSize,
    shuffle: false,
    workers: 0,
    ...(c.data.resize > 0 ? { resize: { size: c.data.resize } } : {}),
  });
  let clean = 0;
  let robust = 0;
  let n = 0;
  const wasTraining = model.training;
  try {
    model.eval();
    for (const batch of loader.epoch(0)) {
      scope(() => {
        const ok = noGrad(() => model.forward(batch.x).argmax(1).eq(batch.y));
        clean += ok.sum().item();
        if (v.attackSteps > 0 && v.eps > 0) {
          const adv = attack.run(batch.x, batch.y);
          robust += noGrad(() => model.forward(adv).argmax(1).eq(batch.y).logicalAnd(ok).sum().item());
        } else {
          robust += ok.sum().item();
        }
        n += batch.x.size(0);
      });
      dispose(batch);
    }
  } finally {
    model.train(wasTraining);
    loader.close();
    defaultGenerator.setState(saved);
    generator.dispose();
  }
  return {
    n,
    cleanAccuracy: clean / n,
    robustAccuracy: robust / n,
    attack: attack.name,
    eps: v.eps,
    seconds: (performance.now() - t0) / 1000,
  };
}
