// Parameter-free layers: thin module wrappers over functional ops.
import type { Tensor } from "../tensor/tensor.js";
import { adaptiveAvgPool2d, dropout, gelu, relu } from "./functional.js";
import { Module } from "./module.js";

export class ReLU extends Module {
  forward(input: Tensor): Tensor {
    return relu(input);
  }
}

export class GELU extends Module {
  constructor(readonly approximate: "none" | "tanh" = "none") {
    super();
  }

  forward(input: Tensor): Tensor {
    return gelu(input, this.approximate);
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
}

/** Returns its input: a placeholder (e.g. an empty residual shortcut). */
export class Identity extends Module {
  forward(input: Tensor): Tensor {
    return input.view(...input.shape);
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
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number | readonly [number, number]) {
    super();
  }

  forward(input: Tensor): Tensor {
    return adaptiveAvgPool2d(input, this.outputSize);
  }
}
