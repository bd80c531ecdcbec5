// Geometry of the threat models: eps-balls around x intersected with the [0,1] image box,
// steepest-ascent directions and random starting points. All per sample, for any [N, ...].
import { noGrad } from "../tensor/autograd.js";
import { randLike, randnLike } from "../tensor/creation.js";
import type { Generator } from "../tensor/generator.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Norm } from "./attack.js";

/** Guards divisions by a norm that can be exactly zero (a zero gradient, delta = 0). */
const TINY = 1e-12;

/** t [N] reshaped to [N, 1, ..., 1] so that it broadcasts against like [N, ...]. */
export function perSample(t: Tensor, like: Tensor): Tensor {
  return t.reshape(t.size(0), ...new Array<number>(like.ndim - 1).fill(1));
}

/** Per-sample L-inf or L2 norm of t [N, ...], as [N]. */
export function sampleNorm(t: Tensor, norm: Norm): Tensor {
  return scope(() => t.flatten(1).norm(norm === "linf" ? Number.POSITIVE_INFINITY : 2, 1));
}

/**
 * Euclidean projection onto {|d|_inf <= eps} and then the box; the two commute for the
 * L-inf ball, so this is the exact projection onto the intersection.
 */
export function projectLinf(xAdv: Tensor, x: Tensor, eps: number): Tensor {
  return noGrad(() => scope(() => xAdv.clamp(x.sub(eps), x.add(eps)).clamp(0, 1)));
}

/**
 * Scales delta into the L2 ball, then clips to the box. Clipping only moves coordinates
 * towards x, so the result stays in the ball (it is not the exact projection onto the
 * intersection, which no standard attack uses either).
 */
export function projectL2(xAdv: Tensor, x: Tensor, eps: number): Tensor {
  return noGrad(() =>
    scope(() => {
      const delta = xAdv.sub(x);
      const n = sampleNorm(delta, "l2");
      const factor = perSample(n.add(TINY).pow(-1).mul(eps).clamp(null, 1), x);
      return x.add(delta.mul(factor)).clamp(0, 1);
    }),
  );
}

export function project(norm: Norm, xAdv: Tensor, x: Tensor, eps: number): Tensor {
  return norm === "linf" ? projectLinf(xAdv, x, eps) : projectL2(xAdv, x, eps);
}

/** Steepest-ascent direction of unit norm: sign(g) for L-inf, g / |g|_2 for L2. */
export function ascentDirection(g: Tensor, norm: Norm): Tensor {
  return noGrad(() => scope(() => (norm === "linf" ? g.sign() : g.div(perSample(sampleNorm(g, "l2").add(TINY), g)))));
}

/**
 * The standard PGD random start: uniform in the L-inf ball, or for L2 a uniformly random
 * direction scaled by a uniform radius in [0, eps] (torchattacks' PGDL2), then the box.
 * Drawn from `generator` when given, else from the global generator.
 */
export function randomStart(x: Tensor, eps: number, norm: Norm, generator?: Generator): Tensor {
  const g = generator === undefined ? {} : { generator };
  return noGrad(() =>
    scope(() => {
      if (norm === "linf")
        return x
          .add(
            randLike(x, g)
              .mul(2 * eps)
              .sub(eps),
          )
          .clamp(0, 1);
      const dir = ascentDirection(randnLike(x, g), "l2");
      const radius = perSample(randLike(x.flatten(1).select(1, 0), g).mul(eps), x);
      return x.add(dir.mul(radius)).clamp(0, 1);
    }),
  );
}

/** A point on the sphere |d| = eps in a random direction (APGD's start), clipped to the box. */
export function randomSurfacePoint(x: Tensor, eps: number, norm: Norm): Tensor {
  return noGrad(() =>
    scope(() => {
      if (norm === "l2") return x.add(ascentDirection(randnLike(x), "l2").mul(eps)).clamp(0, 1);
      const t = randLike(x).mul(2).sub(1);
      return x.add(t.div(perSample(sampleNorm(t, "linf").add(TINY), x)).mul(eps)).clamp(0, 1);
    }),
  );
}
