// The numerics behind every layer's lipschitz(norm) (METHOD.md section 5, docs/CERTIFY.md):
// induced norms of linear maps and convolutions, sound upper bounds on spectral norms (Gram
// iteration; for convolutions also the circulant bound and size-free kernel reshapes), a
// power-iteration estimate (a lower bound), average pooling, and shapes through a network. Everything here is a function of tensors; the layers in src/nn
// call it, so this file imports no layer class (no import cycle with src/nn).
//
// "Sound" throughout means: a proven upper bound on the Lipschitz constant of the layer as a
// map of its input, computed in float64 with a margin for the rounding of that computation.
// The float32 evaluation of the network itself is treated as exact (as in the literature).
import { conv2d } from "../nn/functional.js";
import type { Module, UnaryModule } from "../nn/module.js";
import { autograd, enableGrad, noGrad } from "../tensor/autograd.js";
import { cat } from "../tensor/combine.js";
import { eye, randn, tensor, zeros } from "../tensor/creation.js";
import type { DType } from "../tensor/dtype.js";
import { Generator } from "../tensor/generator.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";

/** The norm on the input and on the output of a map: L-inf -> L-inf, or L2 -> L2. */
export type LipschitzNorm = "linf" | "l2";

export interface LipschitzOptions {
  /**
   * Shape of ONE input sample at this module ([C, H, W], or [features]), without the batch.
   * Only size-dependent bounds use it: the L2 norm of average pooling (1/sqrt(window)), the
   * exact L2 norm of a small convolution (its unfolded matrix on this input size), the
   * circulant bound of a larger one, and power iteration. Without it every layer falls back to a size-free bound, which is sound
   * but looser. Containers pass each child the shape its input really has (one probe forward).
   */
  inputShape?: readonly number[];
  /**
   * How convolutions bound their L2 norm when the unfolded matrix is too large for the exact
   * computation. 'sound' (default): the smallest of sqrt(kh*kw) times the spectral norms of four
   * reshapes of the kernel, sqrt(|A|_1 |A|_inf), and (with inputShape) the circulant bound; proofs,
   * not estimates. 'power': min(sound bound, power-iteration estimate * (1 + powerSafety)); at most
   * a few percent tighter than the circulant bound, but an ESTIMATE (power iteration approaches the
   * norm from below), so a certificate built on it is reported as not sound. Needs inputShape.
   */
  l2Method?: "sound" | "power";
  /** Power-iteration steps (default 100). */
  powerIterations?: number;
  /** Relative safety margin on the power-iteration estimate (default 0.05). */
  powerSafety?: number;
  /**
   * Fold per-channel scales (BatchNorm in eval, Normalize) into the adjacent convolution before
   * taking its norm (default true). Folding is exact algebra, and max_o |s_o| |w_o|_1 is never
   * larger than max|s| * max_o |w_o|_1; false gives the plain product over layers.
   */
  fuseBatchNorm?: boolean;
  /**
   * With inputShape, also bound each convolution's L2 norm by the circular convolution that
   * contains it, exactly per frequency (default true; see convCirculantBound). Sound and tight up
   * to boundary effects; false skips it (faster, looser).
   */
  circulant?: boolean;
  /**
   * Largest unfolded convolution (outputs * inputs entries) whose L2 norm is computed exactly
   * by Gram iteration on the explicit matrix (default 2^20).
   */
  exactLimit?: number;
}

/** A module that has no (global, finite) Lipschitz bound, or cannot state one in its current mode. */
export class LipschitzError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LipschitzError";
  }
}

export function checkNorm(norm: unknown, what: string): asserts norm is LipschitzNorm {
  if (norm !== "linf" && norm !== "l2") throw new TypeError(`${what}: norm must be 'linf' or 'l2', got '${String(norm)}'`);
}

/**
 * A module that is, per channel, x -> s_c * x + t_c (BatchNorm in eval, Normalize): its
 * Lipschitz constant in both norms is max_c |s_c|, and a neighbouring convolution can absorb s.
 */
export interface ChannelScaling {
  /** |s_c| per channel, float64 [C] (a new tensor, owned by the caller). */
  channelScale(): Tensor;
}

export function isChannelScaling(m: object): m is ChannelScaling {
  return typeof (m as Partial<ChannelScaling>).channelScale === "function";
}

