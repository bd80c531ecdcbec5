// Interval bound propagation (IBP; Gowal et al. 2018) in the L-inf ball: lower and upper bounds
// on every output of a module for all inputs in a box, by one rule per module class. The rules
// are sound in exact arithmetic (see "Floating point" in docs/CERTIFY.md (IBP)) and exact per
// coordinate for affine and monotone layers; the looseness comes from composing them.
//
// Beyond plain intervals, a classifier gets bounds on the pairwise differences of its logits
// (`diffLower[n, i, j] <= out_i - out_j`): for a network that ends in a Linear layer they are
// computed by folding the difference of two rows into that layer ("elision of the last layer",
// what auto_LiRPA does with its specification matrix C), which is much tighter than
// lower_i - upper_j because the two logits share the whole network below. The MoE uses them for
// its router (which experts are reachable, softmax weights) and for each expert's margins, and
// the dual model adds its members' margin bounds, which is sound because a margin is linear in
// the logits.

import { DualModel } from "../models/dual.js";
import { MoE } from "../models/moe.js";
import { Normalize } from "../models/normalize.js";
import { BasicBlock, ResNet18 } from "../models/resnet18.js";
import { ConvRouter, LinearRouter } from "../models/router.js";
import { BatchNorm2d } from "../nn/batch-norm.js";
import { Sequential } from "../nn/containers.js";
import { Conv2d } from "../nn/conv2d.js";
import { adaptiveAvgPool2d, conv2d, linear } from "../nn/functional.js";
import { Linear } from "../nn/linear.js";
import type { Module } from "../nn/module.js";
import { AdaptiveAvgPool2d, Dropout, Flatten, Identity, ReLU } from "../nn/simple-layers.js";
import { noGrad } from "../tensor/autograd.js";
import { cat, stack, where } from "../tensor/combine.js";
import { arange, eye, onesLike, zeros } from "../tensor/creation.js";
import type { DType } from "../tensor/dtype.js";
import { scope } from "../tensor/scope.js";
import type { Device, Tensor } from "../tensor/tensor.js";

/** Elementwise bounds: lower <= f(x') <= upper for every x' in the input set. */
export interface Interval {
  readonly lower: Tensor;
  readonly upper: Tensor;
}

/**
 * Bounds on a classifier's logits [N, K] over the input box, and on their pairwise
 * differences: diffLower[n, i, j] <= out_i(x') - out_j(x') for every x' in sample n's box
 * (diagonal 0). The margin of label y against class c is diffLower[n, y, c].
 */
export interface ClassifierBounds extends Interval {
  readonly diffLower: Tensor;
  /** Present when the classifier is a MoE: what the router bounds allow. */
  readonly route?: RouteBounds;
  /** Present for a dual model: its members' own bounds. */
  readonly members?: { readonly standard: ClassifierBounds; readonly robust: ClassifierBounds };
}

/** What IBP knows about a MoE's routing inside each sample's box. */
export interface RouteBounds {
  /** Bounds on the router logits r(x'), [N, E], and on their differences, [N, E, E]. */
  readonly router: ClassifierBounds;
  /** [N, E] bool: expert e may be among the selected experts somewhere in the box. */
  readonly reachable: Tensor;
  /** [N] bool: the set of selected experts is provably the same everywhere in the box. */
  readonly stable: Tensor;
  /** [N, E]: bounds on expert e's gate weight wherever e is selected (meaningful where reachable). */
  readonly weightLower: Tensor;
  readonly weightUpper: Tensor;
}

export interface IbpOptions {
  /**
   * Arithmetic of the propagation (default: the input's dtype). float64 pushes the rounding
   * error of the bounds from ~1e-6 to ~1e-15 relative; parameters are converted on the fly.
   */
  dtype?: "float32" | "float64";
  /**
   * A tighter method for the plain classifiers inside the model (a MoE's router and experts, a
   * dual model's members, or the model itself), e.g. crownRefiner() from ./crown.js. Its bounds
   * are intersected with IBP's (both are sound, so the intersection is).
   */
  refine?: ClassifierRefiner;
}

/**
 * Bounds of a classifier (not a MoE or a dual model: those combine their parts' bounds) by
 * another method, given IBP's; null keeps IBP's (e.g. for a module the method does not support).
 */
export type ClassifierRefiner = (
  module: Module,
  input: Interval,
  ibp: ClassifierBounds,
  ctx: IbpContext,
) => ClassifierBounds | null;

