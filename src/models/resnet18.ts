// CIFAR ResNet18 (3x3 stem, no max-pool, BasicBlocks [2,2,2,2]) with the tensor names of
// the widespread PyTorch layout the paper's code uses (conv1, bn1, layerN.M.*, shortcut, linear).
import type { LipschitzNorm, LipschitzOptions } from "../certify/lipschitz.js";
import { BatchNorm2d } from "../nn/batch-norm.js";
import { chainLipschitz, Sequential } from "../nn/containers.js";
import { Conv2d } from "../nn/conv2d.js";
import { adaptiveAvgPool2d, relu } from "../nn/functional.js";
import { Linear } from "../nn/linear.js";
import { Module, type UnaryModule } from "../nn/module.js";
import { AdaptiveAvgPool2d, Flatten, Identity, ReLU } from "../nn/simple-layers.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { CIFAR10_MEAN, CIFAR10_STD, Normalize } from "./normalize.js";

export class BasicBlock extends Module implements UnaryModule {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly shortcut: Sequential;

  constructor(inChannels: number, outChannels: number, stride = 1) {
    super();
    this.conv1 = this.registerModule("conv1", new Conv2d(inChannels, outChannels, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(outChannels));
    this.conv2 = this.registerModule("conv2", new Conv2d(outChannels, outChannels, 3, { padding: 1, bias: false }));
    this.bn2 = this.registerModule("bn2", new BatchNorm2d(outChannels));
    const project = stride !== 1 || inChannels !== outChannels;
    this.shortcut = this.registerModule(
      "shortcut",
      project
        ? new Sequential(new Conv2d(inChannels, outChannels, 1, { stride, bias: false }), new BatchNorm2d(outChannels))
        : new Sequential(),
    );
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      const out = this.bn2.forward(this.conv2.forward(relu(this.bn1.forward(this.conv1.forward(x)))));
      const skip = this.shortcut.length === 0 ? x : this.shortcut.forward(x);
      return relu(out.add(skip));
    });
  }

  /**
   * relu(main(x) + shortcut(x)) with relu 1-Lipschitz: Lip <= Lip(main) + Lip(shortcut), where
   * main = bn2 o conv2 o relu o bn1 o conv1 (each BatchNorm folded into its conv) and the
   * shortcut is the identity (1) or a 1x1 conv with its BatchNorm.
   */
  override lipschitz(norm: LipschitzNorm, options: LipschitzOptions = {}): number {
    const main = chainLipschitz([this.conv1, this.bn1, new ReLU(), this.conv2, this.bn2], norm, options);
    return main + this.shortcut.lipschitz(norm, options);
  }
}

export interface ResNet18Options {
  numClasses?: number;
  /** Channels of the first stage; 64 is the standard ResNet18, 16 gives 16-32-64-128. */
  width?: number;
  /** Per-channel input normalisation (CIFAR-10 statistics by default); false for none. */
  normalize?: { mean: readonly number[]; std: readonly number[] } | false;
}

export class ResNet18 extends Module implements UnaryModule {
  readonly normalize: UnaryModule;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;
  readonly linear: Linear;
  readonly numClasses: number;
  readonly width: number;

  constructor(options: ResNet18Options = {}) {
    super();
    this.numClasses = options.numClasses ?? 10;
    this.width = options.width ?? 64;
    const norm = options.normalize === undefined ? { mean: CIFAR10_MEAN, std: CIFAR10_STD } : options.normalize;
    this.normalize = this.registerModule("normalize", norm === false ? new Identity() : new Normalize(norm.mean, norm.std));
    const w = [this.width, 2 * this.width, 4 * this.width, 8 * this.width] as const;
    this.conv1 = this.registerModule("conv1", new Conv2d(3, w[0], 3, { padding: 1, bias: false }));
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(w[0]));
    const stage = (cin: number, cout: number, stride: number) =>
      new Sequential(new BasicBlock(cin, cout, stride), new BasicBlock(cout, cout, 1));
    this.layer1 = this.registerModule("layer1", stage(w[0], w[0], 1));
    this.layer2 = this.registerModule("layer2", stage(w[0], w[1], 2));
    this.layer3 = this.registerModule("layer3", stage(w[1], w[2], 2));
    this.layer4 = this.registerModule("layer4", stage(w[2], w[3], 2));
    this.linear = this.registerModule("linear", new Linear(w[3], this.numClasses));
  }

  /** Images in [0,1], [N, 3, H, W] -> logits [N, numClasses]. */
  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.size(1) !== 3) throw new TypeError(`ResNet18: expected images [N, 3, H, W], got shape [${x.shape}]`);
    return scope(() => {
      const stem = relu(this.bn1.forward(this.conv1.forward(this.normalize.forward(x))));
      const features = this.layer4.forward(this.layer3.forward(this.layer2.forward(this.layer1.forward(stem))));
      return this.linear.forward(adaptiveAvgPool2d(features, 1).flatten(1));
    });
  }

  /**
   * The product over the network (Normalize and every BatchNorm folded into their convs, each
   * residual block a sum of branches). Astronomically large on a standard ResNet18 (docs/CERTIFY.md):
   * a global bound is a product of per-layer worst cases that no input attains together.
   * Give options.inputShape (e.g. [3, 32, 32]) for the exact 1/sqrt(h w) of the final pooling in L2.
   */
  override lipschitz(norm: LipschitzNorm, options: LipschitzOptions = {}): number {
    const layers = [this.normalize, this.conv1, this.bn1, new ReLU(), this.layer1, this.layer2, this.layer3, this.layer4];
    return chainLipschitz([...layers, new AdaptiveAvgPool2d(1), new Flatten(), this.linear], norm, options);
  }
}
