import { checkNorm, LipschitzError, type LipschitzNorm, type LipschitzOptions } from "../certify/lipschitz.js";
import { noGrad } from "../tensor/autograd.js";
import { ones, zeros } from "../tensor/creation.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { batchNorm } from "./functional.js";
import { Module } from "./module.js";

export interface BatchNormOptions {
  eps?: number;
  /** null: cumulative moving average (1 / num_batches_tracked), as in PyTorch. */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  readonly numBatchesTracked: Tensor | null;
  readonly eps: number;
  readonly momentum: number | null;

  constructor(
    readonly numFeatures: number,
    o: BatchNormOptions = {},
  ) {
    super();
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum === undefined ? 0.1 : o.momentum;
    const affine = o.affine ?? true;
    const track = o.trackRunningStats ?? true;
    this.weight = this.registerParameter("weight", affine ? ones([numFeatures]) : null);
    this.bias = this.registerParameter("bias", affine ? zeros([numFeatures]) : null);
    this.runningMean = this.registerBuffer("running_mean", track ? zeros([numFeatures]) : null);
    this.runningVar = this.registerBuffer("running_var", track ? ones([numFeatures]) : null);
    this.numBatchesTracked = this.registerBuffer("num_batches_tracked", track ? zeros([], { dtype: "int64" }) : null);
  }

  forward(input: Tensor): Tensor {
    if (input.ndim !== 4) throw new TypeError(`BatchNorm2d: expected a 4-D input [N, C, H, W], got shape [${input.shape}]`);
    let factor = this.momentum ?? 0;
    if (this.training && this.numBatchesTracked !== null) {
      noGrad(() => this.numBatchesTracked?.add_(1));
      if (this.momentum === null) factor = 1 / (this.numBatchesTracked.item() || 1);
    }
    // Batch statistics in training, or in eval when there are no running statistics.
    return batchNorm(input, this.runningMean, this.runningVar, {
      weight: this.weight,
      bias: this.bias,
      training: this.training || this.runningMean === null,
      momentum: factor,
      eps: this.eps,
    });
  }

  /**
   * In eval mode BatchNorm is the per-channel affine map x -> s_c x + t_c with
   * s_c = gamma_c / sqrt(running_var_c + eps): |s_c| per channel, float64 [C]. Refused in training
   * mode and without running statistics, where the output depends on the whole batch.
   */
  channelScale(): Tensor {
    if (this.training)
      throw new LipschitzError("BatchNorm2d: no Lipschitz bound in training mode (batch statistics); call eval() first");
    const { runningVar, weight } = this;
    if (runningVar === null)
      throw new LipschitzError(
        "BatchNorm2d: no Lipschitz bound without running statistics (it normalises with batch statistics)",
      );
    return noGrad(() =>
      scope(() => {
        const inv = runningVar.detach().double().add(this.eps).rsqrt();
        return (weight === null ? inv : inv.mul(weight.detach().double())).abs();
      }),
    );
  }

  /** max_c |gamma_c| / sqrt(running_var_c + eps) (a diagonal scale: exact in both norms); eval mode only. */
  override lipschitz(norm: LipschitzNorm, _options?: LipschitzOptions): number {
    checkNorm(norm, "BatchNorm2d.lipschitz");
    return scope(() => this.channelScale().max().item());
  }
}
