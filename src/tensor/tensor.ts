// The Tensor class: a PyTorch-shaped view of one native at::Tensor.
import { type AnyTypedArray, type DType, dtypeCode, dtypeFromCode } from "./dtype.js";
import type { Generator } from "./generator.js";
import { native, type TensorHandle } from "./native.js";
import { callInPlace, callOp, callTensor, callTensors } from "./ops.js";
import { type Disposable, keep, track } from "./scope.js";

export type Device = "cpu" | "cuda" | `cuda:${number}`;
export type Scalar = number | boolean;
/** How a 4-d tensor is laid out in memory: NCHW ("contiguous") or NHWC ("channelsLast"). */
export type MemoryFormat = "contiguous" | "channelsLast";
export type TensorOrScalar = Tensor | Scalar;
export type Dims = number | readonly number[];

export interface BackwardOptions {
  retainGraph?: boolean;
  createGraph?: boolean;
}

function dimList(d: Dims | undefined): readonly number[] | undefined {
  if (d === undefined) return undefined;
  return typeof d === "number" ? [d] : d;
}

// LibTorch 1.13's masked_fill does not check the mask dtype and reads a float or int
// mask as raw bytes (a float 1.0 reads as false), so check it here.
function checkMask(mask: Tensor, what: string): void {
  const d = mask.dtype;
  if (d !== "bool" && d !== "uint8") throw new TypeError(`${what}: mask must be a bool tensor, got ${d}`);
}

export class Tensor implements Disposable {
  #handle: TensorHandle | null;

  private constructor(handle: TensorHandle) {
    this.#handle = handle;
  }

  /** Wraps a native handle; the new tensor belongs to the innermost scope. */
  static fromHandle(handle: TensorHandle): Tensor {
    return track(new Tensor(handle));
  }

