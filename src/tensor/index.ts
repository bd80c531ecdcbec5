export {
  type AutocastDeviceType,
  type AutocastOptions,
  type AutocastState,
  autocast,
  autocastState,
  isAutocastEnabled,
  type Precision,
  withPrecision,
} from "./autocast.js";
export { autograd, enableGrad, type GradOptions, isGradEnabled, noGrad } from "./autograd.js";
export { addInto, cat, einsum, stack, where } from "./combine.js";
export * from "./creation.js";
export { type DType, elementSize, isFloatingPoint } from "./dtype.js";
export { defaultGenerator, Generator, type GeneratorOptions } from "./generator.js";
export { OP_TABLE, type OpName } from "./op-table.js";
export { callOp, opSchema } from "./ops.js";
export {
  type AllocatorStats,
  allocatorStats,
  cuda,
  emptyCache,
  engineInfo,
  getNumThreads,
  type MemoryStats,
  manualSeed,
  memoryStats,
  setNumThreads,
} from "./runtime.js";
export { dispose, keep, scope } from "./scope.js";
export {
  type BackwardOptions,
  type Device,
  type Dims,
  type MemoryFormat,
  type NestedArray,
  type Scalar,
  Tensor,
  type TensorOrScalar,
} from "./tensor.js";
