// Lipschitz-margin certificates of the paper (METHOD.md section 5, docs/CERTIFY.md): per-sample
// radii for a classifier, a mixture of experts (Theorem 5.4) and the dual model (Theorem 5.5),
// computed from the layers' sound constants (certify/lipschitz.ts) and the router's
// (certify/router-stability.ts).
//
// Theorem 5.4, as we prove it. F(x) = sum_i a_i(x) g_i(x) with g_i = softmax(f_i) (probabilities,
// |g_i| <= M_i = 1 in L-inf and in L2), a_i r_i-Lipschitz, g_i L_i-Lipschitz (L_i = half the
// logits' constant: softmax is 1/2-Lipschitz in both norms, its Jacobian diag(p) - p p^T having
// row sums 2 p_i (1 - p_i) <= 1/2). For |d| <= rho:
//   F(x+d) - F(x) = sum_i (a_i(x+d) - a_i(x)) g_i(x+d) + a_i(x) (g_i(x+d) - g_i(x)),
//   |F(x+d) - F(x)| <= sum_i (r_i M_i + a_i(x) L_i) rho = K(x) rho,
// in the output norm, so every class score moves by at most K(x) rho and the margin
// F_y - max_{j != y} F_j by at most 2 K(x) rho: c = 2. (c = sqrt 2 also holds in L2, where
// (e_y - e_j) . v <= sqrt 2 |v|_2; c = 1 is the paper's printed form, sound only when L_i, M_i
// bound the pairwise margin functions themselves, which layer-wise constants do not.)
// Theorem 5.5 follows by linearity: F_D = (1 - alpha) F_S + alpha F_R moves by at most
// ((1 - alpha) K_S(x) + alpha K_R(x)) rho.
//
// Hard and top-k routing: the weights jump at routing ties, so the bound holds inside the
// route-stable ball only, and every radius is min(route radius, margin / (c K)). With one
// selected expert the MoE's class IS that expert's class (a positive weight does not move an
// argmax), so there the radius is min(route radius, logit margin / (c L_logits)), which is never
// smaller than the probability form (2 (p_y - p_j) <= z_y - z_j).
import type { DualModel, MixSpace } from "../models/dual.js";
import { MoE } from "../models/moe.js";
import { softmax } from "../nn/functional.js";
import type { Module, UnaryModule } from "../nn/module.js";
import { noGrad } from "../tensor/autograd.js";
import { tensor } from "../tensor/creation.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { checkNorm, type LipschitzNorm, type LipschitzOptions, outputShapeOf, requireEval } from "./lipschitz.js";
import {
  linearRouterLogits64,
  type RouterConstants,
  routeRadius,
  routerConstants,
  softmaxWeightConstant,
} from "./router-stability.js";

/** A classifier with a global bound (ResNet18, an MLP, ...) or a MoE of such experts. */
export type CertifiableModel = Module & UnaryModule;

export interface ConstantsOptions extends LipschitzOptions {
  /**
   * Also bound each classifier through the other norm (default true): with n inputs and K
   * outputs, |f(x) - f(y)|_inf <= |f(x) - f(y)|_2 <= L2 |x - y|_2 <= L2 sqrt(n) |x - y|_inf, so
   * min(L_inf, sqrt(n) L2) is a sound L-inf constant (and min(L2, sqrt(K) L_inf) in L2). On a
   * ResNet18 this is many orders of magnitude below the L-inf product (docs/CERTIFY.md), at the
   * cost of computing the L2 constant too.
   */
  crossNorm?: boolean;
}

export interface CertifyOptions extends ConstantsOptions {
  /** Perturbation norm (default 'linf'). */
  norm?: LipschitzNorm;
  /** Margin factor (default 2; see the file comment). Values below the sound one are flagged in `sound`. */
  c?: number;
  /** True classes [N] (int64); without them `correct` is null. */
  labels?: Tensor;
  /** A radius below this is reported as vacuous (default 1e-4, a 40th of one 8-bit grey level). */
  vacuousBelow?: number;
  /** Constants computed earlier for the same model and norm (they do not depend on x). */
  constants?: ModelConstants;
}