  get handle(): TensorHandle {
    if (this.#handle === null) throw new Error("tensor was already disposed");
    return this.#handle;
  }

  // ---- lifetime -------------------------------------------------------------
  dispose(): void {
    if (this.#handle === null) return;
    native.dispose(this.#handle);
    this.#handle = null;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** Exempts this tensor from enclosing scopes (parameters, optimizer state). */
  keep(): this {
    return keep(this);
  }

  // ---- metadata ---------------------------------------------------------------
  get shape(): number[] {
    return native.shape(this.handle);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get dtype(): DType {
    return dtypeFromCode(native.dtype(this.handle));
  }

  get device(): string {
    return native.meta(this.handle).device;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  size(dim?: number): number {
    const s = this.shape;
    if (dim === undefined) return s.reduce((a, b) => a * b, 1);
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) throw new RangeError(`size(${dim}): tensor has ${s.length} dimensions`);
    return s[d] as number;
  }

  get isContiguous(): boolean {
    return native.meta(this.handle).isContiguous;
  }

  /** Element strides per dimension, as PyTorch's tensor.stride(). */
  stride(): number[] {
    return native.layout(this.handle).strides;
  }

  /**
   * The memory format a 4-d tensor is dense in: "channelsLast" (NHWC in memory, as
   * torch.channels_last), "contiguous" (NCHW), or null for neither (a strided view). A
   * tensor dense in both (e.g. 1x1 spatial) reports "contiguous", as PyTorch suggests.
   */
  get memoryFormat(): MemoryFormat | null {
    const l = native.layout(this.handle);
    if (l.isContiguous) return "contiguous";
    return l.isChannelsLast ? "channelsLast" : null;
  }

  // ---- autograd -------------------------------------------------------------
  get requiresGrad(): boolean {
    return native.meta(this.handle).requiresGrad;
  }

  set requiresGrad(on: boolean) {
    native.setRequiresGrad(this.handle, on);
  }

  requiresGrad_(on = true): this {
    native.setRequiresGrad(this.handle, on);
    return this;
  }

  get isLeaf(): boolean {
    return native.meta(this.handle).isLeaf;
  }

  /** Name of the autograd node that produced this tensor, e.g. "AddBackward0". */
  get gradFn(): string | null {
    return native.meta(this.handle).gradFn;
  }

  /** A new handle on the accumulated gradient (dispose it or use a scope), or null. */
  get grad(): Tensor | null {
    const g = native.getGrad(this.handle);
    return g === null ? null : Tensor.fromHandle(g);
  }

  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }

  backward(gradient?: Tensor, options: BackwardOptions = {}): void {
    native.backward([this.handle], gradient ? [gradient.handle] : null, options.retainGraph, options.createGraph ?? false);
  }

  detach(): Tensor {
    return callTensor("detach", [this]);
  }

  // ---- reading values -------------------------------------------------------------
  toTypedArray(): AnyTypedArray {
    const dt = this.dtype;
    if (dt === "float16" || dt === "bfloat16") {
      const wide = this.to("float32");
      try {
        return wide.toTypedArray();
      } finally {
        wide.dispose();
      }
    }
    const buf = native.toBuffer(this.handle);
    switch (dt) {
      case "float32":
        return new Float32Array(buf);
      case "float64":
        return new Float64Array(buf);
      case "int64":
        return new BigInt64Array(buf);
      case "int32":
        return new Int32Array(buf);
      case "int16":
        return new Int16Array(buf);
      case "int8":
        return new Int8Array(buf);
      default:
        return new Uint8Array(buf);
    }
  }

  /** The raw little-endian bytes of the values in row-major order (any dtype, no conversion). */
  toBytes(): Uint8Array {
    return new Uint8Array(native.toBuffer(this.handle));
  }

  /**
   * Replaces this tensor's data with src's (same JS object, same autograd leaf), like
   * PyTorch's `t.data = src`. Used to move or cast parameters without breaking references.
   */
  setData(src: Tensor): this {
    native.setData(this.handle, src.handle);
    return this;
  }

  /** Values as numbers (int64 converted to number), flat in row-major order. */
  toFlatArray(): number[] {
    const a = this.toTypedArray();
    return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a as ArrayLike<number>);
  }

  /** Values as nested arrays following the shape (booleans for bool tensors). */
  toArray(): NestedArray {
    const flat: (number | boolean)[] = this.dtype === "bool" ? this.toFlatArray().map((v) => v !== 0) : this.toFlatArray();
    const shape = this.shape;
    if (shape.length === 0) return flat[0] as number;
    let pos = 0;
    const build = (d: number): NestedArray => {
      const n = shape[d] as number;
      const out: NestedArray[] = [];
      for (let i = 0; i < n; i++) out.push(d === shape.length - 1 ? (flat[pos++] as number) : build(d + 1));
      return out;
    };
    return build(0);
  }

  item(): number {
    return Number(native.item(this.handle));
  }

  toString(): string {
    const shape = this.shape;
    const body = this.numel <= 100 ? JSON.stringify(this.toArray()) : `[${this.numel} values]`;
    return `tensor(${body}, shape=[${shape.join(", ")}], dtype=${this.dtype})`;
  }

  // ---- conversion -------------------------------------------------------------
  to(target: DType | Device, options: { copy?: boolean } = {}): Tensor {
    const isDevice = target === "cpu" || target.startsWith("cuda");
    return callTensor("to", [this], {
      dtype: isDevice ? undefined : dtypeCode(target as DType),
      device: isDevice ? target : undefined,
      copy: options.copy ?? false,
    });
  }

  float(): Tensor {
    return this.to("float32");
  }

  double(): Tensor {
    return this.to("float64");
  }

  long(): Tensor {
    return this.to("int64");
  }

  int(): Tensor {
    return this.to("int32");
  }

  bool(): Tensor {
    return this.to("bool");
  }

  clone(): Tensor {
    return callTensor("clone", [this]);
  }

  contiguous(memoryFormat: MemoryFormat = "contiguous"): Tensor {
    return callTensor("contiguous", [this], { memory_format: memoryFormat === "channelsLast" ? 2 : 0 });
  }

  // ---- shape -------------------------------------------------------------
  reshape(...shape: number[]): Tensor {
    return callTensor("reshape", [this, shape]);
  }

  view(...shape: number[]): Tensor {
    return callTensor("view", [this, shape]);
  }

  permute(...dims: number[]): Tensor {
    return callTensor("permute", [this, dims]);
  }

  transpose(dim0: number, dim1: number): Tensor {
    return callTensor("transpose", [this, dim0, dim1]);
  }

  /** Matrix transpose of a 2-D tensor. */
  get T(): Tensor {
    return this.transpose(0, 1);
  }

  flatten(startDim = 0, endDim = -1): Tensor {
    return callTensor("flatten", [this, startDim, endDim]);
  }

  squeeze(dim?: number): Tensor {
    return dim === undefined ? callTensor("squeeze", [this]) : callTensor("squeezeDim", [this, dim]);
  }

  unsqueeze(dim: number): Tensor {
    return callTensor("unsqueeze", [this, dim]);
  }

  expand(...shape: number[]): Tensor {
    return callTensor("expand", [this, shape]);
  }

  expandAs(other: Tensor): Tensor {
    return this.expand(...other.shape);
  }

  split(sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
    return typeof sizeOrSizes === "number"
      ? callTensors("split", [this, sizeOrSizes, dim])
      : callTensors("splitWithSizes", [this, sizeOrSizes, dim]);
  }

  chunk(chunks: number, dim = 0): Tensor[] {
    return callTensors("chunk", [this, chunks, dim]);
  }

  narrow(dim: number, start: number, length: number): Tensor {
    return callTensor("narrow", [this, dim, start, length]);
  }

  /** x[start:end:step] along dim (end exclusive; negative indices count from the end). */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return callTensor("slice", [this, dim, start ?? null, end ?? null, step]);
  }

  /** x.select(dim, i): removes dim, like x[..., i, ...]. */
  select(dim: number, index: number): Tensor {
    return callTensor("select", [this, dim, index]);
  }

  /** Advanced indexing x[i0, i1, ...] with index tensors; null keeps a dimension whole. */
  index(indices: readonly (Tensor | null)[]): Tensor {
    return callTensor("index", [this, indices]);
  }

  indexSelect(dim: number, index: Tensor): Tensor {
    return callTensor("indexSelect", [this, dim, index]);
  }

  gather(dim: number, index: Tensor): Tensor {
    return callTensor("gather", [this, dim, index]);
  }

  scatter(dim: number, index: Tensor, src: TensorOrScalar): Tensor {
    return src instanceof Tensor
      ? callTensor("scatter", [this, dim, index, src])
      : callTensor("scatterValue", [this, dim, index, src]);
  }

  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return callTensor("scatterAdd", [this, dim, index, src]);
  }

  indexAdd(dim: number, index: Tensor, source: Tensor, alpha: number = 1): Tensor {
    return callTensor("indexAdd", [this, dim, index, source], { alpha });
  }

  maskedFill(mask: Tensor, value: TensorOrScalar): Tensor {
    checkMask(mask, "maskedFill");
    return value instanceof Tensor
      ? callTensor("maskedFillTensor", [this, mask, value])
      : callTensor("maskedFill", [this, mask, value]);
  }

  repeat(...repeats: number[]): Tensor {
    return callTensor("repeat", [this, repeats]);
  }

  flip(dims: Dims): Tensor {
    return callTensor("flip", [this, dimList(dims)]);
  }

  roll(shifts: Dims, dims: Dims = []): Tensor {
    return callTensor("roll", [this, dimList(shifts), dimList(dims)]);
  }

  // ---- elementwise math -------------------------------------------------------------
  add(other: TensorOrScalar, alpha: number = 1): Tensor {
    return callTensor("add", [this, other], alpha === 1 ? undefined : { alpha });
  }

  sub(other: TensorOrScalar, alpha: number = 1): Tensor {
    return callTensor("sub", [this, other], alpha === 1 ? undefined : { alpha });
  }

  mul(other: TensorOrScalar): Tensor {
    return callTensor("mul", [this, other]);
  }

  div(other: TensorOrScalar): Tensor {
    return callTensor("div", [this, other]);
  }

  pow(exponent: TensorOrScalar): Tensor {
    return exponent instanceof Tensor ? callTensor("powTensor", [this, exponent]) : callTensor("powScalar", [this, exponent]);
  }

  neg(): Tensor {
    return callTensor("neg", [this]);
  }

  abs(): Tensor {
    return callTensor("abs", [this]);
  }

  sign(): Tensor {
    return callTensor("sign", [this]);
  }

  exp(): Tensor {
    return callTensor("exp", [this]);
  }

  log(): Tensor {
    return callTensor("log", [this]);
  }

  sqrt(): Tensor {
    return callTensor("sqrt", [this]);
  }

  rsqrt(): Tensor {
    return callTensor("rsqrt", [this]);
  }

  tanh(): Tensor {
    return callTensor("tanh", [this]);
  }

  sigmoid(): Tensor {
    return callTensor("sigmoid", [this]);
  }

  erf(): Tensor {
    return callTensor("erf", [this]);
  }

  relu(): Tensor {
    return callTensor("relu", [this]);
  }

  clamp(min?: TensorOrScalar | null, max?: TensorOrScalar | null): Tensor {
    if (min instanceof Tensor || max instanceof Tensor) return callTensor("clampTensor", [this, min ?? null, max ?? null]);
    return callTensor("clamp", [this, min ?? null, max ?? null]);
  }

  /** Elementwise minimum with another tensor. */
  minimum(other: Tensor): Tensor {
    return callTensor("minimum", [this, other]);
  }

  /** Elementwise maximum with another tensor. */
  maximum(other: Tensor): Tensor {
    return callTensor("maximum", [this, other]);
  }

  eq(other: TensorOrScalar): Tensor {
    return callTensor("eq", [this, other]);
  }

  ne(other: TensorOrScalar): Tensor {
    return callTensor("ne", [this, other]);
  }

  lt(other: TensorOrScalar): Tensor {
    return callTensor("lt", [this, other]);
  }

  le(other: TensorOrScalar): Tensor {
    return callTensor("le", [this, other]);
  }

  gt(other: TensorOrScalar): Tensor {
    return callTensor("gt", [this, other]);
  }

  ge(other: TensorOrScalar): Tensor {
    return callTensor("ge", [this, other]);
  }

  logicalAnd(other: Tensor): Tensor {
    return callTensor("logicalAnd", [this, other]);
  }

  logicalOr(other: Tensor): Tensor {
    return callTensor("logicalOr", [this, other]);
  }

  logicalXor(other: Tensor): Tensor {
    return callTensor("logicalXor", [this, other]);
  }

  logicalNot(): Tensor {
    return callTensor("logicalNot", [this]);
  }

  // ---- reductions -------------------------------------------------------------
  sum(dim?: Dims, keepdim = false): Tensor {
    return dim === undefined ? callTensor("sumAll", [this]) : callTensor("sum", [this, dimList(dim), keepdim]);
  }

  mean(dim?: Dims, keepdim = false): Tensor {
    return dim === undefined ? callTensor("meanAll", [this]) : callTensor("mean", [this, dimList(dim), keepdim]);
  }

  /** Variance; correction 1 (default) is Bessel's unbiased estimate, 0 the population variance. */
  var(dim?: Dims, options: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return callTensor("var", [this, dimList(dim) ?? null], {
      correction: options.correction ?? 1,
      keepdim: options.keepdim ?? false,
    });
  }

  std(dim?: Dims, options: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return callTensor("std", [this, dimList(dim) ?? null], {
      correction: options.correction ?? 1,
      keepdim: options.keepdim ?? false,
    });
  }

  /** Vector p-norm over dim (all elements when omitted); p may be Infinity. */
  norm(p = 2, dim?: Dims, keepdim = false): Tensor {
    return callTensor("vectorNorm", [this, p, dimList(dim) ?? null, keepdim]);
  }

  /** Maximum of all elements. */
  max(): Tensor;
  /** Maximum along dim: [values, indices]. */
  max(dim: number, keepdim?: boolean): [Tensor, Tensor];
  max(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined ? callTensor("maxAll", [this]) : (callTensors("maxDim", [this, dim, keepdim]) as [Tensor, Tensor]);
  }

  min(): Tensor;
  min(dim: number, keepdim?: boolean): [Tensor, Tensor];
  min(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined ? callTensor("minAll", [this]) : (callTensors("minDim", [this, dim, keepdim]) as [Tensor, Tensor]);
  }

  argmax(dim?: number, keepdim = false): Tensor {
    return callTensor("argmax", [this, dim ?? null, keepdim]);
  }

  argmin(dim?: number, keepdim = false): Tensor {
    return callTensor("argmin", [this, dim ?? null, keepdim]);
  }

  /** [values, indices] of the k largest (or smallest) entries along dim. */
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] {
    return callTensors("topk", [this, k, dim, largest, sorted]) as [Tensor, Tensor];
  }

