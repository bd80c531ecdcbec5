// The contract of a training method (the attack library's Attack base is the model): a method
// says what the loss of one batch is and which parameters each of its levels moves; the
// Trainer owns everything else (modes, optimizers, zeroGrad/step/schedule, clipping, the NaN
// guard, logging, validation, checkpoints). Adding a method means adding one file under
// methods/ and one line in methods/index.ts.
import { withEvalMode } from "../attacks/attack.js";
import type { LossFn, LossName } from "../attacks/losses.js";
import { type Forward, pgdOn } from "../attacks/pgd.js";
import { MoE } from "../models/moe.js";
import { crossEntropy, klDiv, logSoftmax } from "../nn/functional.js";
import type { Module, UnaryModule } from "../nn/module.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";

/** One training batch: images in [0, 1] [N, C, H, W] and int64 labels [N]. */
export interface TrainBatch {
  x: Tensor;
  y: Tensor;
}

/** The training attack (PGD, L-inf): radius, step size, steps, random start. */
export interface TrainAttack {
  eps: number;
  stepSize: number;
  steps: number;
  randomStart: boolean;
}

/** The settings every method may read. */
export interface MethodSettings {
  attack: TrainAttack;
  /** TRADES / RT-ER weight of the KL term. */
  beta: number;
  /** JTDMoE's dual-model weight of the robust MoE. */
  alpha: number;
  /** Weight of the Switch load-balancing loss (MoE models; 0: off). */
  loadBalancing: number;
}

/** The loss of one batch for one level. */
export interface BatchLoss {
  /** The scalar the Trainer differentiates. */
  loss: Tensor;
  /** Named scalar terms for the log (e.g. ce, kl, lb); the Trainer checks each is finite. */
  terms: Record<string, Tensor>;
  /** Logits [N, K] whose accuracy the log reports as the level's training accuracy. */
  logits: Tensor;
  /** Labels for those logits. */
  y: Tensor;
}

/**
 * One optimisation level: its own parameters and optimizer. Single-level methods have one;
 * bi-level methods (JTDMoE, AdvMoE) have two, stepped in order on every batch, each with its
 * own gradients zeroed first.
 */
export interface Level {
  readonly name: string;
  /** The parameters this level's optimizer moves (and only these receive its gradients). */
  readonly parameters: readonly Tensor[];
  /** Modules in training mode during this level's forwards; the rest of the model is in eval mode. */
  readonly trainModules: readonly Module[];
  loss(batch: TrainBatch): BatchLoss;
}

export interface TrainingMethod {
  readonly name: string;
  readonly levels: readonly Level[];
}

/** What a model must be for a method: any classifier, a MoE, or a dual model of two MoEs. */
export type MethodModelKind = "classifier" | "moe" | "dual";

/** One spec per method: its name, what it needs and how it is built (the one place to register it). */
export interface MethodSpec {
  readonly name: string;
  readonly summary: string;
  readonly model: MethodModelKind;
  create(model: Module & UnaryModule, settings: MethodSettings): TrainingMethod;
}

/**
 * The logits of a training forward and, for a MoE with a load-balancing weight, the weighted
 * Switch loss of that forward (each call its own: nothing is stored on the model).
 */
export function trainForward(model: UnaryModule, x: Tensor, loadBalancing: number): { logits: Tensor; lb: Tensor | null } {
  if (model instanceof MoE && loadBalancing > 0) {
    return scope(() => {
      const out = model.forwardDetailed(x);
      return { logits: out.logits, lb: out.loadBalancingLoss.mul(loadBalancing) };
    });
  }
  return { logits: model.forward(x), lb: null };
}

/** CE plus the load-balancing term when there is one, with the terms named for the log. */
export function ceWithBalance(model: UnaryModule, x: Tensor, y: Tensor, loadBalancing: number): BatchLoss {
  return scope((): BatchLoss => {
    const { logits, lb } = trainForward(model, x, loadBalancing);
    const ce = crossEntropy(logits, y);
    if (lb === null) return { loss: ce, terms: { ce }, logits, y };
    return { loss: ce.add(lb), terms: { ce, lb }, logits, y };
  });
}

/**
 * The training attack: L-inf PGD on `forward` with the last iterate (Madry; it saves the
 * final forward), every module of `model` in eval mode during the attack (BatchNorm uses its
 * running statistics and is not updated by the attack's forwards) and back in the Trainer's
 * modes afterwards.
 */
export function trainAttack(
  model: Module,
  forward: Forward,
  x: Tensor,
  y: Tensor,
  a: TrainAttack,
  extra: { loss?: LossName | LossFn; gaussianStart?: number } = {},
): Tensor {
  return withEvalMode(model, () =>
    pgdOn(forward, x, y, {
      eps: a.eps,
      alpha: a.stepSize,
      steps: a.steps,
      randomStart: a.randomStart,
      iterate: "last",
      loss: extra.loss ?? "ce",
      ...(extra.gaussianStart !== undefined ? { gaussianStart: extra.gaussianStart } : {}),
    }),
  );
}

/**
 * sum over samples and classes of KL(softmax(p) || softmax(q)) for logits p (the reference,
 * e.g. clean) and q (e.g. attacked), with gradients into both. Computed from the two
 * log-softmaxes (kl_div with log_target) rather than from softmax(p): where a probability
 * underflows to exactly 0, PyTorch 1.13's kl_div(log q, softmax p) differentiates
 * xlogy(t, t) into 0/0 and hands NaN to the whole model (TRADES' official form does this once
 * a model is confident; AdvMoE's router hit it after ten steps). Same value, finite gradient.
 * The log-softmaxes are taken in float32: under bf16 autocast the logits are bfloat16 and
 * LibTorch 1.13 keeps log_softmax in bfloat16 on the CPU, whose rounding (about 0.01 at
 * log p = -2.3) is larger than a typical per-sample KL here (1e-3): the term would be mostly
 * rounding noise. float32 and float64 logits are used as they are.
 */
export function klSum(p: Tensor, q: Tensor): Tensor {
  const wide = (t: Tensor) => (t.dtype === "bfloat16" || t.dtype === "float16" ? t.float() : t);
  return scope(() => klDiv(logSoftmax(wide(q), 1), logSoftmax(wide(p), 1), { reduction: "sum", logTarget: true }));
}

/** Throws unless model is a MoE, naming the method. */
export function requireMoE(method: string, model: unknown): MoE {
  if (!(model instanceof MoE)) throw new TypeError(`training method '${method}' needs a MoE model`);
  return model;
}
