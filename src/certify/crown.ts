// CROWN-style linear relaxation (Zhang et al. 2018; the backward mode of auto_LiRPA) for the
// plain classifiers of this project: chains and residual blocks of affine layers and ReLUs.
//
// A lower bound of c . f(x) over the input box is found by walking the network backwards with a
// linear function A . z + b of each intermediate z that is <= c . f(x): an affine layer
// z' = J z + k maps A to A J (and adds A . k), a ReLU is replaced by a line below it (for the
// positive coefficients of A) and a line above it (for the negative ones), a residual sum hands A
// to both branches. At the input, min over the box of A . x + b is A . mu - |A| . r + b.
// The ReLU lines need bounds on the ReLU's input: from IBP ('crown-ibp', one backward pass per
// specification), or from CROWN itself, layer by layer ('crown': one backward pass per neuron of
// every ReLU input, for small models only).
//
// A J of an affine layer is computed as a vector-Jacobian product with autograd, through the
// layer's own forward: no transposed convolution to write, and every affine layer (Linear,
// Conv2d, eval BatchNorm, Normalize, pooling, Flatten) is handled by the same code.
import { DualModel } from "../models/dual.js";
import { MoE } from "../models/moe.js";
import { Normalize } from "../models/normalize.js";
import { BasicBlock, ResNet18 } from "../models/resnet18.js";
import { ConvRouter, LinearRouter } from "../models/router.js";
import { BatchNorm2d } from "../nn/batch-norm.js";
import { Sequential } from "../nn/containers.js";
import { Conv2d } from "../nn/conv2d.js";
import { adaptiveAvgPool2d } from "../nn/functional.js";
import { Linear } from "../nn/linear.js";
import type { Module } from "../nn/module.js";
import { AdaptiveAvgPool2d, Dropout, Flatten, Identity, ReLU } from "../nn/simple-layers.js";
import { autograd, enableGrad } from "../tensor/autograd.js";
import { cat, where } from "../tensor/combine.js";
import { eye, zeros } from "../tensor/creation.js";
import type { DType } from "../tensor/dtype.js";
import { scope } from "../tensor/scope.js";
import type { Device, Tensor } from "../tensor/tensor.js";
import {
  type ClassifierBounds,
  type ClassifierRefiner,
  checkBox,
  type IbpContext,
  type IbpOptions,
  type Interval,
  withIbpContext,
} from "./ibp.js";

export type CrownMode = "crown-ibp" | "crown";

export interface CrownOptions {
  /** How the ReLU input bounds are found (default 'crown-ibp'). */
  mode?: CrownMode;
  /**
   * 'crown' only: a ReLU input with more neurons per sample than this keeps its IBP bounds
   * (each neuron costs two backward passes). Default 4096.
   */
  maxNeurons?: number;
}

/** A module the tracer has no rule for: the refiner then keeps the IBP bounds. */
export class CrownUnsupportedError extends Error {
  constructor(readonly moduleClass: string) {
    super(`CROWN: no rule for module class '${moduleClass}'`);
    this.name = "CrownUnsupportedError";
  }
}

type Node =
  | { readonly kind: "input" }
  | {
      readonly kind: "affine";
      readonly input: number;
      /** The layer's forward: affine in its input, so A J and A k come from one vector-Jacobian product. */
      readonly forward: (t: Tensor) => Tensor;
      readonly interval: (iv: Interval, ctx: IbpContext) => Interval;
      /** dtype the forward computes in (its parameters'). */
      readonly dtype: DType | null;
    }
  | { readonly kind: "relu"; readonly input: number }
  | { readonly kind: "add"; readonly inputs: readonly [number, number] };

class Graph {
  readonly nodes: Node[] = [{ kind: "input" }];

  push(node: Node): number {
    this.nodes.push(node);
    return this.nodes.length - 1;
  }
}

function paramDtype(m: Module): DType | null {
  const p = m.parameters()[0] ?? m.buffers().find((b) => b.dtype === "float32" || b.dtype === "float64");
  return p === undefined ? null : p.dtype;
}

function affineModule(g: Graph, m: Module & { forward(t: Tensor): Tensor }, from: number): number {
  return g.push({
    kind: "affine",
    input: from,
    forward: (t) => m.forward(t),
    interval: (iv, ctx) => ctx.propagate(m, iv),
    dtype: paramDtype(m),
  });
}

