// Finite-difference gradient checking in float64, like torch.autograd.gradcheck:
// the autograd gradient of every float64 input is compared element by element with
// a central difference. Non-scalar outputs are reduced with a fixed random weighting
// sum(out * w) so that every output element (and its position) matters.
import assert from "node:assert/strict";
import { autograd, noGrad, scope, type Tensor, tensor } from "../../src/tensor/index.js";
import { mulberry32 } from "./rng.js";

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
  /** Relative tolerance (default 1e-4). */
  rtol?: number;
  /** Indices of the inputs to check; default every float64 input. */
  wrt?: readonly number[];
  /** Seed of the output weighting (a JS generator, independent of LibTorch's). */
  seed?: number;
  /** Name for failure messages. */
  name?: string;
}

/** Weights in ±[0.5, 1.5): never near zero, distinct per element. */
function weights(n: number, seed: number): Float64Array {
  const r = mulberry32(seed);
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = (r() < 0.5 ? -1 : 1) * (0.5 + r());
  return w;
}

function float64Data(t: Tensor): Float64Array {
  return t.toTypedArray() as Float64Array;
}

/**
 * Checks the autograd gradient of f at inputs against central differences.
 * inputs are not modified; float64 ones are copied into fresh leaves that require grad,
 * others (index tensors, masks) are passed through unchanged.
 * Returns the number of gradient elements compared.
 */
export function gradcheck(f: (inputs: Tensor[]) => Tensor, inputs: readonly Tensor[], options: GradcheckOptions = {}): number {
  const eps = options.eps ?? 1e-6;
  const atol = options.atol ?? 1e-5;
  const rtol = options.rtol ?? 1e-4;
  const name = options.name ?? "gradcheck";
  const wrt = options.wrt ?? inputs.flatMap((t, i) => (t.dtype === "float64" ? [i] : []));
  assert.ok(wrt.length > 0, `${name}: no float64 input to check`);
  for (const i of wrt) {
    const t = inputs[i];
    assert.ok(t !== undefined, `${name}: wrt index ${i} out of range`);
    assert.equal(t.dtype, "float64", `${name}: input ${i} must be float64 to be checked, got ${t.dtype}`);
  }

  return scope(() => {
    const shapes = inputs.map((t) => t.shape);
    const data = inputs.map((t) => (t.dtype === "float64" ? float64Data(t) : null));

    // Analytic gradient of sum(f(x) * w).
    const leaves = inputs.map((t, i) => {
      if (!wrt.includes(i)) return t;
      return tensor(data[i] as Float64Array, { dtype: "float64", shape: shapes[i] as number[] }).requiresGrad_();
    });
    const out = f(leaves);
    assert.equal(out.dtype, "float64", `${name}: f must return a float64 tensor, got ${out.dtype}`);
    const outShape = out.shape;
    const w = weights(out.numel, options.seed ?? 1234);
    const wT = tensor(w, { dtype: "float64", shape: outShape });
    const loss = out.mul(wT).sum();
    const grads = autograd.grad(
      loss,
      wrt.map((i) => leaves[i] as Tensor),
      { allowUnused: true },
    );

    // Weighted output for one perturbed evaluation, computed in JS (no grad history).
    const evaluate = (which: number, perturbed: Float64Array): number =>
      scope(() =>
        noGrad(() => {
          const args = inputs.map((t, i) =>
            i === which ? tensor(perturbed, { dtype: "float64", shape: shapes[i] as number[] }) : t,
          );
          const o = f(args);
          assert.deepEqual(o.shape, outShape, `${name}: output shape changed under perturbation`);
          const v = float64Data(o);
          let s = 0;
          for (let k = 0; k < v.length; k++) s += (v[k] as number) * (w[k] as number);
          return s;
        }),
      );

    let compared = 0;
    for (const [gi, i] of wrt.entries()) {
      const base = data[i] as Float64Array;
      const g = grads[gi];
      const analytic = g === null || g === undefined ? new Float64Array(base.length) : float64Data(g);
      assert.equal(analytic.length, base.length, `${name}: gradient of input ${i} has the wrong number of elements`);
      for (let j = 0; j < base.length; j++) {
        const plus = Float64Array.from(base);
        const minus = Float64Array.from(base);
        plus[j] = (base[j] as number) + eps;
        minus[j] = (base[j] as number) - eps;
        const numeric = (evaluate(i, plus) - evaluate(i, minus)) / (2 * eps);
        const a = analytic[j] as number;
        if (!(Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric))) {
          assert.fail(
            `${name}: d/d input ${i} [shape ${shapes[i]}] element ${j}: autograd ${a}, finite difference ${numeric} ` +
              `(atol ${atol}, rtol ${rtol})`,
          );
        }
        compared++;
      }
    }
    return compared;
  });
}
