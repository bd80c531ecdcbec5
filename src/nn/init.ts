// nn.init: in-place initialisers with PyTorch's formulas, so the same seed draws the
// same initial weights as PyTorch (same generator, same ATen kernels, same order).
import { noGrad } from "../tensor/autograd.js";
import type { Tensor } from "../tensor/tensor.js";

export type Nonlinearity = "linear" | "conv2d" | "sigmoid" | "tanh" | "relu" | "leaky_relu" | "selu";

export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case "linear":
    case "conv2d":
    case "sigmoid":
      return 1;
    case "tanh":
      return 5 / 3;
    case "relu":
      return Math.sqrt(2);
    case "leaky_relu": {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case "selu":
      return 3 / 4;
  }
}

export function fanInAndFanOut(t: Tensor): [number, number] {
  const shape = t.shape;
  if (shape.length < 2) throw new TypeError(`fan in/out needs a tensor with at least 2 dimensions, got shape [${shape}]`);
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return [(shape[1] as number) * receptive, (shape[0] as number) * receptive];
}

export function uniform_(t: Tensor, a = 0, b = 1): Tensor {
  return noGrad(() => t.uniform_(a, b));
}

export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  return noGrad(() => t.normal_(mean, std));
}

export function constant_(t: Tensor, value: number): Tensor {
  return noGrad(() => t.fill_(value));
}

export function zeros_(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}

export function ones_(t: Tensor): Tensor {
  return noGrad(() => t.fill_(1));
}

export interface KaimingOptions {
  a?: number;
  mode?: "fan_in" | "fan_out";
  nonlinearity?: Nonlinearity;
}

export function kaimingUniform_(t: Tensor, o: KaimingOptions = {}): Tensor {
  const [fanIn, fanOut] = fanInAndFanOut(t);
  const gain = calculateGain(o.nonlinearity ?? "leaky_relu", o.a ?? 0);
  const bound = Math.sqrt(3) * (gain / Math.sqrt(o.mode === "fan_out" ? fanOut : fanIn));
  return uniform_(t, -bound, bound);
}

export function kaimingNormal_(t: Tensor, o: KaimingOptions = {}): Tensor {
  const [fanIn, fanOut] = fanInAndFanOut(t);
  const gain = calculateGain(o.nonlinearity ?? "leaky_relu", o.a ?? 0);
  return normal_(t, 0, gain / Math.sqrt(o.mode === "fan_out" ? fanOut : fanIn));
}

export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const [fanIn, fanOut] = fanInAndFanOut(t);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -a, a);
}

export function xavierNormal_(t: Tensor, gain = 1): Tensor {
  const [fanIn, fanOut] = fanInAndFanOut(t);
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)));
}

function normCdf(x: number): number {
  // erf via Abramowitz-Stegun 7.1.26 is too coarse here; use the series-free identity
  // through Math functions available in JS: Phi(x) = 0.5 * erfc(-x / sqrt 2).
  return 0.5 * erfc(-x / Math.SQRT2);
}

function erfc(x: number): number {
  // Numerical Recipes' erfc (Chebyshev), relative error < 1.2e-7: ample for bounds.
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/**
 * Truncated normal on [a, b] by inverse-CDF sampling, PyTorch's trunc_normal_ method
 * (timm initialises ViT weights with std 0.02 this way).
 */
export function truncNormal_(t: Tensor, mean = 0, std = 1, a = -2, b = 2): Tensor {
  return noGrad(() => {
    const l = normCdf((a - mean) / std);
    const u = normCdf((b - mean) / std);
    t.uniform_(2 * l - 1, 2 * u - 1);
    const inv = t.erfinv_();
    inv
      .mul_(std * Math.SQRT2)
      .add_(mean)
      .clamp_(a, b);
    return t;
  });
}

/**
 * PyTorch's default for Linear and Conv layers: kaiming_uniform(a = sqrt 5) on the weight,
 * which is uniform(+-1/sqrt(fan_in)), and the bias uniform on the same bound.
 */
export function defaultLayerInit_(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias !== null) {
    const [fanIn] = fanInAndFanOut(weight);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform_(bias, -bound, bound);
  }
}