  sort(dim = -1, descending = false): [Tensor, Tensor] {
    return callTensors("sort", [this, dim, descending]) as [Tensor, Tensor];
  }

  logsumexp(dim: Dims, keepdim = false): Tensor {
    return callTensor("logsumexp", [this, dimList(dim), keepdim]);
  }

  cumsum(dim: number): Tensor {
    return callTensor("cumsum", [this, dim]);
  }

  all(): Tensor {
    return callTensor("allAll", [this]);
  }

  any(dim?: number, keepdim = false): Tensor {
    return dim === undefined ? callTensor("anyAll", [this]) : callTensor("anyDim", [this, dim, keepdim]);
  }

  /** Indices of non-zero elements, [count, ndim] int64. */
  nonzero(): Tensor {
    return callTensor("nonzero", [this]);
  }

  /** Counts of each value in a 1-D non-negative int tensor, at least minlength long. */
  bincount(minlength = 0): Tensor {
    return callTensor("bincount", [this, null, minlength]);
  }

  // ---- linear algebra -------------------------------------------------------------
  matmul(other: Tensor): Tensor {
    return callTensor("matmul", [this, other]);
  }

  mm(other: Tensor): Tensor {
    return callTensor("mm", [this, other]);
  }

  bmm(other: Tensor): Tensor {
    return callTensor("bmm", [this, other]);
  }

