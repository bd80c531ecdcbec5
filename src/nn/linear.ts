import { type LipschitzNorm, type LipschitzOptions, linearLipschitz } from "../certify/lipschitz.js";
import { empty } from "../tensor/creation.js";
import type { Tensor } from "../tensor/tensor.js";
import { linear } from "./functional.js";
import { defaultLayerInit_ } from "./init.js";
import { Module } from "./module.js";

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean } = {},
  ) {
    super();
    this.weight = this.registerParameter("weight", empty([outFeatures, inFeatures]));
    this.bias = this.registerParameter("bias", options.bias === false ? null : empty([outFeatures]));
    this.resetParameters();
  }

  /** PyTorch's default initialisation (same seed, same values). */
  resetParameters(): void {
    defaultLayerInit_(this.weight, this.bias);
  }

  forward(input: Tensor): Tensor {
    return linear(input, this.weight, this.bias);
  }

  /** L-inf: max row L1 norm of W (exact). L2: spectral norm of W by Gram iteration (sound, tight). */
  override lipschitz(norm: LipschitzNorm, _options?: LipschitzOptions): number {
    return linearLipschitz(this.weight, norm);
  }
}
