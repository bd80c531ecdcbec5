// Multi-head self-attention with timm's layout (one fused qkv projection, then proj),
// so ViT checkpoints from timm load by name.
import { LipschitzError, type LipschitzNorm, type LipschitzOptions } from "../certify/lipschitz.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { softmax } from "./functional.js";
import { Linear } from "./linear.js";
import { Module } from "./module.js";

export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly headDim: number;

  constructor(
    readonly dim: number,
    readonly heads: number,
    options: { qkvBias?: boolean } = {},
  ) {
    super();
    if (dim % heads !== 0) throw new TypeError(`Attention: dim ${dim} is not divisible by heads ${heads}`);
    this.headDim = dim / heads;
    this.qkv = this.registerModule("qkv", new Linear(dim, 3 * dim, { bias: options.qkvBias ?? true }));
    this.proj = this.registerModule("proj", new Linear(dim, dim));
  }

  /** x: [batch, tokens, dim] -> [batch, tokens, dim]. */
  forward(x: Tensor): Tensor {
    const [b, n, c] = x.shape as [number, number, number];
    if (c !== this.dim) throw new TypeError(`Attention: expected last dimension ${this.dim}, got shape [${x.shape}]`);
    return scope(() => {
      const qkv = this.qkv.forward(x).reshape(b, n, 3, this.heads, this.headDim).permute(2, 0, 3, 1, 4);
      const [q, k, v] = [qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2)] as [Tensor, Tensor, Tensor];
      const att = softmax(q.matmul(k.transpose(-2, -1)).div(Math.sqrt(this.headDim)), -1);
      return this.proj.forward(att.matmul(v).transpose(1, 2).reshape(b, n, c));
    });
  }

  /** Refused: dot-product self-attention is not Lipschitz on an unbounded domain (Kim, Papamakarios & Mnih 2021). */
  override lipschitz(_norm: LipschitzNorm, _options?: LipschitzOptions): number {
    throw new LipschitzError(
      "Attention: dot-product self-attention has no global Lipschitz bound (softmax(q k^T) v grows quadratically in the input: Kim et al. 2021)",
    );
  }
}
