// Attack objectives, all per sample ([N], reduction none) and all to be MAXIMISED; the
// attacks differentiate their sum, which gives every sample its own gradient.
import { crossEntropy, klDiv, logSoftmax, softmax } from "../nn/functional.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";

/** What some losses need beyond (logits, y). */
export interface LossContext {
  /** Logits of the model at the clean x [N, K] (the KL/TRADES loss). */
  cleanLogits: Tensor | null;
  /** Target classes [N] (int64) of a targeted loss. */
  target: Tensor | null;
  /**
   * When the search counts a sample as fooled, [N] bool from the forward's output, for
   * objectives whose success is not "argmax != y" (the route attacks: the route reached a given
   * expert and that expert is wrong). Default: argmax != y (argmax == target when targeted).
   */
  success?: (logits: Tensor, y: Tensor) => Tensor;
}

/** A per-sample objective [N] to maximise. */
export type LossFn = (logits: Tensor, y: Tensor, ctx: LossContext) => Tensor;

export type LossName = "ce" | "dlr" | "margin" | "kl" | "targeted-ce";

/** Keeps DLR finite when the top logits tie (Croce & Hein use the same constant). */
const DLR_EPS = 1e-12;

function checkClasses(what: string, logits: Tensor, min: number): void {
  const k = logits.shape[1] ?? 0;
  if (logits.ndim !== 2 || k < min) {
    throw new RangeError(`${what} needs logits [N, K] with K >= ${min} classes, got shape [${logits.shape.join(", ")}]`);
  }
}

/** Cross entropy per sample. */
export function ceLoss(logits: Tensor, y: Tensor): Tensor {
  return crossEntropy(logits, y, { reduction: "none" });
}

/** max_{j != y} z_j per sample. */
export function maxOtherLogit(logits: Tensor, y: Tensor): Tensor {
  return scope(() => logits.scatter(1, y.unsqueeze(1), Number.NEGATIVE_INFINITY).max(1)[0]);
}

/** The logit of class y per sample. */
export function trueLogit(logits: Tensor, y: Tensor): Tensor {
  return scope(() => logits.gather(1, y.unsqueeze(1)).squeeze(1));
}

/** Carlini-Wagner margin max_{j != y} z_j - z_y: positive exactly when x is misclassified. */
export function marginLoss(logits: Tensor, y: Tensor): Tensor {
  checkClasses("margin loss", logits, 2);
  return scope(() => maxOtherLogit(logits, y).sub(trueLogit(logits, y)));
}

/**
 * Difference of Logits Ratio (Croce & Hein 2020): -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3),
 * with pi the classes sorted by logit. Invariant to shifting and scaling the logits, so a
 * model cannot hide behind saturated softmax outputs. Needs at least 3 classes.
 */
export function dlrLoss(logits: Tensor, y: Tensor): Tensor {
  checkClasses("DLR loss", logits, 3);
  return scope(() => {
    const [sorted] = logits.sort(1, true);
    const scale = sorted.select(1, 0).sub(sorted.select(1, 2)).add(DLR_EPS);
    return maxOtherLogit(logits, y).sub(trueLogit(logits, y)).div(scale);
  });
}

/**
 * Targeted DLR: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2). Maximising it pushes class t
 * above y. Needs at least 4 classes.
 */
export function targetedDlrLoss(logits: Tensor, y: Tensor, target: Tensor): Tensor {
  checkClasses("targeted DLR loss", logits, 4);
  return scope(() => {
    const [sorted] = logits.sort(1, true);
    const scale = sorted
      .select(1, 0)
      .sub(sorted.select(1, 2).add(sorted.select(1, 3)).mul(0.5))
      .add(DLR_EPS);
    return trueLogit(logits, target).sub(trueLogit(logits, y)).div(scale);
  });
}

/** KL(softmax(clean) || softmax(logits)) per sample: the TRADES inner maximisation. */
export function klLoss(logits: Tensor, cleanLogits: Tensor): Tensor {
  return scope(() => klDiv(logSoftmax(logits, 1), softmax(cleanLogits, 1), { reduction: "none" }).sum(1));
}

/** The loss function for a name (or a custom function, returned as is). */
export function resolveLoss(loss: LossName | LossFn): LossFn {
  if (typeof loss === "function") return loss;
  switch (loss) {
    case "ce":
      return (logits, y) => ceLoss(logits, y);
    case "dlr":
      return (logits, y) => dlrLoss(logits, y);
    case "margin":
      return (logits, y) => marginLoss(logits, y);
    case "targeted-ce":
      return (logits, _y, ctx) => {
        if (ctx.target === null) throw new TypeError("targeted CE loss: no target classes given");
        // Maximising -CE(logits, target) pulls the prediction towards the target.
        return ceLoss(logits, ctx.target).neg();
      };
    case "kl":
      return (logits, _y, ctx) => {
        if (ctx.cleanLogits === null) throw new TypeError("KL loss: the attack did not provide clean logits");
        return klLoss(logits, ctx.cleanLogits);
      };
    default:
      throw new TypeError(
        `unknown attack loss '${String(loss)}'; expected 'ce', 'dlr', 'margin', 'kl', 'targeted-ce' or a function`,
      );
  }
}

/** A loss that maximises targeted DLR towards ctx.target (APGD-T). */
export const targetedDlr: LossFn = (logits, y, ctx) => {
  if (ctx.target === null) throw new TypeError("targeted DLR loss: no target classes given");
  return targetedDlrLoss(logits, y, ctx.target);
};