/** Appends m's computation to g after node `from`; returns m's output node. */
function trace(g: Graph, m: Module, from: number): number {
  const cls = m.constructor;
  if (cls === Sequential) {
    let cur = from;
    for (const child of m as Sequential) cur = trace(g, child, cur);
    return cur;
  }
  if (cls === BatchNorm2d) {
    const bn = m as BatchNorm2d;
    if (bn.training || bn.runningMean === null)
      throw new Error("CROWN: BatchNorm2d must be in eval mode with running statistics");
    return affineModule(g, bn, from);
  }
  if (cls === Dropout) {
    const d = m as Dropout;
    if (d.training && d.p > 0) throw new Error("CROWN: Dropout is random in training mode: call model.eval()");
    return affineModule(g, d, from);
  }
  if (cls === Linear || cls === Conv2d || cls === Normalize || cls === Flatten || cls === Identity || cls === AdaptiveAvgPool2d) {
    return affineModule(g, m as Linear, from);
  }
  if (cls === ReLU) return g.push({ kind: "relu", input: from });
  if (cls === BasicBlock) {
    const b = m as BasicBlock;
    let main = trace(g, b.conv1, from);
    main = trace(g, b.bn1, main);
    main = g.push({ kind: "relu", input: main });
    main = trace(g, b.conv2, main);
    main = trace(g, b.bn2, main);
    const skip = b.shortcut.length === 0 ? from : trace(g, b.shortcut, from);
    return g.push({ kind: "relu", input: g.push({ kind: "add", inputs: [main, skip] }) });
  }
  if (cls === ResNet18) {
    const r = m as ResNet18;
    let cur = trace(g, r.normalize, from);
    cur = trace(g, r.conv1, cur);
    cur = trace(g, r.bn1, cur);
    cur = g.push({ kind: "relu", input: cur });
    for (const layer of [r.layer1, r.layer2, r.layer3, r.layer4]) cur = trace(g, layer, cur);
    cur = g.push({
      kind: "affine",
      input: cur,
      forward: (t) => adaptiveAvgPool2d(t, 1).flatten(1),
      interval: (iv) => ({ lower: adaptiveAvgPool2d(iv.lower, 1).flatten(1), upper: adaptiveAvgPool2d(iv.upper, 1).flatten(1) }),
      dtype: null,
    });
    return trace(g, r.linear, cur);
  }
  if (cls === LinearRouter) {
    const r = m as LinearRouter;
    const flat = g.push({
      kind: "affine",
      input: from,
      forward: (t) => t.flatten(1),
      interval: (iv) => ({ lower: iv.lower.flatten(1), upper: iv.upper.flatten(1) }),
      dtype: null,
    });
    return trace(g, r.gate, flat);
  }
  if (cls === ConvRouter) {
    const r = m as ConvRouter;
    return trace(g, r.gate, trace(g, r.features, from));
  }
  throw new CrownUnsupportedError(cls.name);
}

/** The computation graph of m, or null when some module in it has no CROWN rule. */
function graphOf(m: Module): Graph | null {
  const g = new Graph();
  try {
    trace(g, m, 0);
  } catch (e) {
    if (e instanceof CrownUnsupportedError) return null;
    throw e;
  }
  return g;
}

/** Bounds of every node, forward, by IBP, tightened at ReLU inputs by `tighten` when given. */
function forwardIntervals(
  g: Graph,
  input: Interval,
  ctx: IbpContext,
  tighten: ((id: number, bounds: Interval[]) => Interval | null) | null,
): Interval[] {
  const bounds: Interval[] = [];
  g.nodes.forEach((node, id) => {
    switch (node.kind) {
      case "input":
        bounds[id] = input;
        return;
      case "affine":
        bounds[id] = node.interval(bounds[node.input] as Interval, ctx);
        return;
      case "add": {
        const [a, b] = [bounds[node.inputs[0]] as Interval, bounds[node.inputs[1]] as Interval];
        bounds[id] = { lower: a.lower.add(b.lower), upper: a.upper.add(b.upper) };
        return;
      }
      case "relu": {
        let pre = bounds[node.input] as Interval;
        const better = tighten?.(node.input, bounds) ?? null;
        if (better !== null) {
          pre = { lower: pre.lower.maximum(better.lower), upper: pre.upper.minimum(better.upper) };
          bounds[node.input] = pre;
        }
        bounds[id] = { lower: pre.lower.relu(), upper: pre.upper.relu() };
      }
    }
  });
  return bounds;
}

