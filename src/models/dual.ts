// The dual model (METHOD.md section 4): F_D(x) = (1 - alpha) F_S(x) + alpha F_R(x).
import { logSoftmax } from "../nn/functional.js";
import { Module, type UnaryModule } from "../nn/module.js";
import { stack } from "../tensor/combine.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";

/**
 * 'logits' mixes logits (the reference code); 'probs' mixes probabilities (what the certificate
 * theory assumes) and returns the log of the mixture, so that the output is still a vector of
 * logits: its softmax is the mixture and CE on it is the exact NLL of the mixture.
 */
export type MixSpace = "logits" | "probs";

export class DualModel<S extends UnaryModule = UnaryModule, R extends UnaryModule = UnaryModule>
  extends Module
  implements UnaryModule
{
  readonly standard: S;
  readonly robust: R;
  #alpha = 0.5;
  space: MixSpace;

  constructor(standard: S, robust: R, options: { alpha?: number; space?: MixSpace } = {}) {
    super();
    this.standard = this.registerModule("standard", standard);
    this.robust = this.registerModule("robust", robust);
    this.alpha = options.alpha ?? 0.5;
    this.space = options.space ?? "logits";
  }

  get alpha(): number {
    return this.#alpha;
  }

  set alpha(a: number) {
    if (!(a >= 0 && a <= 1)) throw new RangeError(`DualModel: alpha must be in [0, 1], got ${a}`);
    this.#alpha = a;
  }

  /**
   * Mixed output. In 'logits' space (1 - alpha) F_S + alpha F_R; in 'probs' space
   * log((1 - alpha) softmax F_S + alpha softmax F_R), never the probabilities themselves: an
   * attack or a loss that applies softmax/CE to a model's output (every one does, as AutoAttack's
   * checks warn) then sees the mixture it means to attack.
   */
  forward(x: Tensor): Tensor {
    return scope(() => this.mix(this.standard.forward(x), this.robust.forward(x)));
  }

  /** Mixes already computed outputs of the two models (see forward). */
  mix(standardOut: Tensor, robustOut: Tensor): Tensor {
    return scope(() => {
      const a = this.#alpha;
      if (this.space === "logits") return standardOut.mul(1 - a).add(robustOut.mul(a));
      // log of the mixture, stably: logsumexp over the two members of log weight + log-softmax.
      // The end points are single members (log 0 would otherwise enter the graph).
      if (a === 0) return logSoftmax(standardOut, -1);
      if (a === 1) return logSoftmax(robustOut, -1);
      const s = logSoftmax(standardOut, -1).add(Math.log(1 - a));
      const r = logSoftmax(robustOut, -1).add(Math.log(a));
      return stack([s, r], 0).logsumexp(0);
    });
  }
}
