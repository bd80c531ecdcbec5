// The dual model (METHOD.md section 4): F_D(x) = (1 - alpha) F_S(x) + alpha F_R(x).
import { softmax } from "../nn/functional.js";
import { Module, type UnaryModule } from "../nn/module.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";

/** 'logits' mixes logits (the reference code); 'probs' mixes probabilities (what the certificate theory assumes). */
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

  /** Mixed output; in 'probs' space the result is a probability vector (use NLL, not CE). */
  forward(x: Tensor): Tensor {
    return scope(() => this.mix(this.standard.forward(x), this.robust.forward(x)));
  }

  /** Mixes already computed outputs of the two models. */
  mix(standardOut: Tensor, robustOut: Tensor): Tensor {
    return scope(() => {
      const [s, r] = this.space === "probs" ? [softmax(standardOut, -1), softmax(robustOut, -1)] : [standardOut, robustOut];
      return s.mul(1 - this.#alpha).add(r.mul(this.#alpha));
    });
  }
}