/** Refuses modules in training mode: their function (batch statistics, dropout, noise) is not the one certified. */
export function requireEval(m: Module, what: string): void {
  for (const [name, sub] of m.namedModules()) {
    if (sub.training) {
      const where = name === "" ? "" : ` (submodule '${name}', ${sub.constructor.name})`;
      throw new LipschitzError(
        `${what}: the model is in training mode${where}; call eval() first (certificates hold for the eval-mode function)`,
      );
    }
  }
}

/** max |s| of a per-channel scale: the Lipschitz constant of x -> s * x + t in every norm. */
export function scaleLipschitz(scale: Tensor): number {
  return noGrad(() => scope(() => scale.detach().double().abs().max().item()));
}

// ---------------------------------------------------------------------------------------------
// Spectral norms

export interface GramOptions {
  /** Squarings at most (default 16: the bound is then within rank^(1/2^17) <= 1.0001 of the norm). */
  maxIterations?: number;
  /** Stop when one squaring improves the bound by less than this, relatively (default 1e-7). */
  tolerance?: number;
}

/**
 * Relative margin on Gram-iteration bounds for the float64 rounding of the matrix products:
 * the computed Gram matrix differs from the exact one by at most ~ n * rank * 1.1e-16 relative
 * to its largest eigenvalue (about 3e-10 for the largest layers here), and taking 2^t-th roots
 * only shrinks that; 1e-6 covers it with three orders of magnitude to spare.
 */
const GRAM_ROUNDING = 1 + 1e-6;

/**
 * A sound upper bound on the largest singular value of a matrix [m, n] (Gram iteration,
 * Delattre et al. 2023): sigma_1(A) = sigma_1(G_t)^(1/2^t) for G_0 = A, G_{t+1} = G_t^T G_t,
 * and sigma_1(G) <= |G|_F, so sigma_1(A) <= |G_t|_F^(1/2^t) for every t, tightening with t
 * to within a factor rank^(1/2^(t+1)). Each G_t is divided by its Frobenius norm (the scale
 * kept in log form) so that nothing overflows. Unlike power iteration this is a proof: it can
 * only err upwards.
 */
export function gramSpectralBound(matrix: Tensor, o: GramOptions = {}): number {
  if (matrix.ndim !== 2) throw new TypeError(`gramSpectralBound: expected a matrix, got shape [${matrix.shape}]`);
  return scope(() => gramSpectralBounds(matrix.unsqueeze(0), o)[0] as number);
}

/**
 * gramSpectralBound for a batch of matrices [B, m, n] at once (batched products): one bound per
 * matrix. Stops when no bound improves by more than the tolerance.
 */
export function gramSpectralBounds(batch: Tensor, o: GramOptions = {}): number[] {
  if (batch.ndim !== 3) throw new TypeError(`gramSpectralBounds: expected matrices [B, m, n], got shape [${batch.shape}]`);
  const maxIterations = o.maxIterations ?? 16;
  const tolerance = o.tolerance ?? 1e-7;
  return noGrad(() =>
    scope(() => {
      const a = batch.detach().double();
      const [count, m, n] = a.shape as [number, number, number];
      if (m === 0 || n === 0) return new Array<number>(count).fill(0);
      // The first product is taken on the smaller side: same singular values squared.
      let g = m <= n ? a.bmm(a.transpose(1, 2)) : a.transpose(1, 2).bmm(a);
      // sigma_1(A_b) = exp(logScale_b) * sigma_1(g_b)^(1/2^t), with t = 1 after the first product.
      let logScale = zeros([count], { dtype: "float64", device: a.device as "cpu" });
      let t = 1;
      let best: Tensor | null = null;
      for (let it = 0; ; it++) {
        // One squaring per step, in its own scope so that only the current Gram matrices stay alive.
        const step = scope(() => {
          const f = g.flatten(1).norm(2, 1);
          // log 0 = -inf gives a bound of exactly 0 for an all-zero matrix, as it should.
          const bound = logScale.add(f.log().div(2 ** t)).exp();
          const previous = best as Tensor | null;
          const nextBest = previous === null ? bound : previous.minimum(bound);
          const improved =
            previous === null ||
            bound
              .lt(previous.mul(1 - tolerance))
              .any()
              .item() !== 0;
          if (!improved || it >= maxIterations) return { done: true as const, best: nextBest };
          // Zero matrices stay zero: divide them by 1 instead of 0.
          const safe = f.clamp(Number.MIN_VALUE, null);
          const gn = g.div(safe.reshape(count, 1, 1));
          return { done: false as const, best: nextBest, g: gn.bmm(gn), logScale: logScale.add(safe.log().div(2 ** t)) };
        });
        best?.dispose();
        best = step.best;
        if (step.done) break;
        g.dispose();
        logScale.dispose();
        g = step.g;
        logScale = step.logScale;
        t += 1;
      }
      return ((best as Tensor).mul(GRAM_ROUNDING).toFlatArray() as number[]).map(Number);
    }),
  );
}

