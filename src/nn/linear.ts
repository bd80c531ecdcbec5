import { empty } from "../tensor/creation.js";
import type { Tensor } from "../tensor/tensor.js";
import { linear } from "./functional.js";
import { fanInAndFanOut, kaimingUniform_, uniform_ } from "./init.js";
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

  /** PyTorch's default: kaiming_uniform(a = sqrt 5), bias uniform(+-1/sqrt(fan_in)). */
  resetParameters(): void {
    kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    if (this.bias !== null) {
      const [fanIn] = fanInAndFanOut(this.weight);
      const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
      uniform_(this.bias, -bound, bound);
    }
  }

  forward(input: Tensor): Tensor {
    return linear(input, this.weight, this.bias);
  }
}