  // ---- in place (no autograd history on leaves that require grad) -----------------
  add_(other: TensorOrScalar, alpha: number = 1): this {
    callInPlace("add_", [this, other], alpha === 1 ? undefined : { alpha });
    return this;
  }

  sub_(other: TensorOrScalar, alpha: number = 1): this {
    callInPlace("sub_", [this, other], alpha === 1 ? undefined : { alpha });
    return this;
  }

  mul_(other: TensorOrScalar): this {
    callInPlace("mul_", [this, other]);
    return this;
  }

  div_(other: TensorOrScalar): this {
    callInPlace("div_", [this, other]);
    return this;
  }

  /** this += value * t1 * t2 */
  addcmul_(t1: Tensor, t2: Tensor, value: number = 1): this {
    callInPlace("addcmul_", [this, t1, t2], { value });
    return this;
  }

  /** this += value * t1 / t2 */
  addcdiv_(t1: Tensor, t2: Tensor, value: number = 1): this {
    callInPlace("addcdiv_", [this, t1, t2], { value });
    return this;
  }

  /** this += weight * (end - this) */
  lerp_(end: Tensor, weight: number): this {
    callInPlace("lerp_", [this, end, weight]);
    return this;
  }

  clamp_(min?: number | null, max?: number | null): this {
    callInPlace("clamp_", [this, min ?? null, max ?? null]);
    return this;
  }

