// FGSM (Goodfellow et al. 2015): one step of size eps along the steepest-ascent direction
// (sign of the gradient for L-inf; the normalised gradient for L2, i.e. FGM).
import { noGrad } from "../tensor/autograd.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { Attack, type Classifier, checkEps, type Norm } from "./attack.js";
import { type LossFn, type LossName, resolveLoss } from "./losses.js";
import { cleanContext, defaultEps, type Forward, lossAndGrad } from "./pgd.js";
import { ascentDirection, project } from "./projections.js";

export interface FGSMOptions {
  /** Default 8/255 for L-inf, 0.5 for L2. */
  eps?: number;
  /** Default 'linf'. */
  norm?: Norm;
  /** Default 'ce'. */
  loss?: LossName | LossFn;
}

export class FGSM<M extends Classifier = Classifier> extends Attack<M> {
  readonly eps: number;
  readonly norm: Norm;
  readonly loss: LossFn;
  readonly #needsClean: boolean;

  constructor(model: M, options: FGSMOptions = {}) {
    super(model);
    this.norm = options.norm ?? "linf";
    this.eps = options.eps ?? defaultEps(this.norm);
    checkEps("FGSM", this.eps, this.norm);
    const loss = options.loss ?? "ce";
    this.loss = resolveLoss(loss);
    this.#needsClean = typeof loss === "function" || loss === "kl";
  }

  get name(): string {
    return `FGSM (${this.norm})`;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    const forward: Forward = (xa) => this.model.forward(xa);
    return scope(() => {
      const { grad } = lossAndGrad(forward, x, y, this.loss, cleanContext(forward, x, this.#needsClean));
      const g = grad as Tensor;
      return noGrad(() => project(this.norm, x.add(ascentDirection(g, this.norm).mul(this.eps)), x, this.eps));
    });
  }
}
