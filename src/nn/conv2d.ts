import {
  type ConvGeometry,
  type ConvScales,
  convLipschitz,
  type LipschitzNorm,
  type LipschitzOptions,
} from "../certify/lipschitz.js";
import { empty } from "../tensor/creation.js";
import type { Tensor } from "../tensor/tensor.js";
import { conv2d } from "./functional.js";
import { defaultLayerInit_ } from "./init.js";
import { Module } from "./module.js";

type Pair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

function pair(v: Pair): [number, number] {
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    o: Conv2dOptions = {},
  ) {
    super();
    this.groups = o.groups ?? 1;
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new TypeError(`Conv2d: channels ${inChannels} -> ${outChannels} are not divisible by groups = ${this.groups}`);
    }
    this.stride = pair(o.stride ?? 1);
    this.padding = pair(o.padding ?? 0);
    this.dilation = pair(o.dilation ?? 1);
    const [kh, kw] = pair(kernelSize);
    this.weight = this.registerParameter("weight", empty([outChannels, inChannels / this.groups, kh, kw]));
    this.bias = this.registerParameter("bias", o.bias === false ? null : empty([outChannels]));
    this.resetParameters();
  }

  /** PyTorch's default initialisation (same seed, same values). */
  resetParameters(): void {
    defaultLayerInit_(this.weight, this.bias);
  }

  forward(input: Tensor): Tensor {
    return conv2d(input, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }

  get geometry(): ConvGeometry {
    return { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups };
  }

  /**
   * L-inf: max over output channels of sum |w| (the max row L1 norm of the unfolded conv).
   * L2: exact on the unfolded matrix when options.inputShape is given and it is small, else a
   * size-free sound bound (see convLipschitz in certify/lipschitz.ts).
   */
  override lipschitz(norm: LipschitzNorm, options: LipschitzOptions = {}): number {
    return convLipschitz(this.weight, this.geometry, norm, options);
  }

  /** The bound of diag(scales.output) * this * diag(scales.input): BatchNorm and Normalize folded in. */
  scaledLipschitz(norm: LipschitzNorm, options: LipschitzOptions = {}, scales: ConvScales = {}): number {
    return convLipschitz(this.weight, this.geometry, norm, options, scales);
  }
}
