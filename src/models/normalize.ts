// Per-channel input normalisation as the model's first layer: attacks and certificates
// then work in [0,1] pixel space while the network sees standardised inputs.

import { Module } from "../nn/module.js";
import { tensor } from "../tensor/creation.js";
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
}
