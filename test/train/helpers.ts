// Shared by the training tests: the PyTorch fixture's model and settings
// (test/fixtures/gen_train_reference.py).
import { MoE, ResNet18 } from "../../src/models/index.js";
import { SGD } from "../../src/optim/sgd.js";
import type { Tensor } from "../../src/tensor/index.js";
import type { MethodSettings } from "../../src/train/method.js";

/** The fixture's settings: 3 attack steps from x (no random start), beta 6, alpha 0.7. */
export const SETTINGS: MethodSettings = {
  attack: { eps: 8 / 255, stepSize: 2 / 255, steps: 3, randomStart: false },
  beta: 6,
  alpha: 0.7,
  loadBalancing: 0,
};

export function prefixed(all: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of all) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out;
}

/** The reference's MoE: 3 ResNet18 experts of width 2, linear router, top-1 without renormalising. */
export function referenceMoE(weights: Map<string, Tensor>): MoE {
  const moe = new MoE(
    Array.from({ length: 3 }, () => new ResNet18({ width: 2 })),
    { k: 1, renormalize: false },
  ).to("float64");
  moe.loadStateDict(weights);
  return moe;
}

/** The fixture's optimizer. */
export function sgd(params: readonly Tensor[]): SGD {
  return new SGD(params, { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
}