/** A . J and A . k of an affine node z' = J z + k, by one vector-Jacobian product. */
function affineBackward(
  node: Extract<Node, { kind: "affine" }>,
  a: Tensor,
  inShape: readonly number[],
  dtype: DType,
): { a: Tensor; bias: Tensor } {
  const [s, n] = a.shape as [number, number, ...number[]];
  const computeIn = node.dtype ?? dtype;
  return enableGrad(() => {
    const x0 = zeros([s * n, ...inShape], { dtype: computeIn, device: a.device as Device }).requiresGrad_();
    const y = node.forward(x0);
    const seed = a.reshape(s * n, ...y.shape.slice(1)).to(computeIn);
    const [grad] = autograd.grad(y, x0, { gradOutputs: [seed] });
    const offset = seed.mul(y.detach()).flatten(1).sum(1).view(s, n);
    return { a: (grad as Tensor).to(dtype).view(s, n, ...inShape), bias: offset.to(dtype) };
  });
}

/**
 * The line relaxations of ReLU on [l, u], for a lower bound of A . relu(z): the coefficients on
 * z (A+ times the lower line's slope, A- times the upper line's) and the constant (A- times the
 * upper line's intercept). Upper line on an unstable neuron (l < 0 < u): u (z - l) / (u - l);
 * lower line: z when u > -l, else 0 (CROWN's adaptive choice, both valid below ReLU).
 */
function reluBackward(a: Tensor, pre: Interval): { a: Tensor; bias: Tensor } {
  const l = pre.lower.unsqueeze(0);
  const u = pre.upper.unsqueeze(0);
  const active = l.ge(0);
  const unstable = l.lt(0).logicalAnd(u.gt(0));
  const upperSlope = where(unstable, u.div(u.sub(l).clamp(1e-30, null)), where(active, 1, 0));
  const upperIntercept = where(unstable, upperSlope.mul(l).neg(), 0);
  const lowerSlope = where(active, 1, where(unstable.logicalAnd(u.gt(l.neg())), 1, 0));
  const pos = a.clamp(0, null);
  const neg = a.clamp(null, 0);
  const [s, n] = a.shape as [number, number, ...number[]];
  return {
    a: pos.mul(lowerSlope).add(neg.mul(upperSlope)),
    bias: neg.mul(upperIntercept).reshape(s, n, -1).sum(2),
  };
}

/**
 * Lower bounds of spec . out_node(x) over the input box, for a spec [S, N, ...node shape]:
 * [S, N]. `bounds` holds the (IBP or tighter) bounds of every node up to `node`.
 */
function backward(g: Graph, node: number, spec: Tensor, bounds: Interval[], dtype: DType): Tensor {
  const [s, n] = spec.shape as [number, number, ...number[]];
  const as = new Map<number, Tensor>([[node, spec]]);
  let bias = zeros([s, n], { dtype, device: spec.device as Device });
  const give = (id: number, a: Tensor) => {
    const prev = as.get(id);
    as.set(id, prev === undefined ? a : prev.add(a));
  };
  for (let id = node; id >= 1; id--) {
    const a = as.get(id);
    if (a === undefined) continue;
    as.delete(id);
    const nd = g.nodes[id] as Node;
    switch (nd.kind) {
      case "affine": {
        const inShape = (bounds[nd.input] as Interval).lower.shape.slice(1);
        const r = affineBackward(nd, a, inShape, dtype);
        give(nd.input, r.a);
        bias = bias.add(r.bias);
        break;
      }
      case "relu": {
        const r = reluBackward(a, bounds[nd.input] as Interval);
        give(nd.input, r.a);
        bias = bias.add(r.bias);
        break;
      }
      case "add":
        give(nd.inputs[0], a);
        give(nd.inputs[1], a);
        break;
      case "input":
        break;
    }
  }
  const a = as.get(0);
  if (a === undefined) return bias; // the output does not depend on the input
  const box = bounds[0] as Interval;
  const mu = box.lower.add(box.upper).mul(0.5).unsqueeze(0);
  const r = box.upper.sub(box.lower).mul(0.5).unsqueeze(0);
  return a
    .mul(mu)
    .reshape(s, n, -1)
    .sum(2)
    .sub(a.abs().mul(r).reshape(s, n, -1).sum(2))
    .add(bias);
}