/** The x-independent constants of a model. */
export interface ModelConstants {
  norm: LipschitzNorm;
  /** Lipschitz constant of each expert's logits (one entry for a plain classifier): min(sameNorm, crossNorm). */
  experts: number[];
  /** The product over layers in the certificate's norm (what each model's lipschitz(norm) states). */
  sameNorm: number[];
  /** The bound through the other norm (see ConstantsOptions.crossNorm); null when not computed. */
  crossNorm: number[] | null;
  /** The router's gap constants; null for a plain classifier. */
  router: RouterConstants | null;
  /** False when a constant is an estimate (l2Method 'power'). */
  sound: boolean;
}

/** The per-sample certificate of a classifier or MoE. All arrays have one entry per sample. */
export interface Certificate {
  norm: LipschitzNorm;
  c: number;
  /** Whether the radii are proven: sound constants and c at least the sound factor for the norm. */
  sound: boolean;
  /**
   * What is certified. 'model': the model's own prediction (a plain classifier, or an MoE with one
   * selected expert per sample). 'probability-mixture': the prediction of
   * sum_i a_i softmax(f_i), Theorem 5.4's F, for dense or top-k > 1 gating; the deployed MoE mixes
   * logits and may predict differently (see agreesWithModel).
   */
  certifies: "model" | "probability-mixture";
  predicted: number[];
  /** The certified function's prediction equals the model's own. */
  agreesWithModel: boolean[];
  /** predicted == label, when labels were given. */
  correct: boolean[] | null;
  /** Margin of the certified output at x (logits for 'model', probabilities otherwise). */
  margin: number[];
  /** K(x): the local constant of the certified output (L of the routed expert for 'model' MoEs). */
  localConstant: number[];
  /** margin / (c K(x)). */
  lipschitzRadius: number[];
  /** Route-stable radius (Infinity when no route can change). */
  routeRadius: number[];
  /** min(lipschitzRadius, routeRadius): the certified radius. */
  radius: number[];
  limitedBy: ("route" | "lipschitz")[];
  /** radius < vacuousBelow. */
  vacuous: boolean[];
  vacuousBelow: number;
  constants: ModelConstants;
}

/** The smallest c that is sound for layer-wise constants in this norm. */
export function soundC(norm: LipschitzNorm): number {
  return norm === "linf" ? 2 : Math.SQRT2;
}

/** The constants of one classifier on inputs of the given shape: [same norm, through the other norm or null]. */
function classifierConstants(
  m: CertifiableModel,
  norm: LipschitzNorm,
  options: ConstantsOptions,
  inputShape: readonly number[],
): [number, number | null] {
  const shaped: LipschitzOptions = { ...options, inputShape };
  const same = m.lipschitz(norm, shaped);
  if (!(options.crossNorm ?? true)) return [same, null];
  const other = m.lipschitz(norm === "linf" ? "l2" : "linf", shaped);
  const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  const factor = norm === "linf" ? Math.sqrt(size(inputShape)) : Math.sqrt(size(outputShapeOf(m, inputShape)));
  return [same, other * factor];
}

/** Constants of a classifier (its lipschitz) or of a MoE (each expert's, and the router's). */
export function modelConstants(model: CertifiableModel, norm: LipschitzNorm, options: ConstantsOptions = {}): ModelConstants {
  checkNorm(norm, "modelConstants");
  requireEval(model, "modelConstants");
  const crossNorm = options.crossNorm ?? true;
  // A power-iteration L2 constant is an estimate: it enters L2 certificates, and L-inf ones through crossNorm.
  const sound = !(options.l2Method === "power" && (norm === "l2" || crossNorm));
  const isMoE = model instanceof MoE;
  const inputShape = options.inputShape ?? (isMoE ? model.imageShape : undefined);
  if (inputShape === undefined) throw new TypeError("modelConstants: give options.inputShape, the shape of one input sample");
  const members = isMoE ? [...model.experts] : [model];
  const pairs = members.map((m) => classifierConstants(m as CertifiableModel, norm, options, inputShape));
  const sameNorm = pairs.map(([s]) => s);
  const cross = crossNorm ? pairs.map(([, c]) => c as number) : null;
  const experts = sameNorm.map((s, i) => (cross === null ? s : Math.min(s, cross[i] as number)));
  const router = isMoE ? routerConstants(model, norm, { ...options, inputShape }) : null;
  return { norm, experts, sameNorm, crossNorm: cross, router, sound };
}

