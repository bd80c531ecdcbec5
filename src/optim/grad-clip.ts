// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_ (PyTorch 1.13).
import { noGrad } from "../tensor/autograd.js";
import { stack } from "../tensor/combine.js";
import type { Tensor } from "../tensor/tensor.js";

export interface ClipGradNormOptions {
  /** Throw when the total norm is NaN or infinite instead of scaling by it. */
  errorIfNonfinite?: boolean;
}

function gradsOf(params: Tensor | readonly Tensor[]): Tensor[] {
  const list = Array.isArray(params) ? (params as readonly Tensor[]) : [params as Tensor];
  const out: Tensor[] = [];
  for (const p of list) {
    const g = p.grad;
    if (g !== null) out.push(g);
  }
  return out;
}

/**
 * Scales the gradients in place so that their joint normType-norm (over all of them, as
 * one vector) is at most maxNorm, and returns the norm before clipping. Like PyTorch, the
 * scale is maxNorm / (norm + 1e-6) clamped to 1 and is always applied.
 */
export function clipGradNorm(
  params: Tensor | readonly Tensor[],
  maxNorm: number,
  normType = 2,
  options: ClipGradNormOptions = {},
): number {
  if (typeof maxNorm !== "number" || Number.isNaN(maxNorm) || maxNorm < 0) {
    throw new RangeError(`clipGradNorm: maxNorm must be a non-negative number, got ${String(maxNorm)}`);
  }
  if (typeof normType !== "number" || !(normType > 0)) {
    throw new RangeError(`clipGradNorm: normType must be a positive number or Infinity, got ${String(normType)}`);
  }
  const grads = gradsOf(params);
  try {
    if (grads.length === 0) return 0;
    const total = noGrad(() => {
      if (normType === Infinity) {
        let m = -Infinity;
        for (const g of grads) {
          const a = g.abs();
          const mx = a.max();
          const v = mx.item();
          a.dispose();
          mx.dispose();
          m = Number.isNaN(v) || Number.isNaN(m) ? Number.NaN : Math.max(m, v);
        }
        return m;
      }
      const norms = grads.map((g) => g.norm(normType));
      const stacked = stack(norms);
      const t = stacked.norm(normType);
      const v = t.item();
      for (const n of norms) n.dispose();
      stacked.dispose();
      t.dispose();
      return v;
    });
    if (options.errorIfNonfinite && !Number.isFinite(total)) {
      throw new RangeError(
        `clipGradNorm: the total norm of order ${normType} of the gradients is ${total}, so they cannot be clipped; ` +
          "leave errorIfNonfinite off to scale by it anyway",
      );
    }
    // PyTorch computes max_norm / (total + 1e-6) on a tensor of the gradients' dtype as
    // reciprocal(total + 1e-6) * max_norm; rounding each step to that precision reproduces it.
    const f = grads[0]?.dtype === "float64" ? (x: number) => x : Math.fround;
    const coef = Math.min(f(f(1 / f(total + f(1e-6))) * f(maxNorm)), 1);
    noGrad(() => {
      for (const g of grads) g.mul_(coef);
    });
    return total;
  } finally {
    for (const g of grads) g.dispose();
  }
}

/** Clamps every gradient element to [-clipValue, clipValue] in place. */
export function clipGradValue(params: Tensor | readonly Tensor[], clipValue: number): void {
  if (typeof clipValue !== "number" || Number.isNaN(clipValue) || clipValue < 0) {
    throw new RangeError(`clipGradValue: clipValue must be a non-negative number, got ${String(clipValue)}`);
  }
  const grads = gradsOf(params);
  try {
    noGrad(() => {
      for (const g of grads) g.clamp_(-clipValue, clipValue);
    });
  } finally {
    for (const g of grads) g.dispose();
  }
}
