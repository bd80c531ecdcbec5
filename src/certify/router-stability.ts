// The router's side of the Lipschitz certificates (METHOD.md section 5, docs/CERTIFY.md):
// how fast a logit gap z_i - z_j can change with the image, the Lipschitz constants of the
// softmax gate weights, and the route-stable radius of hard and top-k routing.
//
// A hard (argmax) or top-k router is not Lipschitz: its weights jump where two logits tie. The
// certificate therefore holds inside the ball where the selected experts cannot change. For a
// linear router on the normalised image, z(x) = W ((x - mu) / sigma) + b is affine in the
// pixels x, so z_i - z_j = (v_i - v_j) . x + const with v_i = W_i / sigma (sigma of each
// pixel's channel), and the distance from x to the tie {z_i = z_j} in a norm is
// (z_i - z_j) / |v_i - v_j|_* with the dual norm: L1 for L-inf, L2 for L2. In normalised
// coordinates that is (r_i - r_j) / |W_i - W_j|_1; mapped back to pixels every weight is divided
// by its channel's std, a weighted norm. This is exact (in R^n; inside the [0,1] box the true
// distance can only be larger). For a conv router the same formula with a Lipschitz bound on
// the gap is a sound lower bound on the distance.

import type { MoE } from "../models/moe.js";
import { LinearRouter } from "../models/router.js";
import { chainLipschitz } from "../nn/containers.js";
import { noGrad } from "../tensor/autograd.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { checkNorm, type LipschitzNorm, type LipschitzOptions } from "./lipschitz.js";

export interface RouterConstants {
  norm: LipschitzNorm;
  /**
   * gap[i][j]: a Lipschitz constant of the logit gap x -> z_i(x) - z_j(x) on pixel inputs, in
   * the certificate's norm. Exact for a linear router: |v_i - v_j|_* with v = W / sigma.
   */
  gap: number[][];
  /** True for a linear router: gap is exact and the route radius is the exact distance to the nearest tie. */
  exact: boolean;
}

/** The dual of the perturbation norm, as a vector p-norm: |d . v| <= |d|_p |v|_p*. */
function dualP(norm: LipschitzNorm): number {
  return norm === "linf" ? 1 : 2;
}

/**
 * Pairwise gap constants of an MoE's router, with the MoE's input normalisation folded in.
 * Linear router: exact, from the weights. Conv router: L_h * |G_i - G_j|_*, where L_h bounds
 * normalize + features (the product over its layers) and G is the final linear gate.
 */
export function routerConstants(moe: MoE, norm: LipschitzNorm, options: LipschitzOptions = {}): RouterConstants {
  checkNorm(norm, "routerConstants");
  return noGrad(() =>
    scope(() => {
      const p = dualP(norm);
      const pairwise = (v: Tensor, factor: number): number[][] =>
        (v.unsqueeze(1).sub(v.unsqueeze(0)).norm(p, -1).mul(factor).toArray() as number[][]).map((row) => row.map(Number));
      if (moe.router instanceof LinearRouter) {
        return { norm, gap: pairwise(linearRouterPixelWeights(moe), 1), exact: true };
      }
      const features = chainLipschitz([moe.normalize, moe.router.features], norm, {
        ...options,
        inputShape: options.inputShape ?? moe.imageShape,
      });
      return { norm, gap: pairwise(moe.router.gate.weight.detach().double(), features), exact: false };
    }),
  );
}

/** v = W / sigma, float64 [E, C*H*W]: the linear router's weights on PIXELS (each column divided by its channel's std). */
export function linearRouterPixelWeights(moe: MoE): Tensor {
  if (!(moe.router instanceof LinearRouter)) throw new TypeError("linearRouterPixelWeights: the MoE's router is not linear");
  const [c, h, w] = moe.imageShape;
  return noGrad(() =>
    scope(() => {
      const sigma = moe.normalize.std
        .detach()
        .double()
        .reshape(c, 1, 1)
        .expand(c, h, w)
        .reshape(1, c * h * w);
      return moe.router.gate.weight.detach().double().div(sigma);
    }),
  );
}

/**
 * The linear router's logits in float64, computed from its weights (the same affine map as the
 * model's forward, without float32 rounding in the gaps that the route radius divides).
 */
export function linearRouterLogits64(moe: MoE, x: Tensor): Tensor {
  if (!(moe.router instanceof LinearRouter)) throw new TypeError("linearRouterLogits64: the MoE's router is not linear");
  return noGrad(() =>
    scope(() => {
      const u = moe.normalize.forward(x.detach().double()).flatten(1);
      const gate = moe.router.gate;
      const z = u.matmul(gate.weight.detach().double().T);
      return gate.bias === null ? z : z.add(gate.bias.detach().double());
    }),
  );
}

/**
 * Lipschitz constant of x -> softmax over the experts `over` of z(x), component i:
 * (1/4) max_{j in over, j != i} gap[i][j].
 * Derivation: along the segment x_t = x + t d, d/dt a_i = a_i sum_j a_j (g_ij), with
 * g_ij = d/dt (z_i - z_j), |g_ij| <= gap[i][j] |d|; so |d/dt a_i| <= a_i (1 - a_i) max_j gap[i][j] |d|
 * and a_i (1 - a_i) <= 1/4. (Sharper than the 1/2 |W_i - W_j| sometimes quoted.) 0 when i is alone.
 */
export function softmaxWeightConstant(gap: readonly (readonly number[])[], i: number, over: readonly number[]): number {
  let worst = 0;
  for (const j of over) if (j !== i) worst = Math.max(worst, (gap[i] as readonly number[])[j] as number);
  return worst / 4;
}

/**
 * Radius of the ball around x inside which the selected experts (the top-k set) cannot change:
 * min over i selected, j not selected of max(0, z_i - z_j) / gap[i][j]. Infinity when every
 * expert is selected (dense gating) or no pair can ever tie; 0 at a tie.
 */
export function routeRadius(logits: readonly number[], selected: readonly number[], gap: readonly (readonly number[])[]): number {
  const chosen = new Set(selected);
  let radius = Number.POSITIVE_INFINITY;
  for (const i of selected) {
    for (let j = 0; j < logits.length; j++) {
      if (chosen.has(j)) continue;
      const diff = (logits[i] as number) - (logits[j] as number);
      const speed = (gap[i] as readonly number[])[j] as number;
      if (!(diff > 0)) return 0;
      if (speed > 0) radius = Math.min(radius, diff / speed);
    }
  }
  return radius;
}
