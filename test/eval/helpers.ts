// Tiny models and data for the evaluation tests: a model that ignores its input, small
// linear models and MoEs on 1 x 4 x 4 images, and seeded synthetic datasets.
import { ArrayDataset } from "../../src/data/index.js";
import { DualModel, MoE } from "../../src/models/index.js";
import { Flatten, Linear, Sequential } from "../../src/nn/index.js";
import { fromBytes, full, manualSeed, noGrad, rand, scope, type Tensor, tensor } from "../../src/tensor/index.js";
import { randomBytes } from "../data/synth.js";

export const SHAPE = [1, 4, 4] as const;
export const CLASSES = ["c0", "c1", "c2", "c3", "c4"] as const;
export const K = CLASSES.length;

/** A linear classifier on 1 x 4 x 4 images with seeded random weights. */
export function linearModel(seed: number, classes: number = K): Sequential {
  manualSeed(seed);
  return new Sequential(new Flatten(), new Linear(16, classes)).eval();
}

/**
 * Ignores its input: zero weights, so every logit is its bias and the input gradient is 0.
 * Always predicts `winner`.
 */
export function constantModel(winner: number, classes: number = K): Sequential {
  const lin = new Linear(16, classes);
  noGrad(() =>
    scope(() => {
      lin.weight.zero_();
      lin.bias?.copy_(tensor(Array.from({ length: classes }, (_, c) => (c === winner ? 2 : c / classes))));
    }),
  );
  return new Sequential(new Flatten(), lin).eval();
}

/** A top-1 MoE of linear experts (random, or all constant with the given winner) on 1 x 4 x 4 images. */
export function tinyMoE(seed: number, experts = 3, constantWinner?: number): MoE<Sequential> {
  manualSeed(seed);
  const list = Array.from({ length: experts }, () =>
    constantWinner === undefined ? new Sequential(new Flatten(), new Linear(16, K)) : constantModel(constantWinner),
  );
  return new MoE(list, { imageShape: SHAPE, normalize: { mean: [0.5], std: [0.25] } }).eval();
}

export function tinyDual(seed: number, alpha = 0.25): DualModel<MoE<Sequential>, MoE<Sequential>> {
  return new DualModel(tinyMoE(seed, 2), tinyMoE(seed + 1, 3), { alpha }).eval();
}

/** n random 1 x 4 x 4 images with labels cycling through the classes (or the given labels). */
export function synthData(n: number, seed: number, labels?: readonly number[]): ArrayDataset {
  const ys = labels ?? Array.from({ length: n }, (_, i) => (i * 7 + seed) % K);
  return ArrayDataset.fromArrays(randomBytes(n * 16, seed), ys, SHAPE, CLASSES);
}

/** The dataset as (x, y) tensors, in order. */
export function tensorsOf(ds: ArrayDataset): { x: Tensor; y: Tensor } {
  const { storage } = ds.view();
  const n = ds.length;
  return scope(() => ({
    x: fromBytes(storage.images.slice(0, n * 16), [n, ...SHAPE], "uint8")
      .to("float32")
      .div(255),
    y: tensor(Array.from(storage.labels), { dtype: "int64" }),
  }));
}

/**
 * Two experts that ignore their input (expert 0 always says class 0, expert 1 class 1)
 * behind a linear router whose margin r_1 - r_0 is the sum of the normalised pixels
 * ((x - 0.5) / 0.25). On images within 0.05 of grey the margin is within +-3.2, and an
 * L-inf perturbation of 0.1 moves it by up to 6.4: every route can be flipped, and only
 * the route decides the prediction.
 */
export function routedMoE(gating: { gating?: "topk" | "dense" | "hard"; k?: number; renormalize?: boolean }): MoE<Sequential> {
  const moe = new MoE([constantModel(0), constantModel(1)], {
    imageShape: SHAPE,
    normalize: { mean: [0.5], std: [0.25] },
    ...gating,
  });
  const gate = moe.router.gate as Linear;
  noGrad(() =>
    scope(() => {
      gate.weight.copy_(tensor([new Array<number>(16).fill(0), new Array<number>(16).fill(1)]));
      gate.bias?.zero_();
    }),
  );
  return moe.eval();
}

/** n images within 0.05 of grey (1 x 4 x 4, seeded), all labelled `label`. */
export function nearGrey(n: number, seed: number, label = 1): { x: Tensor; y: Tensor } {
  manualSeed(seed);
  return scope(() => ({
    x: rand([n, ...SHAPE])
      .sub(0.5)
      .mul(0.1)
      .add(0.5),
    y: full([n], label, { dtype: "int64" }),
  }));
}