/** Lower and upper bounds of every neuron of node `id` (identity specifications, both signs). */
function nodeBounds(g: Graph, id: number, bounds: Interval[], dtype: DType): Interval {
  const shape = (bounds[id] as Interval).lower.shape;
  const [n, ...rest] = shape as [number, ...number[]];
  const d = rest.reduce((p, q) => p * q, 1);
  const dev = { dtype, device: (bounds[id] as Interval).lower.device as Device };
  const id2 = eye(d, d, dev);
  const spec = cat([id2, id2.neg()], 0)
    .view(2 * d, 1, ...rest)
    .expand(2 * d, n, ...rest);
  const lo = backward(g, id, spec, bounds, dtype); // [2d, N]
  return {
    lower: lo
      .narrow(0, 0, d)
      .transpose(0, 1)
      .reshape(n, ...rest),
    upper: lo
      .narrow(0, d, d)
      .neg()
      .transpose(0, 1)
      .reshape(n, ...rest),
  };
}

/**
 * CROWN bounds of a classifier's logits [N, K] and their pairwise differences over the box,
 * or null when the classifier contains a module without a CROWN rule (a MoE or a dual model is
 * never traced here: the IBP MoE/dual rules combine the CROWN bounds of their parts).
 */
export function crownClassifierBounds(
  model: Module,
  input: Interval,
  ctx: IbpContext,
  options: CrownOptions = {},
): ClassifierBounds | null {
  if (model instanceof MoE || model instanceof DualModel) return null;
  const g = graphOf(model);
  if (g === null) return null;
  const mode = options.mode ?? "crown-ibp";
  const maxNeurons = options.maxNeurons ?? 4096;
  return scope(() => {
    const dtype = ctx.dtype;
    const tighten =
      mode === "crown"
        ? (id: number, bounds: Interval[]) => {
            const shape = (bounds[id] as Interval).lower.shape;
            const d = shape.slice(1).reduce((p, q) => p * q, 1);
            // A node right after the input is affine in it: IBP is already exact there.
            const nd = g.nodes[id] as Node;
            if (d > maxNeurons || (nd.kind === "affine" && nd.input === 0)) return null;
            return nodeBounds(g, id, bounds, dtype);
          }
        : null;
    const bounds = forwardIntervals(g, input, ctx, tighten);
    const out = g.nodes.length - 1;
    const outB = bounds[out] as Interval;
    if (outB.lower.ndim !== 2) throw new TypeError(`CROWN: a classifier must output [N, K], got [${outB.lower.shape}]`);
    const [n, k] = outB.lower.shape as [number, number];
    const dev = { dtype, device: outB.lower.device as Device };
    // Specifications: e_i (lower of logit i), -e_i (upper), e_i - e_j (differences).
    const e = eye(k, k, dev);
    const diffs = e
      .unsqueeze(1)
      .sub(e.unsqueeze(0))
      .reshape(k * k, k);
    const c = cat([e, e.neg(), diffs], 0);
    const spec = c.view(c.size(0), 1, k).expand(c.size(0), n, k);
    const lo = backward(g, out, spec, bounds, dtype); // [2K + K^2, N]
    const lower = lo.narrow(0, 0, k).transpose(0, 1);
    const upper = lo.narrow(0, k, k).neg().transpose(0, 1);
    const diffLower = lo
      .narrow(0, 2 * k, k * k)
      .transpose(0, 1)
      .reshape(n, k, k);
    const diag = eye(k, k, { dtype: "bool", device: outB.lower.device as Device });
    return { lower, upper, diffLower: where(diag, 0, diffLower) };
  });
}

/** An IbpOptions.refine that tightens every supported plain classifier with CROWN. */
export function crownRefiner(options: CrownOptions = {}): ClassifierRefiner {
  return (m, input, _ibp, ctx) => crownClassifierBounds(m, input, ctx, options);
}

/**
 * CROWN bounds of a plain classifier alone (not intersected with IBP's), for every input in
 * [lower, upper]; an error for a module without a CROWN rule. For MoE and dual models use
 * ibpClassifierBounds(model, lower, upper, { refine: crownRefiner() }).
 */
export function crownBounds(
  model: Module,
  lower: Tensor,
  upper: Tensor,
  options: CrownOptions & Pick<IbpOptions, "dtype"> = {},
): ClassifierBounds {
  checkBox(lower, upper);
  if (model instanceof MoE || model instanceof DualModel) throw new CrownUnsupportedError(model.constructor.name);
  trace(new Graph(), model, 0); // names the first module without a rule
  return withIbpContext(lower, options, (ctx) => {
    const input = { lower: lower.to(ctx.dtype).detach(), upper: upper.to(ctx.dtype).detach() };
    return crownClassifierBounds(model, input, ctx, options) as ClassifierBounds;
  });
}