  /** this = max(this, other) elementwise, in place (torch.maximum(this, other, out=this)). */
  maximum_(other: Tensor): this {
    callInPlace("clampMinTensor_", [this, other]);
    return this;
  }

  copy_(src: Tensor): this {
    callInPlace("copy_", [this, src]);
    return this;
  }

  zero_(): this {
    callInPlace("zero_", [this]);
    return this;
  }

  fill_(value: Scalar): this {
    callInPlace("fill_", [this, value]);
    return this;
  }

  sqrt_(): this {
    callInPlace("sqrt_", [this]);
    return this;
  }

  erfinv_(): this {
    callInPlace("erfinv_", [this]);
    return this;
  }

  relu_(): this {
    callInPlace("relu_", [this]);
    return this;
  }

  /** Fills with U(from, to), drawn from `generator` when given, else the global generator. */
  uniform_(from = 0, to = 1, generator?: Generator): this {
    callInPlace("uniform_", [this, from, to], generator === undefined ? undefined : { generator });
    return this;
  }

  /** Fills with N(mean, std^2), drawn from `generator` when given, else the global generator. */
  normal_(mean = 0, std = 1, generator?: Generator): this {
    callInPlace("normal_", [this, mean, std], generator === undefined ? undefined : { generator });
    return this;
  }

  maskedFill_(mask: Tensor, value: Scalar): this {
    checkMask(mask, "maskedFill_");
    callInPlace("maskedFill_", [this, mask, value]);
    return this;
  }
}

export type NestedArray = number | boolean | NestedArray[];

/** Raw access for code that needs ops beyond Tensor's methods. */
export const rawOps = { callOp, callTensor, callTensors, callInPlace };
