// torch.nn.functional, the subset robust-moe needs, over the op table.
import { callTensor, callTensors } from "../tensor/ops.js";
import type { Tensor } from "../tensor/tensor.js";

type Pair = number | readonly [number, number];
export type Reduction = "none" | "mean" | "sum";

const REDUCTION: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };

function reduction(r: Reduction | undefined, what: string): number {
  const code = REDUCTION[r ?? "mean"];
  if (code === undefined) throw new TypeError(`${what}: reduction must be 'none', 'mean' or 'sum', got '${String(r)}'`);
  return code;
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

export function conv2d(input: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  return callTensor("conv2d", [input, weight, bias, o.stride ?? 1, o.padding ?? 0, o.dilation ?? 1, o.groups ?? 1]);
}

export function linear(input: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return callTensor("linear", [input, weight, bias]);
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}

/** Batch norm; in training mode running stats (when given) are updated in place, as in PyTorch. */
export function batchNorm(
  input: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  o: BatchNormOptions = {},
): Tensor {
  return callTensor("batchNorm", [
    input,
    o.weight ?? null,
    o.bias ?? null,
    runningMean,
    runningVar,
    o.training ?? false,
    o.momentum ?? 0.1,
    o.eps ?? 1e-5,
    true,
  ]);
}

export function layerNorm(
  input: Tensor,
  normalizedShape: readonly number[],
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  return callTensor("layerNorm", [input, normalizedShape, weight, bias, eps, true]);
}

export function dropout(input: Tensor, p = 0.5, training = true): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  return callTensor("dropout", [input, p, training]);
}

export function relu(input: Tensor): Tensor {
  return callTensor("relu", [input]);
}

/** GELU; approximate 'tanh' is the tanh approximation, 'none' the exact erf form. */
export function gelu(input: Tensor, approximate: "none" | "tanh" = "none"): Tensor {
  return callTensor("gelu", [input], { approximate });
}

export function softmax(input: Tensor, dim: number): Tensor {
  return callTensor("softmax", [input, dim]);
}

export function logSoftmax(input: Tensor, dim: number): Tensor {
  return callTensor("logSoftmax", [input, dim]);
}

export interface PoolOptions {
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
}

export function avgPool2d(input: Tensor, kernelSize: Pair, o: PoolOptions & { countIncludePad?: boolean } = {}): Tensor {
  return callTensor("avgPool2d", [
    input,
    kernelSize,
    o.stride ?? kernelSize,
    o.padding ?? 0,
    o.ceilMode ?? false,
    o.countIncludePad ?? true,
  ]);
}

export function maxPool2d(input: Tensor, kernelSize: Pair, o: PoolOptions & { dilation?: Pair } = {}): Tensor {
  return callTensor("maxPool2d", [
    input,
    kernelSize,
    o.stride ?? kernelSize,
    o.padding ?? 0,
    o.dilation ?? 1,
    o.ceilMode ?? false,
  ]);
}

export function adaptiveAvgPool2d(input: Tensor, outputSize: Pair): Tensor {
  return callTensor("adaptiveAvgPool2d", [input, outputSize]);
}

export function adaptiveMaxPool2d(input: Tensor, outputSize: Pair): Tensor {
  const [values, indices] = callTensors("adaptiveMaxPool2d", [input, outputSize]) as [Tensor, Tensor];
  indices.dispose();
  return values;
}

export interface InterpolateOptions {
  size?: Pair;
  scaleFactor?: number | readonly [number, number];
  mode?: "nearest" | "bilinear" | "bicubic";
  alignCorners?: boolean;
  /** Anti-aliased down-sampling (bilinear and bicubic only), as torchvision/PIL resize. */
  antialias?: boolean;
}

export function interpolate(input: Tensor, o: InterpolateOptions): Tensor {
  if ((o.size === undefined) === (o.scaleFactor === undefined)) {
    throw new TypeError("interpolate: give exactly one of size and scaleFactor");
  }
  if (input.ndim !== 4) {
    throw new TypeError(`interpolate: expected a 4-D [N, C, H, W] input, got shape [${input.shape.join(", ")}]`);
  }
  const size = o.size === undefined ? null : typeof o.size === "number" ? [o.size, o.size] : o.size;
  const scale =
    o.scaleFactor === undefined ? null : typeof o.scaleFactor === "number" ? [o.scaleFactor, o.scaleFactor] : o.scaleFactor;
  const mode = o.mode ?? "nearest";
  if (mode === "nearest") {
    if (o.antialias) throw new TypeError("interpolate: antialias needs mode 'bilinear' or 'bicubic'");
    return callTensor("upsampleNearest2d", [input, size, scale]);
  }
  const align = o.alignCorners ?? false;
  if (mode === "bilinear")
    return callTensor(o.antialias ? "upsampleBilinear2dAA" : "upsampleBilinear2d", [input, size, align, scale]);
  if (mode === "bicubic")
    return callTensor(o.antialias ? "upsampleBicubic2dAA" : "upsampleBicubic2d", [input, size, align, scale]);
  throw new TypeError(`interpolate: unknown mode '${String(mode)}'`);
}

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
}

/** Cross entropy of logits [N, C] (or [N, C, ...]) against int64 class indices. */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  return callTensor("crossEntropy", [
    logits,
    target,
    o.weight ?? null,
    reduction(o.reduction, "crossEntropy"),
    o.ignoreIndex ?? -100,
    o.labelSmoothing ?? 0,
  ]);
}

export function nllLoss(logProbs: Tensor, target: Tensor, o: Omit<CrossEntropyOptions, "labelSmoothing"> = {}): Tensor {
  return callTensor("nllLoss", [logProbs, target, o.weight ?? null, reduction(o.reduction, "nllLoss"), o.ignoreIndex ?? -100]);
}

/**
 * KL(target || input) with input given as log-probabilities, as torch's kl_div.
 * 'batchmean' divides the sum by the batch size: the mathematically correct KL.
 */
export function klDiv(
  input: Tensor,
  target: Tensor,
  o: { reduction?: Reduction | "batchmean"; logTarget?: boolean } = {},
): Tensor {
  if (o.reduction === "batchmean") {
    const total = callTensor("klDiv", [input, target, REDUCTION.sum, o.logTarget ?? false]);
    const out = total.div(input.shape[0] ?? 1);
    total.dispose();
    return out;
  }
  return callTensor("klDiv", [input, target, reduction(o.reduction, "klDiv"), o.logTarget ?? false]);
}

export function mseLoss(input: Tensor, target: Tensor, o: { reduction?: Reduction } = {}): Tensor {
  return callTensor("mseLoss", [input, target, reduction(o.reduction, "mseLoss")]);
}

export function oneHot(indices: Tensor, numClasses = -1): Tensor {
  return callTensor("oneHot", [indices, numClasses]);
}

export type PadMode = "constant" | "reflect" | "replicate";

/** pad = [left, right, top, bottom, ...] from the last dimension backwards, as torch's F.pad. */
export function pad(input: Tensor, padding: readonly number[], mode: PadMode = "constant", value = 0): Tensor {
  if (mode === "constant") return callTensor("constantPad", [input, padding, value]);
  if (padding.length !== 4) throw new TypeError(`pad: mode '${mode}' takes 4 padding values (2-D), got ${padding.length}`);
  return callTensor(mode === "reflect" ? "reflectionPad2d" : "replicationPad2d", [input, padding]);
}