function resolve(model: CertifiableModel, x: Tensor, o: CertifyOptions) {
  const norm = o.norm ?? "linf";
  checkNorm(norm, "lipschitzRadius");
  requireEval(model, "lipschitzRadius");
  const c = o.c ?? 2;
  if (!(c > 0 && Number.isFinite(c))) throw new RangeError(`lipschitzRadius: c must be a positive number, got ${c}`);
  const vacuousBelow = o.vacuousBelow ?? 1e-4;
  const options: ConstantsOptions = { ...o, inputShape: o.inputShape ?? x.shape.slice(1) };
  const constants = o.constants ?? modelConstants(model, norm, options);
  if (constants.norm !== norm) throw new TypeError(`lipschitzRadius: constants for '${constants.norm}' given for norm '${norm}'`);
  const labels = o.labels === undefined ? null : (o.labels.toFlatArray() as number[]);
  if (labels !== null && labels.length !== x.size(0))
    throw new TypeError(`lipschitzRadius: ${labels.length} labels for ${x.size(0)} samples`);
  return { norm, c, vacuousBelow, constants, labels, sound: constants.sound && c >= soundC(norm) };
}

/** argmax and top-vs-runner-up margin of a score vector (ties give margin 0). */
export function marginOf(scores: readonly number[]): { predicted: number; margin: number } {
  let predicted = 0;
  for (let k = 1; k < scores.length; k++) if ((scores[k] as number) > (scores[predicted] as number)) predicted = k;
  let other = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < scores.length; k++) if (k !== predicted) other = Math.max(other, scores[k] as number);
  return { predicted, margin: scores.length < 2 ? Number.POSITIVE_INFINITY : (scores[predicted] as number) - other };
}

