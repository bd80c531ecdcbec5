// Every adversarial example an attack hands to an evaluation is checked before it is
// counted: same shape and dtype as x, finite, in the [0, 1] image box, and within eps of
// x. An attack that broke its threat model would otherwise report a robust accuracy that
// is too LOW for the wrong reason (or, with NaNs, an arbitrary one), and nothing
// downstream would notice.
import type { Norm } from "../attacks/attack.js";
import { noGrad } from "../tensor/autograd.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";

/** Relative tolerance on the distance to x: eps * (1 + 1e-6). */
export const EPS_RELATIVE_TOLERANCE = 1e-6;

export class AdversarialOutputError extends Error {
  override name = "AdversarialOutputError";
}

/**
 * Storing x + d in float32 rounds it to the nearest float: for pixel values in [0, 1] that
 * moves a coordinate by at most 2^-25, so |x_adv - x| can exceed an exactly projected eps
 * by that much (1.5e-6 of eps at 2/255). One unit roundoff of the dtype per coordinate
 * (sqrt(D) of them in L2) is allowed on top of the relative tolerance; it is about 1/65000
 * of a grey level in float32.
 */
function roundingSlack(x: Tensor, norm: Norm): number {
  const u = x.dtype === "float64" ? 2 ** -53 : 2 ** -24;
  const perSample = x.size(0) === 0 ? 0 : x.numel / x.size(0);
  return norm === "linf" ? u : u * Math.sqrt(perSample);
}

/**
 * Throws AdversarialOutputError naming the attack (`label`, e.g. "attack 'pgd50@8/255'
 * (PGD-50 (linf, ce))") and the first offending sample (its index offset by firstSample,
 * its position in the evaluation) unless xAdv is a valid adversarial batch for x under the
 * threat model (norm, eps).
 */
export function checkAdversarialOutput(label: string, x: Tensor, xAdv: Tensor, eps: number, norm: Norm, firstSample = 0): void {
  const fail = (what: string): never => {
    throw new AdversarialOutputError(`${label} returned an invalid adversarial example: ${what}`);
  };
  if (xAdv.shape.length !== x.shape.length || xAdv.shape.some((s, i) => s !== x.shape[i])) {
    fail(`shape [${xAdv.shape.join(", ")}], expected [${x.shape.join(", ")}]`);
  }
  if (xAdv.dtype !== x.dtype) fail(`dtype ${xAdv.dtype}, expected ${x.dtype}`);
  if (x.size(0) === 0) return;
  const limit = eps * (1 + EPS_RELATIVE_TOLERANCE) + roundingSlack(x, norm);
  const found = noGrad(() =>
    scope(() => {
      const adv = xAdv.double().flatten(1);
      // v - v is 0 exactly for finite v, NaN for NaN and infinities.
      const notFinite = adv.sub(adv).ne(0).any(1);
      const outOfBox = adv.lt(0).logicalOr(adv.gt(1)).any(1);
      const diff = adv.sub(x.double().flatten(1));
      const dist = norm === "linf" ? diff.abs().max(1)[0] : diff.norm(2, 1);
      const f = notFinite.toFlatArray();
      const b = outOfBox.toFlatArray();
      const d = dist.toFlatArray();
      for (let i = 0; i < f.length; i++) {
        if (f[i] !== 0) return { i, what: "a NaN or infinite value" };
        if (b[i] !== 0) return { i, what: "a value outside [0, 1]" };
        if (!((d[i] as number) <= limit)) {
          return { i, what: `${norm === "linf" ? "L-inf" : "L2"} distance ${d[i]} from x, beyond eps ${eps}` };
        }
      }
      return null;
    }),
  );
  if (found !== null) fail(`sample ${firstSample + found.i} has ${found.what}`);
}
