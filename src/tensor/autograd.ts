// Autograd entry points beyond Tensor.backward().
import { native } from "./native.js";
import { Tensor } from "./tensor.js";

export interface GradOptions {
  /** Seeds for non-scalar outputs (null: ones for a scalar output). */
  gradOutputs?: readonly (Tensor | null)[];
  retainGraph?: boolean;
  createGraph?: boolean;
  /** Return null for inputs the outputs do not depend on instead of throwing. */
  allowUnused?: boolean;
}

/**
 * d(outputs)/d(inputs), like torch.autograd.grad: parameters' .grad is left untouched,
 * which is what attacks need (thousands of input gradients through a trained model).
 */
function grad(
  outputs: Tensor | readonly Tensor[],
  inputs: Tensor | readonly Tensor[],
  options: GradOptions = {},
): (Tensor | null)[] {
  const outs = outputs instanceof Tensor ? [outputs] : outputs;
  const ins = inputs instanceof Tensor ? [inputs] : inputs;
  const seeds = options.gradOutputs ? options.gradOutputs.map((g) => (g === null ? null : g.handle)) : null;
  const result = native.grad(
    outs.map((t) => t.handle),
    ins.map((t) => t.handle),
    seeds,
    options.retainGraph,
    options.createGraph ?? false,
    options.allowUnused ?? false,
  );
  return result.map((h) => (h === null ? null : Tensor.fromHandle(h)));
}

/**
 * Marks independent branches of the graph (e.g. the experts of an MoE, each applied to
 * its own samples) to be differentiated concurrently. Returns a copy of each root to use
 * in their place; when backward reaches the copies, the branches' own backward passes run
 * side by side on the intra-op threads (one each), which for small sub-batches avoids the
 * per-operator thread synchronisation of a sequential backward. Gradients are the same as
 * with the roots themselves. The branches must not share intermediate tensors that require
 * grad (shared leaves such as parameters are fine). Refused with an error, never answered
 * wrongly: createGraph through the copies, and autograd.grad on any graph that contains
 * them (use backward(), or keep the roots themselves for autograd.grad).
 */
function concurrentBranches(roots: readonly Tensor[]): Tensor[] {
  return native.concurrentBranches(roots.map((t) => t.handle)).map((h) => Tensor.fromHandle(h));
}

export const autograd = { grad, concurrentBranches };

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

function withGradMode<T>(on: boolean, fn: () => T): T {
  const prev = native.isGradEnabled();
  native.setGradEnabled(on);
  try {
    const result = fn();
    if (result instanceof Promise) {
      throw new TypeError("noGrad/enableGrad take a synchronous function (grad mode is per thread, not per promise)");
    }
    return result;
  } finally {
    native.setGradEnabled(prev);
  }
}

/**
 * Runs fn without recording autograd history (torch.no_grad). Inside an autocast region with
 * the cast cache on, fn bypasses the cache: LibTorch 1.13 would otherwise cache the bfloat16
 * copy of a weight first cast here, without its gradient path, and hand that copy to the
 * region's later training forward (the weight would get no gradient). PyTorch's own no_grad
 * has this hazard; ours does not, so training regions can keep the cache (src/tensor/autocast.ts).
 */
export function noGrad<T>(fn: () => T): T {
  const cast = native.autocastState("cpu");
  if (!(cast.enabled && cast.cacheEnabled)) return withGradMode(false, fn);
  native.autocastSetState("cpu", cast.enabled, cast.dtype, false);
  try {
    return withGradMode(false, fn);
  } finally {
    native.autocastSetState("cpu", cast.enabled, cast.dtype, true);
  }
}

export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}
