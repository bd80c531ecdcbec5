// Numeric comparison helpers with messages that show where values differ.
import assert from "node:assert/strict";
import type { Tensor } from "../../src/tensor/index.js";

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: { atol?: number; rtol?: number } = {},
  what = "values",
): void {
  const atol = tol.atol ?? 1e-6;
  const rtol = tol.rtol ?? 1e-5;
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    const err = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(err <= 0) && (worst < 0 || err > worstErr || Number.isNaN(err))) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`);
  }
}

export function assertTensorClose(
  actual: Tensor,
  expected: ArrayLike<number> | Tensor,
  tol: { atol?: number; rtol?: number } = {},
  what = "tensor",
): void {
  const exp =
    Array.isArray(expected) || ArrayBuffer.isView(expected)
      ? (expected as ArrayLike<number>)
      : (expected as Tensor).toFlatArray();
  assertClose(actual.toFlatArray(), exp, tol, what);
}