function softmaxRow(z: readonly number[]): number[] {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** What one model contributes at each sample: its routing, its experts' logits and weights. */
interface Routed {
  /** Selected experts per sample (one entry [0] for a plain classifier). */
  selected: number[][];
  /** Gate weight of each selected expert (1 for a plain classifier). */
  weights: number[][];
  /** Logits of each selected expert per sample. */
  logits: number[][][];
  /** Route-stable radius per sample. */
  routeRadius: number[];
  /** Experts the softmax of each selected weight runs over: [] when the weight is constant. */
  softmaxOver: (sample: number) => number[];
  gating: "single" | "mixture";
}

function route(model: CertifiableModel, x: Tensor, constants: ModelConstants): Routed {
  return noGrad(() =>
    scope(() => {
      const n = x.size(0);
      if (!(model instanceof MoE)) {
        const logits = (model.forward(x).double().toArray() as number[][]).map((row) => [row]);
        return {
          selected: Array.from({ length: n }, () => [0]),
          weights: Array.from({ length: n }, () => [1]),
          logits,
          routeRadius: new Array<number>(n).fill(Number.POSITIVE_INFINITY),
          softmaxOver: () => [],
          gating: "single" as const,
        };
      }
      const moe = model;
      const routerLogits = moe.routerLogits(x);
      const gates = moe.gatesFromLogits(routerLogits);
      const selected = gates.indices.toArray() as number[][];
      const weights = gates.weights.double().toArray() as number[][];
      // Gaps in float64 (exact weights for a linear router): the route radius divides them.
      const z64 = (constants.router?.exact ? linearRouterLogits64(moe, x) : routerLogits.double()).toArray() as number[][];
      const gap = (constants.router as RouterConstants).gap;
      const all = Array.from({ length: moe.numExperts }, (_, i) => i);
      const routeRadii = selected.map((s, b) =>
        moe.gating === "dense" || s.length === moe.numExperts
          ? Number.POSITIVE_INFINITY
          : routeRadius(z64[b] as number[], s, gap),
      );
      // Each expert once, on the samples that selected it (as the MoE's own dispatch).
      const logits: number[][][] = selected.map((s) => s.map(() => []));
      for (let e = 0; e < moe.numExperts; e++) {
        const rows: number[] = [];
        selected.forEach((s, b) => {
          if (s.includes(e)) rows.push(b);
        });
        if (rows.length === 0) continue;
        const idx = tensor(rows, { dtype: "int64", device: x.device as "cpu" });
        const out = moe.experts.at(e).forward(x.indexSelect(0, idx)).double().toArray() as number[][];
        rows.forEach((b, r) => {
          const s = selected[b] as number[];
          (logits[b] as number[][])[s.indexOf(e)] = out[r] as number[];
        });
      }
      const constantWeight = moe.gating === "hard" || (moe.k === 1 && moe.renormalize);
      return {
        selected,
        weights,
        logits,
        routeRadius: routeRadii,
        // Renormalised top-k weights are a softmax over the selected logits; otherwise over all of them.
        softmaxOver: (b: number) =>
          constantWeight ? [] : moe.gating === "topk" && moe.renormalize ? (selected[b] as number[]) : all,
        gating: selected.every((s) => s.length === 1) ? ("single" as const) : ("mixture" as const),
      };
    }),
  );
}

/** The probability output P(x) = sum_i a_i softmax(z_i) and its local constant K(x) of one sample. */
function probabilityTerms(r: Routed, b: number, constants: ModelConstants): { probs: number[]; k: number } {
  const gap = constants.router?.gap ?? [];
  const s = r.selected[b] as number[];
  const w = r.weights[b] as number[];
  const over = r.softmaxOver(b);
  let probs: number[] = [];
  let k = 0;
  s.forEach((e, t) => {
    const p = softmaxRow((r.logits[b] as number[][])[t] as number[]);
    const a = w[t] as number;
    probs = probs.length === 0 ? p.map((v) => a * v) : probs.map((v, j) => v + a * (p[j] as number));
    const ri = over.length === 0 ? 0 : softmaxWeightConstant(gap, e, over);
    // r_i M_i + a_i(x) L_i, with M_i = 1 and L_i = half the logits' constant.
    k += ri + (a * (constants.experts[e] as number)) / 2;
  });
  return { probs, k };
}

/**
 * Per-sample certified radius of a classifier or MoE around each x (see the file comment).
 * The model must be in eval mode. ViT experts are refused (no global bound).
 */
export function lipschitzRadius(model: CertifiableModel, x: Tensor, options: CertifyOptions = {}): Certificate {
  const { norm, c, vacuousBelow, constants, labels, sound } = resolve(model, x, options);
  const r = route(model, x, constants);
  const n = x.size(0);
  const cert: Certificate = {
    norm,
    c,
    sound,
    certifies: r.gating === "single" ? "model" : "probability-mixture",
    predicted: [],
    agreesWithModel: [],
    correct: labels === null ? null : [],
    margin: [],
    localConstant: [],
    lipschitzRadius: [],
    routeRadius: r.routeRadius,
    radius: [],
    limitedBy: [],
    vacuous: [],
    vacuousBelow,
    constants,
  };
  for (let b = 0; b < n; b++) {
    const s = r.selected[b] as number[];
    const zs = r.logits[b] as number[][];
    // The deployed model's scores: its own logit mixture.
    const w = r.weights[b] as number[];
    const modelScores = (zs[0] as number[]).map((_, j) => zs.reduce((acc, z, t) => acc + (w[t] as number) * (z[j] as number), 0));
    let predicted: number;
    let margin: number;
    let k: number;
    if (r.gating === "single") {
      ({ predicted, margin } = marginOf(zs[0] as number[]));
      k = constants.experts[s[0] as number] as number;
    } else {
      const terms = probabilityTerms(r, b, constants);
      ({ predicted, margin } = marginOf(terms.probs));
      k = terms.k;
    }
    const lip = k === 0 ? Number.POSITIVE_INFINITY : margin / (c * k);
    const route = r.routeRadius[b] as number;
    const radius = Math.min(lip, route);
    cert.predicted.push(predicted);
    cert.agreesWithModel.push(marginOf(modelScores).predicted === predicted);
    cert.correct?.push(predicted === labels?.[b]);
    cert.margin.push(margin);
    cert.localConstant.push(k);
    cert.lipschitzRadius.push(lip);
    cert.radius.push(radius);
    cert.limitedBy.push(route < lip ? "route" : "lipschitz");
    cert.vacuous.push(radius < vacuousBelow);
  }
  return cert;
}

/** One alpha of a dual-model certificate. */
export interface DualAlphaCertificate {
  alpha: number;
  predicted: number[];
  /** The prediction of the dual model's own mix (its space and alpha) equals the certified one. */
  agreesWithModel: boolean[];
  correct: boolean[] | null;
  /** Margin of (1 - alpha) P_S + alpha P_R at x. */
  margin: number[];
  /** (1 - alpha) K_S(x) + alpha K_R(x). */
  localConstant: number[];
  lipschitzRadius: number[];
  /** min of the members' route radii (a member with weight 0 does not count). */
  routeRadius: number[];
  radius: number[];
  limitedBy: ("route" | "lipschitz")[];
  vacuous: boolean[];
}

export interface DualCertificate {
  norm: LipschitzNorm;
  c: number;
  sound: boolean;
  vacuousBelow: number;
  /** The certified function: (1 - alpha) P_S + alpha P_R with P = sum_i a_i softmax(f_i) of each member (Theorem 5.5). */
  certifies: "probability-mixture";
  standard: { constants: ModelConstants; localConstant: number[]; routeRadius: number[] };
  robust: { constants: ModelConstants; localConstant: number[]; routeRadius: number[] };
  alphas: DualAlphaCertificate[];
}

export interface DualCertifyOptions extends Omit<CertifyOptions, "constants"> {
  /** The alphas of the sweep (default: the dual model's alpha). */
  alphas?: readonly number[];
  standardConstants?: ModelConstants;
  robustConstants?: ModelConstants;
}

/**
 * Theorem 5.5 for every alpha of a sweep: radius_D = min(route radii of the members that count,
 * margin_D / (c ((1 - alpha) K_S(x) + alpha K_R(x)))), with margin_D the margin of
 * (1 - alpha) P_S(x) + alpha P_R(x). The members' constants and outputs are computed once.
 */
export function dualLipschitzRadius(dual: DualModel, x: Tensor, options: DualCertifyOptions = {}): DualCertificate {
  const standard = dual.standard as CertifiableModel;
  const robust = dual.robust as CertifiableModel;
  requireEval(dual, "dualLipschitzRadius");
  const alphas = options.alphas ?? [dual.alpha];
  for (const a of alphas) if (!(a >= 0 && a <= 1)) throw new RangeError(`dualLipschitzRadius: alpha must be in [0, 1], got ${a}`);
  const s = resolve(standard, x, { ...options, constants: options.standardConstants });
  const rb = resolve(robust, x, { ...options, constants: options.robustConstants });
  const rs = route(standard, x, s.constants);
  const rr = route(robust, x, rb.constants);
  const n = x.size(0);
  const termsS = Array.from({ length: n }, (_, b) => probabilityTerms(rs, b, s.constants));
  const termsR = Array.from({ length: n }, (_, b) => probabilityTerms(rr, b, rb.constants));
  const rawMix = (r: Routed, b: number): number[] => {
    const zs = r.logits[b] as number[][];
    const w = r.weights[b] as number[];
    return (zs[0] as number[]).map((_, j) => zs.reduce((acc, z, t) => acc + (w[t] as number) * (z[j] as number), 0));
  };
  const space: MixSpace = dual.space;
  const out: DualCertificate = {
    norm: s.norm,
    c: s.c,
    sound: s.sound && rb.sound,
    vacuousBelow: s.vacuousBelow,
    certifies: "probability-mixture",
    standard: { constants: s.constants, localConstant: termsS.map((t) => t.k), routeRadius: rs.routeRadius },
    robust: { constants: rb.constants, localConstant: termsR.map((t) => t.k), routeRadius: rr.routeRadius },
    alphas: [],
  };
  for (const alpha of alphas) {
    const a: DualAlphaCertificate = {
      alpha,
      predicted: [],
      agreesWithModel: [],
      correct: s.labels === null ? null : [],
      margin: [],
      localConstant: [],
      lipschitzRadius: [],
      routeRadius: [],
      radius: [],
      limitedBy: [],
      vacuous: [],
    };
    for (let b = 0; b < n; b++) {
      const ps = (termsS[b] as { probs: number[] }).probs;
      const pr = (termsR[b] as { probs: number[] }).probs;
      const mixed = ps.map((v, j) => (1 - alpha) * v + alpha * (pr[j] as number));
      const { predicted, margin } = marginOf(mixed);
      const k = (1 - alpha) * (termsS[b] as { k: number }).k + alpha * (termsR[b] as { k: number }).k;
      const lip = k === 0 ? Number.POSITIVE_INFINITY : margin / (s.c * k);
      const route = Math.min(
        alpha < 1 ? (rs.routeRadius[b] as number) : Number.POSITIVE_INFINITY,
        alpha > 0 ? (rr.routeRadius[b] as number) : Number.POSITIVE_INFINITY,
      );
      const radius = Math.min(lip, route);
      // The deployed dual model's own mix, in its space, at this alpha.
      const ms = rawMix(rs, b);
      const mr = rawMix(rr, b);
      const [us, ur] = space === "probs" ? [softmaxRow(ms), softmaxRow(mr)] : [ms, mr];
      const own = us.map((v, j) => (1 - alpha) * v + alpha * (ur[j] as number));
      a.predicted.push(predicted);
      a.agreesWithModel.push(marginOf(own).predicted === predicted);
      a.correct?.push(predicted === s.labels?.[b]);
      a.margin.push(margin);
      a.localConstant.push(k);
      a.lipschitzRadius.push(lip);
      a.routeRadius.push(route);
      a.radius.push(radius);
      a.limitedBy.push(route < lip ? "route" : "lipschitz");
      a.vacuous.push(radius < s.vacuousBelow);
    }
    out.alphas.push(a);
  }
  return out;
}

/**
 * The function a 'probability-mixture' certificate is about, differentiable (to attack it):
 * sum_i a_i(x) softmax(f_i(x)) with the MoE's own gate weights; softmax(f(x)) for a classifier.
 */
export function probabilityOutput(model: CertifiableModel, x: Tensor): Tensor {
  return scope(() => {
    if (!(model instanceof MoE)) return softmax(model.forward(x), -1);
    const gates = model.gates(x);
    let out: Tensor | null = null;
    for (let e = 0; e < model.numExperts; e++) {
      const weight = gates.weights.mul(gates.indices.eq(e)).sum(-1).unsqueeze(-1);
      const term = softmax(model.experts.at(e).forward(x), -1).mul(weight);
      out = out === null ? term : out.add(term);
    }
    return out as Tensor;
  });
}

/** (1 - alpha) P_S(x) + alpha P_R(x): the function a dual certificate is about. */
export function dualProbabilityOutput(dual: DualModel, x: Tensor, alpha: number = dual.alpha): Tensor {
  return scope(() =>
    probabilityOutput(dual.standard as CertifiableModel, x)
      .mul(1 - alpha)
      .add(probabilityOutput(dual.robust as CertifiableModel, x).mul(alpha)),
  );
}

/** Fraction of samples that are correct AND certified beyond eps (radius > eps), for each eps. */
export function certifiedAccuracy(
  cert: { radius: readonly number[]; correct: readonly boolean[] | null },
  eps: readonly number[],
): { eps: number; accuracy: number }[] {
  if (cert.correct === null) throw new TypeError("certifiedAccuracy: the certificate was computed without labels");
  const n = cert.radius.length;
  return eps.map((e) => ({
    eps: e,
    accuracy: n === 0 ? 0 : cert.radius.filter((r, i) => r > e && cert.correct?.[i] === true).length / n,
  }));
}