/** What a rule may use: child propagation and parameters in the propagation dtype. */
export interface IbpContext {
  readonly dtype: DType;
  /** t in the propagation dtype (a temporary copy, freed with the caller's scope, when it differs). */
  param(t: Tensor): Tensor;
  /** Bounds of a child module's output, by the child's own rule. */
  propagate(m: Module, input: Interval): Interval;
  /** Bounds of a child classifier's logits and their pairwise differences. */
  classifier(m: Module, input: Interval): ClassifierBounds;
  /** The refiner of IbpOptions, if any. */
  readonly refine: ClassifierRefiner | undefined;
}

/** A module class, used as the key of the rule tables (exact class: a subclass may change forward). */
export type ModuleClass<M extends Module> = abstract new (...args: never[]) => M;

export type IbpRule<M extends Module> = (module: M, input: Interval, ctx: IbpContext) => Interval;
export type IbpClassifierRule<M extends Module> = (module: M, input: Interval, ctx: IbpContext) => ClassifierBounds;

/** A classifier that ends in a Linear layer: the body's interval, then the head, elided. */
export interface HeadSplit {
  body(input: Interval, ctx: IbpContext): Interval;
  readonly head: Linear;
}

const rules = new Map<ModuleClass<Module>, IbpRule<Module>>();
const classifierRules = new Map<ModuleClass<Module>, IbpClassifierRule<Module>>();
const headSplits = new Map<ModuleClass<Module>, (m: Module) => HeadSplit | null>();

/** Registers (or replaces) the interval rule of a module class. */
export function registerIbpRule<M extends Module>(cls: ModuleClass<M>, rule: IbpRule<M>): void {
  rules.set(cls, (m, input, ctx) => rule(m as M, input, ctx));
}

/** Registers a classifier rule: bounds on logits and on their pairwise differences. */
export function registerIbpClassifierRule<M extends Module>(cls: ModuleClass<M>, rule: IbpClassifierRule<M>): void {
  classifierRules.set(cls, (m, input, ctx) => rule(m as M, input, ctx));
}

/** Declares that instances of cls end in a Linear head (null from split: this instance does not). */
export function registerIbpHeadSplit<M extends Module>(cls: ModuleClass<M>, split: (m: M) => HeadSplit | null): void {
  headSplits.set(cls, (m) => split(m as M));
}

function className(m: Module): string {
  return m.constructor.name;
}

function supported(): string {
  const names = new Set<string>();
  for (const c of [...rules.keys(), ...classifierRules.keys()]) names.add(c.name);
  return [...names].sort().join(", ");
}

function ruleOf(m: Module): IbpRule<Module> {
  const rule = rules.get(m.constructor as ModuleClass<Module>);
  if (rule === undefined) {
    throw new TypeError(`IBP: no interval rule for module class '${className(m)}' (supported: ${supported()})`);
  }
  return rule;
}

