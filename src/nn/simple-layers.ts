// Parameter-free layers: thin module wrappers over functional ops.
import {
  adaptiveAvgPoolLipschitz,
  checkNorm,
  GELU_LIPSCHITZ,
  LipschitzError,
  type LipschitzNorm,
  type LipschitzOptions,
} from "../certify/lipschitz.js";
import type { Tensor } from "../tensor/tensor.js";
import { adaptiveAvgPool2d, dropout, gelu, relu } from "./functional.js";
import { Module } from "./module.js";

export class ReLU extends Module {
  forward(input: Tensor): Tensor {
    return relu(input);
  }

  /** 1: elementwise, slopes in {0, 1}. */
  override lipschitz(norm: LipschitzNorm, _options?: LipschitzOptions): number {
    checkNorm(norm, "ReLU.lipschitz");
    return 1;
  }
}

export class GELU extends Module {
  constructor(readonly approximate: "none" | "tanh" = "none") {
    super();
  }

  forward(input: Tensor): Tensor {
    return gelu(input, this.approximate);
  }

  /** max |GELU'| = 1.1289 (not 1: GELU overshoots slope 1 near x = sqrt 2); elementwise, so the same in both norms. */
  override lipschitz(norm: LipschitzNorm, _options?: LipschitzOptions): number {
    checkNorm(norm, "GELU.lipschitz");
    return GELU_LIPSCHITZ[this.approximate];
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: p must be in [0, 1], got ${p}`);
  }

  forward(input: Tensor): Tensor {
    return dropout(input, this.p, this.training);
  }

  /** 1 in eval mode (the identity); refused in training mode, where the map is random. */
  override lipschitz(norm: LipschitzNorm, _options?: LipschitzOptions): number {
    checkNorm(norm, "Dropout.lipschitz");
    if (this.training) throw new LipschitzError("Dropout: no Lipschitz bound in training mode (a random map); call eval() first");
    return 1;
  }
}

/** Returns its input: a placeholder (e.g. an empty residual shortcut). */
export class Identity extends Module {
  forward(input: Tensor): Tensor {
    return input.view(...input.shape);
  }

  override lipschitz(norm: LipschitzNorm, _options?: LipschitzOptions): number {
    checkNorm(norm, "Identity.lipschitz");
    return 1;
  }
}

export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }

  forward(input: Tensor): Tensor {
    return input.flatten(this.startDim, this.endDim);
  }

  /** 1: a reshape keeps every norm. */
  override lipschitz(norm: LipschitzNorm, _options?: LipschitzOptions): number {
    checkNorm(norm, "Flatten.lipschitz");
    return 1;
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number | readonly [number, number]) {
    super();
  }

  forward(input: Tensor): Tensor {
    return adaptiveAvgPool2d(input, this.outputSize);
  }

  /** L-inf: 1. L2: exact from the window sizes, 1/sqrt(k) for a global average over k positions (needs options.inputShape). */
  override lipschitz(norm: LipschitzNorm, options: LipschitzOptions = {}): number {
    return adaptiveAvgPoolLipschitz(this.outputSize, norm, options.inputShape);
  }
}
