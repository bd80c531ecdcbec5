// Per-channel input normalisation as the model's first layer: attacks and certificates
// then work in [0,1] pixel space while the network sees standardised inputs.
import { checkNorm, type LipschitzNorm, type LipschitzOptions } from "../certify/lipschitz.js";
import { Module } from "../nn/module.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";

export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465] as const;
export const CIFAR10_STD = [0.247, 0.2435, 0.2616] as const;

export class Normalize extends Module {
  readonly mean: Tensor;
  readonly std: Tensor;

  constructor(mean: readonly number[] = CIFAR10_MEAN, std: readonly number[] = CIFAR10_STD) {
    super();
    if (mean.length !== std.length) throw new TypeError(`Normalize: ${mean.length} means but ${std.length} stds`);
    if (std.some((s) => !(s > 0))) throw new RangeError(`Normalize: every std must be positive, got [${std}]`);
    const shape = [1, mean.length, 1, 1];
    this.mean = this.registerBuffer("mean", tensor(Float32Array.from(mean), { shape }));
    this.std = this.registerBuffer("std", tensor(Float32Array.from(std), { shape }));
  }

  forward(x: Tensor): Tensor {
    const centered = x.sub(this.mean);
    const out = centered.div(this.std);
    centered.dispose();
    return out;
  }

  /** 1/std per channel, float64 [C]: the diagonal scale of (x - mean) / std. */
  channelScale(): Tensor {
    return noGrad(() => scope(() => this.std.detach().double().abs().pow(-1).flatten()));
  }

  /** max_c 1/std_c in both norms (about 4.1 for CIFAR-10's std): every certificate pays it once. */
  override lipschitz(norm: LipschitzNorm, _options?: LipschitzOptions): number {
    checkNorm(norm, "Normalize.lipschitz");
    return scope(() => this.channelScale().max().item());
  }
}
