// Creating tensors: from JS data, constants, ranges and random draws.
import { type AnyTypedArray, type DType, dtypeCode } from "./dtype.js";
import type { Generator } from "./generator.js";
import { native } from "./native.js";
import type { OpName } from "./op-table.js";
import { callInPlace, callTensor, type OpArg } from "./ops.js";
import { type Device, type NestedArray, Tensor } from "./tensor.js";

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

/** Options of the random creation functions. */
export interface RandomOptions extends CreateOptions {
  /** Draw from this generator instead of the global one (which is then not advanced). */
  generator?: Generator;
}

type Shape = readonly number[];

/** A CUDA request on a machine without CUDA fails here, not in a 40-line dispatcher dump. */
function checkDevice(device: Device | undefined): void {
  if (device?.startsWith("cuda") && !native.cudaIsAvailable()) {
    throw new Error(`device '${device}' requested but CUDA is not available (LibTorch without CUDA support, or no GPU)`);
  }
}

function opts(o: CreateOptions, fallback: DType | undefined): { dtype: number | undefined; device: string | undefined } {
  checkDevice(o.device);
  const d = o.dtype ?? fallback;
  return { dtype: d === undefined ? undefined : dtypeCode(d), device: o.device };
}

function finish(t: Tensor, o: CreateOptions): Tensor {
  if (o.requiresGrad) t.requiresGrad = true;
  return t;
}

function checkShape(shape: Shape, what: string): void {
  for (const [i, s] of shape.entries()) {
    if (!Number.isSafeInteger(s) || s < 0) throw new TypeError(`${what}: shape[${i}] = ${s} is not a non-negative integer`);
  }
}

const NATIVE_ARRAY: Record<string, DType> = {
  Float32Array: "float32",
  Float64Array: "float64",
  BigInt64Array: "int64",
  Int32Array: "int32",
  Int16Array: "int16",
  Int8Array: "int8",
  Uint8Array: "uint8",
};

function inferShape(data: NestedArray, path: string): number[] {
  if (!Array.isArray(data)) return [];
  if (data.length === 0) return [0];
  const inner = inferShape(data[0] as NestedArray, `${path}[0]`);
  for (let i = 1; i < data.length; i++) {
    const s = inferShape(data[i] as NestedArray, `${path}[${i}]`);
    if (s.length !== inner.length || s.some((v, k) => v !== inner[k])) {
      throw new TypeError(`tensor(): ragged nested array: ${path}[${i}] has shape [${s}] but ${path}[0] has [${inner}]`);
    }
  }
  return [data.length, ...inner];
}

function flattenInto(data: NestedArray, out: number[]): void {
  if (Array.isArray(data)) {
    for (const d of data) flattenInto(d, out);
  } else if (typeof data === "boolean") {
    out.push(data ? 1 : 0);
  } else if (typeof data === "number") {
    out.push(data);
  } else {
    throw new TypeError(`tensor(): expected numbers or booleans, got ${typeof data}`);
  }
}

function firstLeaf(data: NestedArray): NestedArray {
  return Array.isArray(data) && data.length > 0 ? firstLeaf(data[0] as NestedArray) : data;
}

/**
 * A tensor from nested arrays (shape inferred) or from a typed array plus a shape.
 * Numbers default to float32 (JS has no separate integer type), booleans to bool.
 */
export function tensor(data: NestedArray | AnyTypedArray, options: CreateOptions & { shape?: Shape } = {}): Tensor {
  // Validate before creating anything, so that a bad option leaks no intermediate tensor.
  if (options.dtype !== undefined) dtypeCode(options.dtype);
  checkDevice(options.device);
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const own = NATIVE_ARRAY[data.constructor.name];
    if (own === undefined) throw new TypeError(`tensor(): unsupported typed array ${data.constructor.name}`);
    const shape = options.shape ?? [data.length];
    checkShape(shape, "tensor()");
    const numel = shape.reduce((a, b) => a * b, 1);
    if (numel !== data.length) {
      throw new TypeError(`tensor(): shape [${shape.join(", ")}] needs ${numel} values, got ${data.length}`);
    }
    t = Tensor.fromHandle(native.fromBuffer(data, shape, dtypeCode(own)));
  } else {
    const shape = inferShape(data, "data");
    if (options.shape !== undefined) throw new TypeError("tensor(): give shape only with a typed array");
    const flat: number[] = [];
    flattenInto(data, flat);
    const isBool = typeof firstLeaf(data) === "boolean";
    const base = isBool ? new Uint8Array(flat) : new Float64Array(flat);
    t = Tensor.fromHandle(native.fromBuffer(base, shape, dtypeCode(isBool ? "uint8" : "float64")));
    const want = options.dtype ?? (isBool ? "bool" : "float32");
    const converted = t.to(want);
    t.dispose();
    t = converted;
  }
  if (options.dtype !== undefined && t.dtype !== options.dtype) {
    const converted = t.to(options.dtype);
    t.dispose();
    t = converted;
  }
  if (options.device !== undefined && options.device !== "cpu") {
    const moved = t.to(options.device);
    t.dispose();
    t = moved;
  }
  return finish(t, options);
}