function makeContext(dtype: DType, refine: ClassifierRefiner | undefined): IbpContext {
  const ctx: IbpContext = {
    dtype,
    refine,
    param: (t) => (t.dtype === dtype ? t : t.to(dtype)),
    propagate: (m, input) => scope(() => ruleOf(m)(m, input, ctx)),
    classifier: (m, input) => scope(() => classifierOf(m, input, ctx)),
  };
  return ctx;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Center and radius of a box: mu = (l + u) / 2, r = (u - l) / 2 >= 0. */
function centerRadius(input: Interval): { mu: Tensor; r: Tensor } {
  return { mu: input.lower.add(input.upper).mul(0.5), r: input.upper.sub(input.lower).mul(0.5) };
}

/** Affine image of a box given the map A (with bias) and |A| (without): [A mu - |A| r, A mu + |A| r]. */
function affine(input: Interval, withBias: (t: Tensor) => Tensor, absNoBias: (t: Tensor) => Tensor): Interval {
  const { mu, r } = centerRadius(input);
  const c = withBias(mu);
  const rad = absNoBias(r);
  return { lower: c.sub(rad), upper: c.add(rad) };
}

/** A monotone non-decreasing map applied to both ends: exact per coordinate. */
function monotone(input: Interval, f: (t: Tensor) => Tensor): Interval {
  return { lower: f(input.lower), upper: f(input.upper) };
}

function refuseTraining(m: Module, why: string): void {
  if (m.training) {
    throw new Error(
      `IBP: ${className(m)} is in training mode (${why}); the bounds are for the eval-mode function: call model.eval() first`,
    );
  }
}

/** d with its diagonal set to 0: out_i - out_i is exactly 0, whatever the bounds said. */
function zeroDiagonal(d: Tensor): Tensor {
  const k = d.size(-1);
  return where(eye(k, k, { dtype: "bool", device: d.device as Device }), 0, d);
}

/** Pairwise bounds from the intervals alone: out_i - out_j >= lower_i - upper_j. */
function intervalDiffLower(b: Interval): Tensor {
  return zeroDiagonal(b.lower.unsqueeze(2).sub(b.upper.unsqueeze(1)));
}

function requireLogits(b: Interval, what: string): void {
  if (b.lower.ndim !== 2) throw new TypeError(`IBP: ${what} must output logits [N, K], got shape [${b.lower.shape}]`);
}

/**
 * Bounds on softmax(z) from bounds on the differences of z: p_j = 1 / sum_i exp(z_i - z_j) is
 * decreasing in every z_i - z_j, so p_j >= 1 / sum_i exp(upper(z_i - z_j)) = exp(-lse_i(-dl[j, i]))
 * and p_j <= exp(-lse_i(dl[i, j])) (the diagonal term is exp(0) = 1).
 */
export function softmaxBounds(diffLower: Tensor): Interval {
  return scope(() => ({
    lower: diffLower.neg().logsumexp(2).neg().exp(),
    upper: diffLower.logsumexp(1).neg().exp(),
  }));
}

// ---------------------------------------------------------------------------------------------
// Layer rules

registerIbpRule(Linear, (m, input, ctx) => {
  const w = ctx.param(m.weight);
  const b = m.bias === null ? null : ctx.param(m.bias);
  const absW = w.abs();
  return affine(
    input,
    (t) => linear(t, w, b),
    (t) => linear(t, absW),
  );
});

registerIbpRule(Conv2d, (m, input, ctx) => {
  const w = ctx.param(m.weight);
  const b = m.bias === null ? null : ctx.param(m.bias);
  const o = { stride: m.stride, padding: m.padding, dilation: m.dilation, groups: m.groups };
  const absW = w.abs();
  return affine(
    input,
    (t) => conv2d(t, w, b, o),
    (t) => conv2d(t, absW, null, o),
  );
});

registerIbpRule(BatchNorm2d, (m, input, ctx) => {
  // Eval BatchNorm is the per-channel affine map scale * x + shift; in training it normalises
  // with the batch's own statistics, which couples the samples and is not what is certified.
  refuseTraining(m, "it would use batch statistics");
  if (m.runningMean === null || m.runningVar === null) {
    throw new Error("IBP: BatchNorm2d without running statistics uses batch statistics even in eval mode: not supported");
  }
  const c = m.numFeatures;
  const invStd = ctx.param(m.runningVar).add(m.eps).rsqrt();
  const scale = m.weight === null ? invStd : invStd.mul(ctx.param(m.weight));
  const shift = ctx.param(m.runningMean).mul(scale).neg();
  const shiftB = m.bias === null ? shift : shift.add(ctx.param(m.bias));
  const s = scale.view(1, c, 1, 1);
  const sh = shiftB.view(1, c, 1, 1);
  const absS = s.abs();
  // A negative BatchNorm weight flips the interval: the center/radius form handles it.
  return affine(
    input,
    (t) => t.mul(s).add(sh),
    (t) => t.mul(absS),
  );
});

registerIbpRule(Normalize, (m, input, ctx) => {
  // (x - mean) / std with std > 0 (checked by Normalize): increasing, so exact at the ends.
  const mean = ctx.param(m.mean);
  const std = ctx.param(m.std);
  return monotone(input, (t) => t.sub(mean).div(std));
});

registerIbpRule(ReLU, (_m, input) => monotone(input, (t) => t.relu()));
registerIbpRule(Identity, (_m, input) => monotone(input, (t) => t.view(...t.shape)));
registerIbpRule(Flatten, (m, input) => monotone(input, (t) => t.flatten(m.startDim, m.endDim)));
// Averaging has non-negative weights: monotone in every input, exact at the ends.
registerIbpRule(AdaptiveAvgPool2d, (m, input) => monotone(input, (t) => adaptiveAvgPool2d(t, m.outputSize)));
registerIbpRule(Dropout, (m, input) => {
  if (m.p > 0) refuseTraining(m, "dropout is random in training");
  return monotone(input, (t) => t.view(...t.shape));
});

registerIbpRule(Sequential, (m, input, ctx) => {
  let cur = input;
  for (const child of m) cur = ctx.propagate(child, cur);
  return cur;
});

registerIbpRule(BasicBlock, (m, input, ctx) => {
  // Both branches from the same input box, then the interval sum: sound, but it forgets that
  // the two branches move together (the main source of IBP's looseness in ResNets).
  let main = ctx.propagate(m.conv1, input);
  main = ctx.propagate(m.bn1, main);
  main = monotone(main, (t) => t.relu());
  main = ctx.propagate(m.conv2, main);
  main = ctx.propagate(m.bn2, main);
  const skip = m.shortcut.length === 0 ? input : ctx.propagate(m.shortcut, input);
  return monotone({ lower: main.lower.add(skip.lower), upper: main.upper.add(skip.upper) }, (t) => t.relu());
});

function resnetBody(m: ResNet18, input: Interval, ctx: IbpContext): Interval {
  if (input.lower.ndim !== 4 || input.lower.size(1) !== 3) {
    throw new TypeError(`IBP: ResNet18 expects images [N, 3, H, W], got shape [${input.lower.shape}]`);
  }
  let cur = ctx.propagate(m.normalize, input);
  cur = ctx.propagate(m.conv1, cur);
  cur = ctx.propagate(m.bn1, cur);
  cur = monotone(cur, (t) => t.relu());
  for (const layer of [m.layer1, m.layer2, m.layer3, m.layer4]) cur = ctx.propagate(layer, cur);
  return monotone(cur, (t) => adaptiveAvgPool2d(t, 1).flatten(1));
}

registerIbpHeadSplit(ResNet18, (m) => ({ body: (input, ctx) => resnetBody(m, input, ctx), head: m.linear }));
registerIbpHeadSplit(Linear, (m) => ({ body: (input) => input, head: m }));
registerIbpHeadSplit(Sequential, (m) => {
  const last = m.length > 0 ? m.at(m.length - 1) : null;
  if (!(last instanceof Linear) || last.constructor !== Linear) return null;
  return {
    body: (input, ctx) => {
      let cur = input;
      for (let i = 0; i < m.length - 1; i++) cur = ctx.propagate(m.at(i), cur);
      return cur;
    },
    head: last,
  };
});
registerIbpHeadSplit(LinearRouter, (m) => ({ body: (input) => monotone(input, (t) => t.flatten(1)), head: m.gate }));
registerIbpHeadSplit(ConvRouter, (m) => ({ body: (input, ctx) => ctx.propagate(m.features, input), head: m.gate }));

// Modules with a head split get their interval rule from it (the same computation).
for (const cls of [ResNet18, LinearRouter, ConvRouter] as const) {
  registerIbpRule(cls as ModuleClass<Module>, (m, input, ctx) => {
    const b = ctx.classifier(m, input);
    return { lower: b.lower, upper: b.upper };
  });
}

/**
 * The head W z + b on the body's box, with the pairwise differences folded into it:
 * out_i - out_j = (W_i - W_j) z + (b_i - b_j), so its bounds are (W_i - W_j) mu -+ |W_i - W_j| r.
 */
function elide(head: Linear, body: Interval, ctx: IbpContext): ClassifierBounds {
  if (body.lower.ndim !== 2) {
    throw new TypeError(`IBP: the input of a classifier head must be [N, D], got shape [${body.lower.shape}]`);
  }
  const w = ctx.param(head.weight);
  const b = head.bias === null ? null : ctx.param(head.bias);
  const { mu, r } = centerRadius(body);
  const center = linear(mu, w, b);
  const radius = linear(r, w.abs());
  const lower = center.sub(radius);
  const upper = center.add(radius);
  const [k, d] = w.shape as [number, number];
  const n = mu.size(0);
  const absDiff = w
    .unsqueeze(1)
    .sub(w.unsqueeze(0))
    .abs()
    .reshape(k * k, d);
  const dc = center.unsqueeze(2).sub(center.unsqueeze(1));
  const dr = linear(r, absDiff).view(n, k, k);
  // Both are sound: keep the larger (the elided one, up to rounding).
  const diffLower = zeroDiagonal(dc.sub(dr).maximum(lower.unsqueeze(2).sub(upper.unsqueeze(1))));
  return { lower, upper, diffLower };
}

function classifierOf(m: Module, input: Interval, ctx: IbpContext): ClassifierBounds {
  const cls = m.constructor as ModuleClass<Module>;
  const rule = classifierRules.get(cls);
  if (rule !== undefined) return rule(m, input, ctx);
  const split = headSplits.get(cls)?.(m) ?? null;
  let b: ClassifierBounds;
  if (split !== null) {
    b = elide(split.head, split.body(input, ctx), ctx);
  } else {
    const out = ruleOf(m)(m, input, ctx);
    requireLogits(out, className(m));
    b = { lower: out.lower, upper: out.upper, diffLower: intervalDiffLower(out) };
  }
  const better = ctx.refine?.(m, input, b, ctx) ?? null;
  return better === null ? b : intersectBounds(b, better);
}

/** The intersection of two sound bounds on the same classifier (again sound). */
export function intersectBounds(a: ClassifierBounds, b: ClassifierBounds): ClassifierBounds {
  return scope(() => ({
    lower: a.lower.maximum(b.lower),
    upper: a.upper.minimum(b.upper),
    diffLower: a.diffLower.maximum(b.diffLower),
  }));
}

// ---------------------------------------------------------------------------------------------
// MoE

/**
 * F(x) = sum_{e in S(x)} w_e(x) f_e(x), S(x) the selected experts.
 *
 * Reachability (the route): from the router's difference bounds, expert i is above expert j
 * everywhere in the box when diffLower[i, j] > 0. Top-k selects j only if fewer than k experts
 * are above it, so j is unreachable when at least k experts are certainly above it (top-1 and
 * hard: when any one is). This over-approximates the reachable set (it looks at pairs, not at
 * the joint condition), which is what soundness needs. The route is stable when exactly k
 * experts are reachable: they are then the selected ones everywhere in the box.
 *
 * Gate weights, wherever e is selected:
 *  - hard, or top-1 renormalised: 1.
 *  - dense, top-k without renormalising: p_e = softmax_e(r), bounded by softmaxBounds; for top-1
 *    also p_e >= 1/E (the largest of E probabilities), and p_e's upper bound below 1/E proves e
 *    is never top-1 (one more way to be unreachable).
 *  - top-k renormalised (k >= 2): w_e = 1 / sum_{i in S} exp(r_i - r_e) over the k selected; the
 *    worst S for a lower bound takes e plus the k - 1 reachable others with the largest upper
 *    bounds of r_i - r_e, for the upper bound the k - 1 with the smallest lower bounds.
 *
 * Output: each reachable expert's term w_e f_e is bounded by interval products (weights > 0),
 * and F is the sum of exactly k terms from the reachable set, so F >= the sum of the k smallest
 * term lower bounds (and <= the k largest upper bounds). Stable route: exactly those k terms.
 * When the weights sum to 1 (hard, dense, renormalised) F is also a convex combination of the
 * reachable experts and lies in their hull; both bounds hold, so the tighter one is kept.
 *
 * Margins: F_i - F_j = sum_{e in S} w_e (f_e,i - f_e,j). Each term is at least w_lo * m_e when
 * the expert's own margin bound m_e = diffLower_e[i, j] >= 0 and w_hi * m_e when it is negative,
 * so the same "sum of the k smallest terms" gives a margin bound. For top-1 it reduces to: the
 * MoE certifies iff every reachable expert certifies the label with its own margin. This is
 * tighter than lower_i - upper_j of the mixed logits (also computed; the larger bound is kept).
 */
function moeBounds(moe: MoE, input: Interval, ctx: IbpContext): ClassifierBounds {
  if (moe.training && moe.routerNoise > 0) refuseTraining(moe, "its router logits get random noise in training");
  const n = input.lower.size(0);
  const e = moe.numExperts;
  const k = moe.k;
  const router = ctx.classifier(moe.router, ctx.propagate(moe.normalize, input));
  const rdl = router.diffLower; // rdl[n, i, j] <= r_i - r_j
  // beaten[n, j]: experts certainly above j everywhere in the box.
  let reachable = rdl.gt(0).sum(1).lt(k);

  let weightLower: Tensor;
  let weightUpper: Tensor;
  const convex = moe.gating !== "topk" || moe.renormalize || k === e;
  if (moe.gating === "hard" || (moe.gating === "topk" && moe.renormalize && k === 1)) {
    weightLower = zeros([n, e], { dtype: ctx.dtype, device: rdl.device as Device }).add(1);
    weightUpper = weightLower;
  } else if (moe.gating === "topk" && moe.renormalize && k < e) {
    const others = reachable.unsqueeze(1).logicalAnd(
      eye(e, e, { dtype: "bool", device: rdl.device as Device })
        .logicalNot()
        .unsqueeze(0),
    );
    // others[n, j, i]: i is a reachable expert other than j.
    const upperDiff = where(others, rdl.neg(), Number.NEGATIVE_INFINITY); // >= r_i - r_j
    const lowerDiff = where(others, rdl.transpose(1, 2), Number.POSITIVE_INFINITY); // <= r_i - r_j
    const zero = zeros([n, e, 1], { dtype: rdl.dtype, device: rdl.device as Device });
    const worst = cat([zero, upperDiff.topk(k - 1, 2, true)[0]], 2);
    const best = cat([zero, lowerDiff.topk(k - 1, 2, false)[0]], 2);
    weightLower = worst.logsumexp(2).neg().exp();
    weightUpper = best.logsumexp(2).neg().exp();
  } else {
    const p = softmaxBounds(rdl);
    weightLower = p.lower;
    weightUpper = p.upper;
    if (moe.gating === "topk" && k === 1 && e > 1) {
      weightLower = weightLower.clamp(1 / e, null);
      // The top-1 probability is >= 1/E; the relative slack keeps rounding of p_hi from
      // excluding an expert that ties at exactly 1/E.
      reachable = reachable.logicalAnd(weightUpper.ge((1 / e) * (1 - 1e-5)));
    }
  }
  // Dense gating uses every expert everywhere: nothing to reach, nothing to change. Fewer than
  // k reachable experts cannot happen in exact arithmetic (the clean route is reachable); if
  // rounding ever produced it, every expert is taken as reachable, which is sound.
  const short = reachable.sum(1).lt(k).unsqueeze(1);
  reachable = moe.gating === "dense" ? onesLike(reachable) : reachable.logicalOr(short);
  const stable = reachable.sum(1).eq(k);

  // Each expert on the samples where it is reachable (batched dispatch, as in MoE.combine).
  const lowers: Tensor[] = [];
  const uppers: Tensor[] = [];
  const diffs: Tensor[] = [];
  let numClasses = -1;
  const pending: { e: number; rows: Tensor; b: ClassifierBounds }[] = [];
  for (let i = 0; i < e; i++) {
    const rows = reachable.select(1, i).nonzero().select(1, 0);
    if (rows.size(0) === 0) continue;
    const sub = { lower: input.lower.indexSelect(0, rows), upper: input.upper.indexSelect(0, rows) };
    const b = ctx.classifier(moe.experts.at(i), sub);
    numClasses = b.lower.size(1);
    pending.push({ e: i, rows, b });
  }
  if (numClasses < 0) throw new Error("IBP: no expert is reachable for any sample (the router bounds are not finite?)");
  const dev = { dtype: ctx.dtype, device: rdl.device as Device } as const;
  for (let i = 0; i < e; i++) {
    const got = pending.find((p) => p.e === i);
    if (got === undefined) {
      lowers.push(zeros([n, numClasses], dev));
      uppers.push(zeros([n, numClasses], dev));
      diffs.push(zeros([n, numClasses, numClasses], dev));
      continue;
    }
    lowers.push(zeros([n, numClasses], dev).indexAdd(0, got.rows, got.b.lower));
    uppers.push(zeros([n, numClasses], dev).indexAdd(0, got.rows, got.b.upper));
    diffs.push(zeros([n, numClasses, numClasses], dev).indexAdd(0, got.rows, got.b.diffLower));
  }
  const fl = stack(lowers, 1); // [N, E, K]
  const fu = stack(uppers, 1);
  const fd = stack(diffs, 1); // [N, E, K, K]
  const r3 = reachable.unsqueeze(2);
  const r4 = r3.unsqueeze(3);
  const wl3 = weightLower.unsqueeze(2);
  const wu3 = weightUpper.unsqueeze(2);
  const wl4 = wl3.unsqueeze(3);
  const wu4 = wu3.unsqueeze(3);
  const inf = Number.POSITIVE_INFINITY;
  // Interval product with a positive weight interval, unreachable experts excluded (+-inf).
  const termLower = where(r3, fl.mul(wl3).minimum(fl.mul(wu3)), inf);
  const termUpper = where(r3, fu.mul(wl3).maximum(fu.mul(wu3)), -inf);
  const termDiff = where(r4, where(fd.ge(0), fd.mul(wl4), fd.mul(wu4)), inf);
  let lower = termLower.topk(k, 1, false)[0].sum(1);
  let upper = termUpper.topk(k, 1, true)[0].sum(1);
  let diffLower = termDiff.topk(k, 1, false)[0].sum(1);
  if (convex) {
    lower = lower.maximum(where(r3, fl, inf).min(1)[0]);
    upper = upper.minimum(where(r3, fu, -inf).max(1)[0]);
    diffLower = diffLower.maximum(where(r4, fd, inf).min(1)[0]);
  }
  diffLower = zeroDiagonal(diffLower.maximum(lower.unsqueeze(2).sub(upper.unsqueeze(1))));
  return { lower, upper, diffLower, route: { router, reachable, stable, weightLower, weightUpper } };
}

registerIbpClassifierRule(MoE, moeBounds);
registerIbpRule(MoE, (m, input, ctx) => {
  const b = ctx.classifier(m, input);
  return { lower: b.lower, upper: b.upper };
});

// ---------------------------------------------------------------------------------------------
// Dual model

/**
 * Probability bounds of a classifier and bounds on p_i - p_j. p_i - p_j = p_i (1 - exp(-(z_i - z_j)))
 * with the factor increasing in z_i - z_j >= dl[i, j]: when the factor's bound g is >= 0 the
 * product is >= p_lo_i g, otherwise >= p_hi_i g; also p_i - p_j >= p_lo_i - p_hi_j. Keep the larger.
 */
function probabilityBounds(b: ClassifierBounds): { lower: Tensor; upper: Tensor; diffLower: Tensor } {
  const p = softmaxBounds(b.diffLower);
  const g = b.diffLower.neg().exp().neg().add(1);
  const viaFactor = where(g.ge(0), g.mul(p.lower.unsqueeze(2)), g.mul(p.upper.unsqueeze(2)));
  const viaInterval = p.lower.unsqueeze(2).sub(p.upper.unsqueeze(1));
  return { lower: p.lower, upper: p.upper, diffLower: zeroDiagonal(viaFactor.maximum(viaInterval)) };
}

/**
 * F_D = (1 - alpha) F_S + alpha F_R in logit space. Intervals add; margins add too, because
 * F_D,i - F_D,j = (1 - alpha)(F_S,i - F_S,j) + alpha (F_R,i - F_R,j) at the same x': the members'
 * margin bounds combine without the loss of lower_i - upper_j.
 *
 * In 'probs' space DualModel outputs log P with P = (1 - alpha) p_S + alpha p_R. P and P_i - P_j
 * are bounded by the same sums over the members' probability bounds; log is increasing, so
 * log P is bounded by the logs, and log P_i - log P_j = log(1 + (P_i - P_j) / P_j) is at least
 * log(1 + d / P_j,hi) when the bound d of P_i - P_j is >= 0, and log(1 + d / P_j,lo) (or -inf)
 * when it is negative; also >= log P_i,lo - log P_j,hi. The sign, which is what certifies,
 * is that of d whenever d > 0.
 */
function dualBounds(m: DualModel, input: Interval, ctx: IbpContext): ClassifierBounds {
  const a = m.alpha;
  const s = ctx.classifier(m.standard, input);
  const r = ctx.classifier(m.robust, input);
  const mix = (x: Tensor, y: Tensor) => x.mul(1 - a).add(y.mul(a));
  const members = { standard: s, robust: r };
  if (m.space === "logits") {
    const lower = mix(s.lower, r.lower);
    const upper = mix(s.upper, r.upper);
    const diffLower = zeroDiagonal(mix(s.diffLower, r.diffLower).maximum(lower.unsqueeze(2).sub(upper.unsqueeze(1))));
    return { lower, upper, diffLower, members };
  }
  const ps = probabilityBounds(s);
  const pr = probabilityBounds(r);
  const pLo = mix(ps.lower, pr.lower);
  const pHi = mix(ps.upper, pr.upper).clamp(null, 1);
  const d = mix(ps.diffLower, pr.diffLower);
  const hiJ = pHi.unsqueeze(1);
  const loJ = pLo.unsqueeze(1);
  // 1 + d / P_j with the P_j bound that makes it smallest; log of a non-positive value is -inf.
  const ratio = where(d.ge(0), d.div(hiJ), d.div(loJ)).add(1).clamp(0, null);
  const lower = pLo.log();
  const upper = pHi.log();
  const diffLower = zeroDiagonal(ratio.log().maximum(lower.unsqueeze(2).sub(upper.unsqueeze(1))));
  return { lower, upper, diffLower, members };
}

registerIbpClassifierRule(DualModel, dualBounds);
registerIbpRule(DualModel, (m, input, ctx) => {
  const b = ctx.classifier(m, input);
  return { lower: b.lower, upper: b.upper };
});

// ---------------------------------------------------------------------------------------------
// Public entry points

export function checkBox(lower: Tensor, upper: Tensor): void {
  if (lower.shape.length !== upper.shape.length || lower.shape.some((s, i) => s !== upper.shape[i])) {
    throw new TypeError(`IBP: lower [${lower.shape}] and upper [${upper.shape}] differ in shape`);
  }
  const bad = scope(() => lower.gt(upper).any().item());
  if (bad) throw new RangeError("IBP: lower > upper somewhere in the input box");
}

function contextFor(x: Tensor, options: IbpOptions): IbpContext {
  const dtype: DType = options.dtype ?? x.dtype;
  if (dtype !== "float32" && dtype !== "float64") throw new TypeError(`IBP: float32 or float64 inputs only, got ${dtype}`);
  return makeContext(dtype, options.refine);
}

/**
 * The L-inf ball of radius eps around x (images in [0, 1]) intersected with [0, 1]:
 * [max(x - eps, 0), min(x + eps, 1)].
 */
export function inputBox(x: Tensor, eps: number): Interval {
  if (!(eps >= 0)) throw new RangeError(`IBP: eps must be >= 0, got ${eps}`);
  return scope(() => ({ lower: x.sub(eps).clamp(0, 1), upper: x.add(eps).clamp(0, 1) }));
}

/**
 * Runs fn with a propagation context for inputs like `like` (no gradient recording; tensors
 * created inside and not returned are freed): for other bound methods built on these rules.
 */
export function withIbpContext<T>(like: Tensor, options: IbpOptions, fn: (ctx: IbpContext) => T): T {
  const ctx = contextFor(like, options);
  return noGrad(() => scope(() => fn(ctx)));
}

/** Bounds of module's output for every input in [lower, upper] (same shape, lower <= upper). */
export function ibpBounds(module: Module, lower: Tensor, upper: Tensor, options: IbpOptions = {}): Interval {
  checkBox(lower, upper);
  const ctx = contextFor(lower, options);
  return noGrad(() =>
    scope(() => ctx.propagate(module, { lower: lower.to(ctx.dtype).detach(), upper: upper.to(ctx.dtype).detach() })),
  );
}

/** Bounds on a classifier's logits and on their pairwise differences (plus route/member details). */
export function ibpClassifierBounds(model: Module, lower: Tensor, upper: Tensor, options: IbpOptions = {}): ClassifierBounds {
  checkBox(lower, upper);
  const ctx = contextFor(lower, options);
  return noGrad(() =>
    scope(() => ctx.classifier(model, { lower: lower.to(ctx.dtype).detach(), upper: upper.to(ctx.dtype).detach() })),
  );
}

/**
 * min over c != y of the lower bound of F_y - F_c, [N]: > 0 proves that every point of the box
 * is classified y. +inf with a single class.
 */
export function marginLowerBound(bounds: ClassifierBounds, y: Tensor): Tensor {
  return scope(() => {
    const d = bounds.diffLower;
    const [n, k] = [d.size(0), d.size(1)];
    const row = d.gather(1, y.to("int64").view(n, 1, 1).expand(n, 1, k)).squeeze(1); // F_y - F_c
    const classes = arange(k, undefined, 1, { dtype: "int64", device: d.device as Device }).view(1, k);
    const own = y.to("int64").view(n, 1).eq(classes);
    return where(own, Number.POSITIVE_INFINITY, row).min(1)[0];
  });
}

export interface IbpCertifyOptions extends IbpOptions {
  /** Samples per propagation (default 64). */
  batchSize?: number;
  /**
   * Certified iff the margin's lower bound is > minMargin (default 0). A small positive value
   * buys slack for the rounding of float32 propagation (docs/CERTIFY.md (IBP), "Floating point").
   */
  minMargin?: number;
}

export interface IbpCertifyResult {
  readonly eps: readonly number[];
  /** certified[i][n]: every point of sample n's eps[i]-ball (within [0, 1]) is classified y[n]. */
  readonly certified: boolean[][];
  /** marginLower[i][n]: the lower bound of min_{c != y} F_y - F_c over that ball (certified iff > 0). */
  readonly marginLower: number[][];
  /** For a MoE: routeStable[i][n], the selected experts provably cannot change in that ball. */
  readonly routeStable?: boolean[][];
}

/**
 * IBP certificate at each eps: certified iff the lower bound of F_y - F_c is > 0 for every
 * c != y. The model must be in eval mode (BatchNorm is refused in training mode).
 */
export function ibpCertify(
  model: Module,
  x: Tensor,
  y: Tensor,
  eps: readonly number[],
  options: IbpCertifyOptions = {},
): IbpCertifyResult {
  const n = x.size(0);
  if (y.ndim !== 1 || y.size(0) !== n) throw new TypeError(`ibpCertify: y must be [${n}], got shape [${y.shape}]`);
  const batch = options.batchSize ?? 64;
  const minMargin = options.minMargin ?? 0;
  if (!(Number.isInteger(batch) && batch >= 1)) throw new RangeError(`ibpCertify: batchSize must be a positive integer`);
  const certified: boolean[][] = eps.map(() => []);
  const marginLower: number[][] = eps.map(() => []);
  const routeStable: boolean[][] = eps.map(() => []);
  let isMoE = false;
  eps.forEach((e, i) => {
    for (let s = 0; s < n; s += batch) {
      const len = Math.min(batch, n - s);
      const [margins, stable] = scope(() => {
        const xs = x.narrow(0, s, len);
        const box = inputBox(xs, e);
        const b = ibpClassifierBounds(model, box.lower, box.upper, options);
        const m = marginLowerBound(b, y.narrow(0, s, len))
          .to("float64")
          .toFlatArray();
        const st = b.route === undefined ? null : (b.route.stable.toFlatArray() as unknown as (number | boolean)[]);
        return [m, st] as const;
      });
      for (const v of margins) {
        marginLower[i]?.push(v);
        certified[i]?.push(v > minMargin);
      }
      if (stable !== null) {
        isMoE = true;
        for (const v of stable) routeStable[i]?.push(Boolean(v));
      }
    }
  });
  return isMoE ? { eps, certified, marginLower, routeStable } : { eps, certified, marginLower };
}
