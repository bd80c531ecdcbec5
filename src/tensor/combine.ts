// Free functions over several tensors.
import { callInPlace, callTensor } from "./ops.js";
import type { Tensor, TensorOrScalar } from "./tensor.js";

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new TypeError("cat: needs at least one tensor");
  return callTensor("cat", [tensors, dim]);
}

export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new TypeError("stack: needs at least one tensor");
  return callTensor("stack", [tensors, dim]);
}

/** condition ? a : b, elementwise with broadcasting. */
export function where(condition: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  return callTensor("where", [condition, a, b]);
}

/** Einstein summation, e.g. einsum("bij,bjk->bik", x, y). */
export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  return callTensor("einsum", [equation, operands]);
}

/** out = a + alpha * b, written into an existing tensor (one memory pass, no allocation). */
export function addInto(out: Tensor, a: Tensor, b: TensorOrScalar, alpha = 1): Tensor {
  callInPlace("addOut", [a, b], { alpha, out });
  return out;
}
