import { LipschitzError, type LipschitzNorm, type LipschitzOptions } from "../certify/lipschitz.js";
import { ones, zeros } from "../tensor/creation.js";
import type { Tensor } from "../tensor/tensor.js";
import { layerNorm } from "./functional.js";
import { Module } from "./module.js";

export class LayerNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly normalizedShape: number[];

  constructor(
    normalizedShape: number | readonly number[],
    readonly eps = 1e-5,
    elementwiseAffine = true,
  ) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    this.weight = this.registerParameter("weight", elementwiseAffine ? ones(this.normalizedShape) : null);
    this.bias = this.registerParameter("bias", elementwiseAffine ? zeros(this.normalizedShape) : null);
  }

  forward(input: Tensor): Tensor {
    return layerNorm(input, this.normalizedShape, this.weight, this.bias, this.eps);
  }

  /** Refused: dividing by the input's own std has slope ~ 1/sqrt(eps) near constant inputs: no useful global bound. */
  override lipschitz(_norm: LipschitzNorm, _options?: LipschitzOptions): number {
    throw new LipschitzError(
      "LayerNorm: no useful global Lipschitz bound (it divides by the input's own standard deviation; slope up to ~1/sqrt(eps) near constant inputs)",
    );
  }
}
