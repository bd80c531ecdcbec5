// SyncBatchNorm (torch.nn.SyncBatchNorm) for the BatchNorm2d layers of a model: in training,
// the batch statistics are those of the global batch (every rank's share together), through
// a differentiable allreduce of per-channel sums, so gradients flow across ranks as in
// PyTorch. The layers stay BatchNorm2d (same state dict, same eval behaviour): only their
// training forward changes, which is also why checkpoints need no conversion.
//
// Every rank must run every synchronised layer in every training forward, in the same order:
// true of a ResNet, not of a MoE's experts when the router sends a rank no samples for one
// (PyTorch's SyncBatchNorm has the same requirement).
import { MoE } from "../models/moe.js";
import { BatchNorm2d } from "../nn/batch-norm.js";
import type { Module } from "../nn/module.js";
import { noGrad } from "../tensor/autograd.js";
import { cat } from "../tensor/combine.js";
import { full } from "../tensor/creation.js";
import type { Tensor } from "../tensor/tensor.js";
import type { ProcessGroup } from "./process-group.js";

function syncForward(bn: BatchNorm2d, x: Tensor, group: ProcessGroup): Tensor {
  if (x.ndim !== 4) throw new TypeError(`BatchNorm2d: expected a 4-D input [N, C, H, W], got shape [${x.shape}]`);
  const C = x.size(1);
  // Sums in float64 (cheap next to the convolutions): E[x^2] - E[x]^2 then loses little.
  const xd = x.double();
  const local = x.numel / C;
  const stats = group.allreduceWithGrad(
    cat([xd.sum([0, 2, 3]), xd.mul(xd).sum([0, 2, 3]), full([1], local, { dtype: "float64" })]),
  );
  const n = stats.narrow(0, 2 * C, 1).item();
  const mean = stats.narrow(0, 0, C).div(n);
  const variance = stats.narrow(0, C, C).div(n).sub(mean.mul(mean));
  noGrad(() => {
    bn.numBatchesTracked?.add_(1);
    const f = bn.momentum ?? 1 / ((bn.numBatchesTracked?.item() as number) || 1);
    // Running variance unbiased, as BatchNorm's (n / (n - 1)).
    bn.runningMean?.mul_(1 - f).add_(mean.to(bn.runningMean.dtype).mul(f));
    bn.runningVar?.mul_(1 - f).add_(
      variance
        .mul(n / Math.max(1, n - 1))
        .to(bn.runningVar.dtype)
        .mul(f),
    );
  });
  const shape = [1, C, 1, 1];
  const scale = variance
    .add(bn.eps)
    .rsqrt()
    .to(x.dtype)
    .view(...shape);
  let y = x.sub(mean.to(x.dtype).view(...shape)).mul(scale);
  if (bn.weight !== null) y = y.mul(bn.weight.view(...shape));
  if (bn.bias !== null) y = y.add(bn.bias.view(...shape));
  return y;
}

/**
 * Makes every BatchNorm2d in `module` normalise training batches with the statistics of the
 * whole group's batch. Returns a function that restores per-rank statistics.
 */
export function syncBatchNorm(module: Module, group: ProcessGroup): () => void {
  for (const m of module.modules()) {
    if (!(m instanceof MoE) || m.experts.length < 2) continue;
    // An expert a rank routes no sample to skips its BatchNorm there: the others would wait
    // for it until the timeout. Refused rather than hung.
    if (m.k < m.experts.length)
      throw new Error(
        `syncBatchNorm: a MoE with ${m.gating} gating (k = ${m.k} of ${m.experts.length} experts) does not run every expert on every rank; use dense gating or per-rank BatchNorm statistics`,
      );
    // The concurrent expert backward runs the experts (and their collectives) in a thread
    // order that differs between ranks; collectives must come in the same order everywhere.
    m.concurrentBackward = false;
  }
  const patched: BatchNorm2d[] = [];
  for (const m of module.modules()) {
    if (!(m instanceof BatchNorm2d)) continue;
    const bn = m;
    const plain = BatchNorm2d.prototype.forward;
    // An own property shadows the class's forward; eval mode keeps the plain path.
    bn.forward = (x: Tensor): Tensor => (bn.training && group.worldSize > 1 ? syncForward(bn, x, group) : plain.call(bn, x));
    patched.push(bn);
  }
  return () => {
    for (const bn of patched) delete (bn as { forward?: unknown }).forward;
  };
}