/** A tensor whose values are the given raw little-endian bytes (e.g. from a safetensors file). */
export function fromBytes(bytes: Uint8Array, shape: readonly number[], dtype: DType): Tensor {
  checkShape(shape, "fromBytes");
  return Tensor.fromHandle(native.fromBuffer(bytes, shape, dtypeCode(dtype)));
}

/** A 0-d tensor. */
export function scalar(value: number | boolean, options: CreateOptions = {}): Tensor {
  return tensor(value, options);
}

export function zeros(shape: Shape, options: CreateOptions = {}): Tensor {
  checkShape(shape, "zeros");
  return finish(callTensor("zeros", [shape], opts(options, "float32")), options);
}

export function ones(shape: Shape, options: CreateOptions = {}): Tensor {
  checkShape(shape, "ones");
  return finish(callTensor("ones", [shape], opts(options, "float32")), options);
}

export function full(shape: Shape, value: number | boolean, options: CreateOptions = {}): Tensor {
  checkShape(shape, "full");
  const fallback = typeof value === "boolean" ? "bool" : "float32";
  return finish(callTensor("full", [shape, value], opts(options, fallback)), options);
}

/** Uninitialised memory: only for buffers that are fully written before being read. */
export function empty(shape: Shape, options: CreateOptions = {}): Tensor {
  checkShape(shape, "empty");
  return finish(callTensor("empty", [shape], opts(options, "float32")), options);
}

/** A random op: the plain overload, or its twin taking a generator when one is given. */
function draw(plain: OpName, withGenerator: OpName, args: OpArg[], options: RandomOptions, fallback: DType): Tensor {
  const o = opts(options, fallback);
  const { generator } = options;
  const t = generator === undefined ? callTensor(plain, args, o) : callTensor(withGenerator, args, { ...o, generator });
  return finish(t, options);
}

/** Uniform on [0, 1). */
export function rand(shape: Shape, options: RandomOptions = {}): Tensor {
  checkShape(shape, "rand");
  return draw("rand", "randGenerator", [shape], options, "float32");
}

/** Standard normal. */
export function randn(shape: Shape, options: RandomOptions = {}): Tensor {
  checkShape(shape, "randn");
  return draw("randn", "randnGenerator", [shape], options, "float32");
}

/** Integers uniform on [low, high), int64 by default. */
export function randint(low: number, high: number, shape: Shape, options: RandomOptions = {}): Tensor {
  checkShape(shape, "randint");
  return draw("randint", "randintGenerator", [low, high, shape], options, "int64");
}

/** A random permutation of 0..n-1 (int64). */
export function randperm(n: number, options: RandomOptions = {}): Tensor {
  return draw("randperm", "randpermGenerator", [n], options, "int64");
}

/** arange(end) or arange(start, end, step); int64 when all bounds are integers, like PyTorch. */
export function arange(startOrEnd: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, startOrEnd] : [startOrEnd, end];
  const integral = [s, e, step].every(Number.isInteger);
  return finish(callTensor("arange", [s, e, step], opts(options, integral ? "int64" : "float32")), options);
}

export function linspace(start: number, end: number, steps: number, options: CreateOptions = {}): Tensor {
  return finish(callTensor("linspace", [start, end, steps], opts(options, "float32")), options);
}

export function eye(n: number, m: number = n, options: CreateOptions = {}): Tensor {
  return finish(callTensor("eye", [n, m], opts(options, "float32")), options);
}

export function zerosLike(t: Tensor, options: CreateOptions = {}): Tensor {
  return finish(callTensor("zerosLike", [t], opts(options, undefined)), options);
}

export function onesLike(t: Tensor, options: CreateOptions = {}): Tensor {
  return finish(callTensor("onesLike", [t], opts(options, undefined)), options);
}

export function fullLike(t: Tensor, value: number | boolean, options: CreateOptions = {}): Tensor {
  return finish(callTensor("fullLike", [t, value], opts(options, undefined)), options);
}

export function emptyLike(t: Tensor, options: CreateOptions = {}): Tensor {
  return finish(callTensor("emptyLike", [t], opts(options, undefined)), options);
}

/** Uniform on [0, 1) with t's shape (and dtype/device unless given). */
export function randLike(t: Tensor, options: RandomOptions = {}): Tensor {
  // aten::rand_like has no generator overload; it is empty_like + uniform_ inside ATen,
  // and so is this, which draws exactly what rand(shape, { generator }) would.
  if (options.generator !== undefined) return finish(fillLike(t, options, "uniform_", options.generator), options);
  return finish(callTensor("randLike", [t], opts(options, undefined)), options);
}

/** Standard normal with t's shape (and dtype/device unless given). */
export function randnLike(t: Tensor, options: RandomOptions = {}): Tensor {
  // As randLike: randn_like is empty_like + normal_ in ATen.
  if (options.generator !== undefined) return finish(fillLike(t, options, "normal_", options.generator), options);
  return finish(callTensor("randnLike", [t], opts(options, undefined)), options);
}

function fillLike(t: Tensor, options: CreateOptions, fill: "uniform_" | "normal_", generator: Generator): Tensor {
  const out = callTensor("emptyLike", [t], opts(options, undefined));
  try {
    callInPlace(fill, [out, 0, 1], { generator });
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}
