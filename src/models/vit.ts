// timm-style Vision Transformer (pre-norm blocks, CLS token, learned position embeddings)
// with timm's tensor names, so ImageNet weights of vit_small_patch16_224 load by name.
import { LipschitzError, type LipschitzNorm, type LipschitzOptions } from "../certify/lipschitz.js";
import { Attention } from "../nn/attention.js";
import { Sequential } from "../nn/containers.js";
import { Conv2d } from "../nn/conv2d.js";
import { gelu } from "../nn/functional.js";
import { LayerNorm } from "../nn/layer-norm.js";
import { Linear } from "../nn/linear.js";
import { Module, type UnaryModule } from "../nn/module.js";
import { Identity } from "../nn/simple-layers.js";
import { cat } from "../tensor/combine.js";
import { randn, zeros } from "../tensor/creation.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { CIFAR10_MEAN, CIFAR10_STD, Normalize } from "./normalize.js";

class Mlp extends Module implements UnaryModule {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number) {
    super();
    this.fc1 = this.registerModule("fc1", new Linear(dim, hidden));
    this.fc2 = this.registerModule("fc2", new Linear(hidden, dim));
  }

  forward(x: Tensor): Tensor {
    return scope(() => this.fc2.forward(gelu(this.fc1.forward(x))));
  }
}

export class VitBlock extends Module implements UnaryModule {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(dim: number, heads: number, mlpRatio: number) {
    super();
    this.norm1 = this.registerModule("norm1", new LayerNorm(dim, 1e-6));
    this.attn = this.registerModule("attn", new Attention(dim, heads));
    this.norm2 = this.registerModule("norm2", new LayerNorm(dim, 1e-6));
    this.mlp = this.registerModule("mlp", new Mlp(dim, Math.round(mlpRatio * dim)));
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      const h = x.add(this.attn.forward(this.norm1.forward(x)));
      return h.add(this.mlp.forward(this.norm2.forward(h)));
    });
  }
}

class PatchEmbed extends Module implements UnaryModule {
  readonly proj: Conv2d;

  constructor(patch: number, dim: number, channels: number) {
    super();
    this.proj = this.registerModule("proj", new Conv2d(channels, dim, patch, { stride: patch }));
  }

  /** [N, C, H, W] -> [N, tokens, dim] */
  forward(x: Tensor): Tensor {
    return scope(() => this.proj.forward(x).flatten(2).transpose(1, 2));
  }
}

export interface ViTOptions {
  numClasses?: number;
  imageSize?: number;
  patchSize?: number;
  dim?: number;
  depth?: number;
  heads?: number;
  mlpRatio?: number;
  channels?: number;
  normalize?: { mean: readonly number[]; std: readonly number[] } | false;
}

export class ViT extends Module implements UnaryModule {
  readonly normalize: UnaryModule;
  readonly patch_embed: PatchEmbed;
  readonly cls_token: Tensor;
  readonly pos_embed: Tensor;
  readonly blocks: Sequential;
  readonly norm: LayerNorm;
  readonly head: Linear;
  readonly config: Required<Omit<ViTOptions, "normalize">>;

  constructor(options: ViTOptions = {}) {
    super();
    const c = {
      numClasses: options.numClasses ?? 10,
      imageSize: options.imageSize ?? 32,
      patchSize: options.patchSize ?? 4,
      dim: options.dim ?? 384,
      depth: options.depth ?? 12,
      heads: options.heads ?? 6,
      mlpRatio: options.mlpRatio ?? 4,
      channels: options.channels ?? 3,
    };
    if (c.imageSize % c.patchSize !== 0)
      throw new TypeError(`ViT: image size ${c.imageSize} is not a multiple of patch size ${c.patchSize}`);
    this.config = c;
    const norm = options.normalize === undefined ? { mean: CIFAR10_MEAN, std: CIFAR10_STD } : options.normalize;
    this.normalize = this.registerModule("normalize", norm === false ? new Identity() : new Normalize(norm.mean, norm.std));
    this.patch_embed = this.registerModule("patch_embed", new PatchEmbed(c.patchSize, c.dim, c.channels));
    const tokens = (c.imageSize / c.patchSize) ** 2 + 1;
    this.cls_token = this.registerParameter("cls_token", zeros([1, 1, c.dim]));
    this.pos_embed = this.registerParameter(
      "pos_embed",
      scope(() => randn([1, tokens, c.dim]).mul(0.02)),
    );
    const blocks = Array.from({ length: c.depth }, () => new VitBlock(c.dim, c.heads, c.mlpRatio));
    this.blocks = this.registerModule("blocks", new Sequential(...blocks));
    this.norm = this.registerModule("norm", new LayerNorm(c.dim, 1e-6));
    this.head = this.registerModule("head", new Linear(c.dim, c.numClasses));
  }

  /** Images in [0,1], [N, C, H, W] -> logits [N, numClasses]. */
  forward(x: Tensor): Tensor {
    const { imageSize, channels } = this.config;
    if (x.ndim !== 4 || x.size(1) !== channels || x.size(2) !== imageSize || x.size(3) !== imageSize) {
      throw new TypeError(`ViT: expected images [N, ${channels}, ${imageSize}, ${imageSize}], got shape [${x.shape}]`);
    }
    return scope(() => {
      const patches = this.patch_embed.forward(this.normalize.forward(x));
      const n = patches.size(0);
      const tokens = cat([this.cls_token.expand(n, -1, -1), patches], 1).add(this.pos_embed);
      return this.head.forward(this.norm.forward(this.blocks.forward(tokens)).select(1, 0));
    });
  }

  /** Refused with the reason: a Lipschitz-margin certificate needs a global constant, which attention does not have. */
  override lipschitz(_norm: LipschitzNorm, _options?: LipschitzOptions): number {
    throw new LipschitzError(
      "ViT: no global Lipschitz bound: dot-product self-attention is not Lipschitz on an unbounded input domain (Kim, Papamakarios & Mnih 2021), and LayerNorm divides by the input's own std; certify a ViT with interval bounds or randomized smoothing instead",
    );
  }
}

/** vit_small_patch16 (dim 384, depth 12, heads 6, MLP x4) for the given image size and classes. */
export function vitSmall(options: Omit<ViTOptions, "dim" | "depth" | "heads" | "patchSize"> = {}): ViT {
  return new ViT({ ...options, patchSize: 16, dim: 384, depth: 12, heads: 6, mlpRatio: 4, imageSize: options.imageSize ?? 224 });
}
