// Routers map a (normalised) image to one logit per expert.
import type { LipschitzNorm, LipschitzOptions } from "../certify/lipschitz.js";
import { chainLipschitz, Sequential } from "../nn/containers.js";
import { Conv2d } from "../nn/conv2d.js";
import { Linear } from "../nn/linear.js";
import { Module, type UnaryModule } from "../nn/module.js";
import { AdaptiveAvgPool2d, Flatten, ReLU } from "../nn/simple-layers.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";

export type RouterKind = "linear" | "conv";

/** One linear layer on the flattened image: the paper's code (`router.gate`). */
export class LinearRouter extends Module implements UnaryModule {
  readonly gate: Linear;

  constructor(
    readonly inFeatures: number,
    readonly numExperts: number,
  ) {
    super();
    this.gate = this.registerModule("gate", new Linear(inFeatures, numExperts));
  }

  forward(x: Tensor): Tensor {
    return scope(() => this.gate.forward(x.flatten(1)));
  }

  /** The gate's bound (flattening is free). The certificates use the finer per-pair constants (certify/router-stability.ts). */
  override lipschitz(norm: LipschitzNorm, options: LipschitzOptions = {}): number {
    return this.gate.lipschitz(norm, options);
  }
}

/** A small CNN router, as in the predecessor AdvMoE. */
export class ConvRouter extends Module implements UnaryModule {
  readonly features: Sequential;
  readonly gate: Linear;

  constructor(
    readonly channels: number,
    readonly numExperts: number,
    width = 16,
  ) {
    super();
    this.features = this.registerModule(
      "features",
      new Sequential(
        new Conv2d(channels, width, 3, { stride: 2, padding: 1 }),
        new ReLU(),
        new Conv2d(width, 2 * width, 3, { stride: 2, padding: 1 }),
        new ReLU(),
        new AdaptiveAvgPool2d(1),
        new Flatten(),
      ),
    );
    this.gate = this.registerModule("gate", new Linear(2 * width, numExperts));
  }

  forward(x: Tensor): Tensor {
    return scope(() => this.gate.forward(this.features.forward(x)));
  }

  override lipschitz(norm: LipschitzNorm, options: LipschitzOptions = {}): number {
    return chainLipschitz([this.features, this.gate], norm, options);
  }
}