export interface PowerIterationOptions {
  /** Steps (default 100). */
  iterations?: number;
  /** Stop when the estimate changes by less than this, relatively (default 1e-10). */
  tolerance?: number;
  /** Seed of the start vector (default 0), so estimates are reproducible. */
  seed?: number;
  dtype?: DType;
}

/**
 * Power iteration on A^T A for a LINEAR map `apply` (no bias) on inputs [1, ...inputShape]:
 * the adjoint is taken by autograd (the input gradient of <A v, u> is A^T u; for a convolution
 * that is exactly conv_transpose2d with the output padding that restores the input size).
 * Returns max_k |A v_k| over unit iterates v_k: a LOWER bound on the spectral norm that
 * converges to it; never a certificate on its own.
 */
export function powerIterationNorm(
  apply: (v: Tensor) => Tensor,
  inputShape: readonly number[],
  o: PowerIterationOptions = {},
): number {
  const iterations = o.iterations ?? 100;
  const tolerance = o.tolerance ?? 1e-10;
  const generator = new Generator({ seed: o.seed ?? 0 });
  try {
    return scope(() =>
      enableGrad(() => {
        let v = scope(() => {
          const r = randn([1, ...inputShape], { dtype: o.dtype ?? "float64", generator });
          return noGrad(() => r.div(r.norm()));
        });
        let best = 0;
        let previous = 0;
        for (let it = 0; it < iterations; it++) {
          const step = scope(() => {
            const vv = v.detach().requiresGrad_();
            const u = apply(vv);
            const estimate = noGrad(() => u.norm().item());
            const [w] = autograd.grad([u], [vv], { gradOutputs: [u.detach()] });
            const wn = noGrad(() => (w as Tensor).norm().item());
            return { estimate, next: wn === 0 ? null : noGrad(() => (w as Tensor).div(wn)) };
          });
          best = Math.max(best, step.estimate);
          if (step.next === null) break;
          v.dispose();
          v = step.next;
          if (it > 0 && Math.abs(step.estimate - previous) <= tolerance * step.estimate) break;
          previous = step.estimate;
        }
        v.dispose();
        return best;
      }),
    );
  } finally {
    generator.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Linear layers

/** Max row L1 norm |W|_inf of a matrix: the induced L-inf norm (exact). */
export function maxRowL1(matrix: Tensor): number {
  return noGrad(() => scope(() => matrix.detach().double().abs().sum(1).max().item()));
}

/** Lipschitz constant of x -> W x + b: exact in L-inf (max row L1), Gram iteration in L2. */
export function linearLipschitz(weight: Tensor, norm: LipschitzNorm): number {
  checkNorm(norm, "linearLipschitz");
  return norm === "linf" ? maxRowL1(weight) : gramSpectralBound(weight);
}

// ---------------------------------------------------------------------------------------------
// Convolutions

export interface ConvGeometry {
  stride: readonly [number, number];
  padding: readonly [number, number];
  dilation: readonly [number, number];
  groups: number;
}

/** Per-channel scales folded into a convolution: diag(output) * conv * diag(input), each [C] or absent. */
export interface ConvScales {
  input?: Tensor | null;
  output?: Tensor | null;
}

/** [C_out, H_out, W_out] of a convolution on one input [C_in, H, W] (PyTorch's formula). */
export function convOutputShape(weightShape: readonly number[], g: ConvGeometry, inputShape: readonly number[]): number[] {
  const [cout, , kh, kw] = weightShape as [number, number, number, number];
  const [, h, w] = inputShape as [number, number, number];
  const out = (size: number, k: number, i: 0 | 1) =>
    Math.floor((size + 2 * g.padding[i] - g.dilation[i] * (k - 1) - 1) / g.stride[i]) + 1;
  return [cout, out(h, kh, 0), out(w, kw, 1)];
}

/** The kernel with per-channel scales folded in, float64: w'[o, c] = out[o] * w[o, c] * in[group(o), c]. */
export function scaledConvWeight(weight: Tensor, groups: number, scales: ConvScales = {}): Tensor {
  return noGrad(() =>
    scope(() => {
      let w = weight.detach().double();
      const [cout, cinPerGroup] = w.shape as [number, number];
      if (scales.output) {
        if (scales.output.numel !== cout)
          throw new TypeError(`conv scales: ${scales.output.numel} output scales for ${cout} output channels`);
        w = w.mul(
          scales.output
            .detach()
            .double()
            .to(w.device as "cpu")
            .reshape(cout, 1, 1, 1),
        );
      }
      if (scales.input) {
        if (scales.input.numel !== cinPerGroup * groups)
          throw new TypeError(`conv scales: ${scales.input.numel} input scales for ${cinPerGroup * groups} input channels`);
        // Output channel o of group g reads input channels g*cinPerGroup .. (g+1)*cinPerGroup - 1.
        const perOut = scales.input
          .detach()
          .double()
          .to(w.device as "cpu")
          .reshape(groups, 1, cinPerGroup)
          .expand(groups, cout / groups, cinPerGroup)
          .reshape(cout, cinPerGroup, 1, 1);
        w = w.mul(perOut);
      }
      return w.contiguous();
    }),
  );
}

/**
 * The convolution (no bias) as an explicit matrix on one input of the given shape, float64,
 * TRANSPOSED: [inputs, outputs] (row k is the response to the k-th basis image). Same singular
 * values as the operator; for small layers and for tests.
 */
export function convUnfoldedTransposed(weight: Tensor, g: ConvGeometry, inputShape: readonly number[]): Tensor {
  return noGrad(() =>
    scope(() => {
      const n = inputShape.reduce((a, b) => a * b, 1);
      const w = weight.detach().double();
      const basis = eye(n, n, { dtype: "float64", device: w.device as "cpu" }).reshape(n, ...inputShape);
      return conv2d(basis, w, null, g).reshape(n, -1);
    }),
  );
}

/** Max over output channels of sum |w|: the induced L-inf norm of the unfolded convolution (exact when some output position sees the whole kernel). */
export function convLinfBound(weight: Tensor): number {
  return noGrad(() => scope(() => weight.detach().double().abs().sum([1, 2, 3]).max().item()));
}

/** Reshapes larger than this (on their smaller side) are skipped by the size-free L2 bound: cost, not soundness. */
const RESHAPE_GRAM_LIMIT = 2048;

/**
 * A size-free sound bound on the L2 norm of a convolution with kernel [C_out, C_in, kh, kw]
 * (groups = 1), any stride, padding and dilation:
 *  - sqrt(kh kw) * min(|T|, |U|, |R|, |S|) (Singla & Feizi 2021), with T = W as [C_out, C_in kh kw],
 *    U = [kh kw C_out, C_in], R = [(a, o), (b, c)], S = [(b, o), (a, c)] (a, b: kernel row, col).
 *    Proof for T: y(p) = T xi(p), xi(p) = the kh*kw input vectors the kernel sees at p, so
 *    |y(p)|^2 <= |T|^2 |xi(p)|^2, and summed over p every input position is seen at most once per
 *    kernel offset (for a fixed offset p -> input position is injective; padding only drops
 *    terms), so |y|^2 <= kh kw |T|^2 |x|^2. U is the same argument on the adjoint; R and S apply
 *    the two arguments one per spatial axis (rows as super-channels).
 *  - sqrt(|A|_1 |A|_inf) (Hoelder): |A|_inf <= max_o sum|w_o|, |A|_1 <= max_c sum_{o,a,b} |w[o,c,a,b]|
 *    (again at most one output position per kernel offset reads a given input).
 */
export function convL2SizeFreeBound(weight: Tensor, o: { reshapeLimit?: number } = {}): number {
  const limit = o.reshapeLimit ?? RESHAPE_GRAM_LIMIT;
  return noGrad(() =>
    scope(() => {
      const w = weight.detach().double();
      const [co, ci, kh, kw] = w.shape as [number, number, number, number];
      const absW = w.abs();
      const rowMax = absW.sum([1, 2, 3]).max().item();
      const colMax = absW.sum([0, 2, 3]).max().item();
      let best = Math.sqrt(rowMax * colMax);
      const reshapes =
        kh * kw === 1
          ? [w.reshape(co, ci)]
          : [
              w.reshape(co, ci * kh * kw),
              w.permute(2, 3, 0, 1).reshape(kh * kw * co, ci),
              w.permute(2, 0, 3, 1).reshape(kh * co, kw * ci),
              w.permute(3, 0, 2, 1).reshape(kw * co, kh * ci),
            ];
      const factor = Math.sqrt(kh * kw);
      for (const r of reshapes) {
        if (Math.min(...(r.shape as [number, number])) > limit) continue;
        best = Math.min(best, factor * gramSpectralBound(r));
      }
      return best;
    }),
  );
}

/** Frequencies whose per-frequency matrices take at most this many float64 entries are processed at once. */
const CIRCULANT_CHUNK_ENTRIES = 2 ** 23;

/**
 * A sound bound on the L2 norm of a zero-padded convolution (groups = 1, any stride, padding,
 * dilation) on inputs of a given size, tight up to boundary effects: the norm of a circular
 * convolution that contains it, computed exactly per frequency.
 *  1. Polyphase: an input index s p + a d - pad = s (p + a') + r (0 <= r < s) splits the input
 *     into s_h s_w sub-grids (an isometric rearrangement), on which the strided convolution is a
 *     stride-1 convolution with C_in s_h s_w channels and taps at offsets a'.
 *  2. Embedding: put the sub-grids (H' = ceil(H / s) per axis) on a torus of size
 *     N >= max(H' - min a', H_out + max a'), zero outside. Then no read of a valid output wraps
 *     onto a non-zero input, so the convolution = restrict o circular conv o embed, and
 *     |A| <= |circular conv| (embedding isometric, restriction a contraction).
 *  3. The DFT diagonalises the circular conv: its norm is max over the N_h N_w frequencies of
 *     sigma_1(sum_t W_t e^{i theta_t(omega)}), a C_out x C_in' complex matrix P + iQ, whose
 *     singular values are those of the real [[P, -Q], [Q, P]]; each is bounded by Gram
 *     iteration (sound), and conjugate frequencies (same singular values) are skipped.
 */
export function convCirculantBound(
  weight: Tensor,
  g: Omit<ConvGeometry, "groups">,
  inputShape: readonly number[],
  o: GramOptions = {},
): number {
  return noGrad(() =>
    scope(() => {
      const w = weight.detach().double();
      const [co, ci, kh, kw] = w.shape as [number, number, number, number];
      const [, h, wd] = inputShape as [number, number, number];
      const [, oh, ow] = convOutputShape(w.shape, { ...g, groups: 1 }, inputShape);
      const [sh, sw] = g.stride;
      const phases = sh * sw;
      // Offsets a' and phases r of each kernel row and column.
      const split = (k: number, d: number, pad: number, s: number) =>
        Array.from({ length: k }, (_, a) => {
          const off = a * d - pad;
          const shift = Math.floor(off / s);
          return { shift, phase: off - s * shift };
        });
      const rows = split(kh, g.dilation[0], g.padding[0], sh);
      const cols = split(kw, g.dilation[1], g.padding[1], sw);
      // Distinct tap offsets (a', b'), each a C_out x (C_in * phases) matrix.
      const taps = new Map<string, { a: number; b: number; index: number }>();
      for (const r of rows)
        for (const c of cols) {
          const key = `${r.shift},${c.shift}`;
          if (!taps.has(key)) taps.set(key, { a: r.shift, b: c.shift, index: taps.size });
        }
      const polyphase = zeros([taps.size, co, ci, phases], { dtype: "float64", device: w.device as "cpu" });
      rows.forEach((r, a) => {
        cols.forEach((c, b) => {
          const t = (taps.get(`${r.shift},${c.shift}`) as { index: number }).index;
          polyphase
            .select(0, t)
            .select(2, r.phase * sw + c.phase)
            .add_(w.select(3, b).select(2, a));
        });
      });
      const tapList = [...taps.values()];
      const torus = (sub: number, out: number, shifts: number[]) =>
        Math.max(sub - Math.min(0, ...shifts), out + Math.max(0, ...shifts), sub, out);
      const nh = torus(
        Math.ceil(h / sh),
        oh,
        tapList.map((t) => t.a),
      );
      const nw = torus(
        Math.ceil(wd / sw),
        ow,
        tapList.map((t) => t.b),
      );
      // (w1, w2) and (-w1, -w2) give conjugate matrices: w1 in [0, nh/2] covers every pair.
      const freqs: [number, number][] = [];
      for (let f1 = 0; f1 <= Math.floor(nh / 2); f1++) for (let f2 = 0; f2 < nw; f2++) freqs.push([f1, f2]);
      const flatTaps = polyphase.reshape(tapList.length, co * ci * phases);
      const side = 2 * Math.min(co, ci * phases);
      const big = 2 * Math.max(co, ci * phases);
      const chunk = Math.max(1, Math.floor(CIRCULANT_CHUNK_ENTRIES / (side * Math.max(side, big))));
      let worst = 0;
      for (let start = 0; start < freqs.length; start += chunk) {
        const part = freqs.slice(start, start + chunk);
        worst = Math.max(
          worst,
          ...scope(() => {
            const theta = part.flatMap(([f1, f2]) => tapList.map((t) => 2 * Math.PI * ((t.a * f1) / nh + (t.b * f2) / nw)));
            const table = (fn: (v: number) => number) =>
              tensor(Float64Array.from(theta, fn), { shape: [part.length, tapList.length], dtype: "float64" }).to(
                w.device as "cpu",
              );
            const re = table(Math.cos)
              .matmul(flatTaps)
              .reshape(part.length, co, ci * phases);
            const im = table(Math.sin)
              .matmul(flatTaps)
              .reshape(part.length, co, ci * phases);
            const real = cat([cat([re, im.neg()], 2), cat([im, re], 2)], 1);
            return gramSpectralBounds(real, o);
          }),
        );
      }
      return worst;
    }),
  );
}

/**
 * Lipschitz constant of diag(scales.output) * conv * diag(scales.input) (bias and shifts do
 * not matter). L-inf: the max row L1 norm of the scaled kernel. L2: the exact norm of the
 * unfolded matrix when options.inputShape is given and the matrix is small, else the size-free
 * bound per group (a grouped convolution is a direct sum of its groups: the max over groups),
 * optionally tightened by power iteration (l2Method 'power', not sound).
 */
export function convLipschitz(
  weight: Tensor,
  g: ConvGeometry,
  norm: LipschitzNorm,
  options: LipschitzOptions = {},
  scales: ConvScales = {},
): number {
  checkNorm(norm, "convLipschitz");
  return scope(() => {
    const w = scaledConvWeight(weight, g.groups, scales);
    if (norm === "linf") return convLinfBound(w);
    const [cout] = w.shape as [number];
    const perGroup = cout / g.groups;
    const shape = options.inputShape;
    const circulant = shape !== undefined && (options.circulant ?? true);
    // With the circulant bound coming (almost always the tightest), only the cheap reshapes.
    const reshapeLimit = circulant ? 512 : RESHAPE_GRAM_LIMIT;
    let bound = 0;
    for (let k = 0; k < g.groups; k++)
      bound = Math.max(bound, convL2SizeFreeBound(w.narrow(0, k * perGroup, perGroup), { reshapeLimit }));
    if (shape === undefined) {
      if (options.l2Method === "power") throw new LipschitzError("convLipschitz: l2Method 'power' needs options.inputShape");
      return bound;
    }
    if (shape.length !== 3 || shape[0] !== (w.shape[1] as number) * g.groups)
      throw new TypeError(
        `convLipschitz: input shape [${shape}] does not fit a kernel of shape [${w.shape}] with groups ${g.groups}`,
      );
    const n = shape.reduce((a, b) => a * b, 1);
    const m = convOutputShape(w.shape, g, shape).reduce((a, b) => a * b, 1);
    if (n * m <= (options.exactLimit ?? 2 ** 20)) {
      bound = Math.min(bound, gramSpectralBound(convUnfoldedTransposed(w, g, shape)));
      return bound;
    }
    if (circulant) {
      const groupShape = [shape[0] / g.groups, shape[1] as number, shape[2] as number];
      let worst = 0;
      for (let k = 0; k < g.groups; k++)
        worst = Math.max(worst, convCirculantBound(w.narrow(0, k * perGroup, perGroup), g, groupShape, { tolerance: 1e-5 }));
      bound = Math.min(bound, worst);
    }
    if (options.l2Method === "power") {
      const estimate = powerIterationNorm((v) => conv2d(v, w, null, g), shape, {
        iterations: options.powerIterations ?? 100,
      });
      bound = Math.min(bound, estimate * (1 + (options.powerSafety ?? 0.05)));
    }
    return bound;
  });
}

// ---------------------------------------------------------------------------------------------
// Pooling and activations

/**
 * Upper bounds on max |g'| of GELU, the Lipschitz constant of the elementwise map in every norm.
 * Exact form: g'(x) = Phi(x) + x phi(x), g'' = phi(x) (2 - x^2), so the extremes are at
 * x = +-sqrt(2): Phi(sqrt 2) + sqrt(2) phi(sqrt 2) = 1.1289041451851 (and -0.1289 at -sqrt 2).
 * Tanh form: found numerically (1.12899306866 near x = 1.4185); both rounded up, and checked by a
 * dense autograd scan in the tests. NOT 1, as is sometimes assumed.
 */
export const GELU_LIPSCHITZ = { none: 1.1289042, tanh: 1.1289931 } as const;

/** PyTorch's adaptive-pooling windows [start, end) for `out` outputs over `size` inputs. */
export function adaptivePoolWindows(size: number, out: number): [number, number][] {
  return Array.from({ length: out }, (_, i) => [Math.floor((i * size) / out), Math.ceil(((i + 1) * size) / out)]);
}

/**
 * The L2 norm of a 1-D adaptive-average-pooling matrix: exact, max_i 1/sqrt(len_i), when the
 * windows do not overlap (orthogonal rows of norm 1/sqrt(len_i)); a Gram-iteration bound on the
 * explicit matrix when they do (sizes that do not divide).
 */
export function adaptivePoolNorm1d(size: number, out: number): number {
  const windows = adaptivePoolWindows(size, out);
  const disjoint = windows.every(([s], i) => i === 0 || s >= (windows[i - 1] as [number, number])[1]);
  if (disjoint) return Math.max(...windows.map(([s, e]) => 1 / Math.sqrt(e - s)));
  const flat = new Float64Array(out * size);
  windows.forEach(([s, e], i) => {
    for (let j = s; j < e; j++) flat[i * size + j] = 1 / (e - s);
  });
  return scope(() => gramSpectralBound(tensor(flat, { shape: [out, size], dtype: "float64" })));
}

/**
 * Adaptive average pooling. L-inf: 1 exactly (every output is an average). L2: the pooling
 * matrix of a channel is the Kronecker product of a row and a column pooling matrix, so its norm
 * is the product of theirs: 1/sqrt(k) for a global average over k positions. Without the input
 * size only output size 1 has a size-free bound (1/sqrt(k) <= 1); other sizes are refused
 * (upsampling windows repeat inputs and have norm > 1).
 */
export function adaptiveAvgPoolLipschitz(
  outputSize: number | readonly [number, number],
  norm: LipschitzNorm,
  inputShape?: readonly number[],
): number {
  checkNorm(norm, "adaptiveAvgPoolLipschitz");
  if (norm === "linf") return 1;
  const [oh, ow] = typeof outputSize === "number" ? [outputSize, outputSize] : outputSize;
  if (inputShape === undefined) {
    if (oh === 1 && ow === 1) return 1;
    throw new LipschitzError(
      `AdaptiveAvgPool2d(${oh}x${ow}): the L2 bound needs the input size (options.inputShape), which decides the windows`,
    );
  }
  const [h, w] = inputShape.slice(-2) as [number, number];
  return adaptivePoolNorm1d(h, oh) * adaptivePoolNorm1d(w, ow);
}

// ---------------------------------------------------------------------------------------------
// Shapes

/** The shape of one output sample of m on one input sample of the given shape (a forward on zeros, no gradient). */
export function outputShapeOf(m: UnaryModule, inputShape: readonly number[]): number[] {
  return noGrad(() =>
    scope(() => {
      const like = m.parameters()[0] ?? m.buffers()[0];
      const x = zeros([1, ...inputShape], like ? { dtype: like.dtype, device: like.device as "cpu" } : {});
      return m.forward(x).shape.slice(1);
    }),
  );
}
