// Mixture of experts of whole classifiers (METHOD.md section 1): F(x) = sum_i a_i(x) f_i(x).
// Dispatch is batched: each expert runs once per batch on the samples routed to it, so
// BatchNorm sees the expert's whole sub-batch and the cost is ~ one dense model at top-1.
import { LipschitzError, type LipschitzNorm, type LipschitzOptions } from "../certify/lipschitz.js";
import { ModuleList } from "../nn/containers.js";
import { softmax } from "../nn/functional.js";
import { Module, type UnaryModule } from "../nn/module.js";
import { autograd, isGradEnabled, noGrad } from "../tensor/autograd.js";
import { onesLike, randnLike, zeros } from "../tensor/creation.js";
import { getNumThreads } from "../tensor/runtime.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { CIFAR10_MEAN, CIFAR10_STD, Normalize } from "./normalize.js";
import { ConvRouter, LinearRouter, type RouterKind } from "./router.js";

/**
 * topk: softmax over all router logits, restricted to the k best experts (renormalised
 *   over them when `renormalize`; k = 1 without renormalising is Switch's p_i(x), which
 *   is what lets the router learn).
 * dense: every expert with its softmax weight.
 * hard: argmax with weight 1 (the paper's code; the router gets no gradient).
 */
export type GatingMode = "topk" | "dense" | "hard";

export interface MoEOptions {
  k?: number;
  gating?: GatingMode;
  renormalize?: boolean;
  router?: RouterKind;
  /** Std of Gaussian noise added to router logits in training mode (0: none). */
  routerNoise?: number;
  /**
   * In a training forward (input without gradient), differentiate the experts concurrently,
   * one intra-op thread each (default true). Same gradients; faster for small sub-batches.
   * Not compatible with createGraph or autograd.grad on the output (both raise an error that
   * says so): turn it off for those.
   */
  concurrentBackward?: boolean;
  imageShape?: readonly [number, number, number];
  normalize?: { mean: readonly number[]; std: readonly number[] };
}

export interface Gates {
  /** [N, k] weights of the selected experts. */
  weights: Tensor;
  /** [N, k] int64 expert indices, best first. */
  indices: Tensor;
  /** [N, E] softmax of the router logits. */
  probs: Tensor;
}

export class MoE<E extends UnaryModule = UnaryModule> extends Module implements UnaryModule {
  readonly normalize: Normalize;
  readonly router: LinearRouter | ConvRouter;
  readonly experts: ModuleList<E>;
  readonly k: number;
  readonly gating: GatingMode;
  readonly renormalize: boolean;
  readonly routerKind: RouterKind;
  readonly imageShape: readonly [number, number, number];
  routerNoise: number;
  /** See MoEOptions.concurrentBackward; settable at any time. */
  concurrentBackward: boolean;

  constructor(experts: readonly E[], options: MoEOptions = {}) {
    super();
    if (experts.length < 1) throw new TypeError("MoE: needs at least one expert");
    this.gating = options.gating ?? "topk";
    this.k = this.gating === "dense" ? experts.length : this.gating === "hard" ? 1 : (options.k ?? 1);
    if (!Number.isInteger(this.k) || this.k < 1 || this.k > experts.length) {
      throw new RangeError(`MoE: k must be an integer in [1, ${experts.length}], got ${options.k}`);
    }
    this.renormalize = options.renormalize ?? false;
    this.routerNoise = options.routerNoise ?? 0;
    this.concurrentBackward = options.concurrentBackward ?? true;
    this.imageShape = options.imageShape ?? [3, 32, 32];
    const [c, h, w] = this.imageShape;
    const norm = options.normalize ?? { mean: CIFAR10_MEAN, std: CIFAR10_STD };
    this.normalize = this.registerModule("normalize", new Normalize(norm.mean, norm.std));
    this.routerKind = options.router ?? "linear";
    this.router = this.registerModule(
      "router",
      this.routerKind === "linear" ? new LinearRouter(c * h * w, experts.length) : new ConvRouter(c, experts.length),
    );
    this.experts = this.registerModule("experts", new ModuleList(experts));
  }

  get numExperts(): number {
    return this.experts.length;
  }

  /** Router logits r(x), [N, E] (with training noise when enabled and in training mode). */
  routerLogits(x: Tensor): Tensor {
    return scope(() => {
      const r = this.router.forward(this.normalize.forward(x));
      return this.training && this.routerNoise > 0 ? r.add(randnLike(r).mul(this.routerNoise)) : r;
    });
  }

  /** Gating weights a(x) from router logits: the selected experts and their weights. */
  gatesFromLogits(logits: Tensor): Gates {
    return scope(() => {
      const probs = softmax(logits, -1);
      if (this.gating === "hard") {
        const indices = probs.argmax(-1, true);
        return { weights: noGrad(() => onesLike(indices, { dtype: probs.dtype })), indices, probs };
      }
      if (this.gating === "dense") {
        const [weights, indices] = probs.sort(-1, true);
        return { weights, indices, probs };
      }
      const [top, indices] = probs.topk(this.k, -1);
      const weights = this.renormalize ? top.div(top.sum(-1, true)) : top;
      return { weights, indices, probs };
    });
  }

  gates(x: Tensor): Gates {
    return scope(() => this.gatesFromLogits(this.routerLogits(x)));
  }

  /**
   * The expert ranked second by the router at x, [N] int64 (RT-ER's "additional" expert).
   * Ranked without the training noise: the runner-up is a property of x, not of a noise draw.
   */
  secondExpert(x: Tensor): Tensor {
    if (this.numExperts < 2) throw new RangeError("secondExpert: the MoE has a single expert");
    return noGrad(() => scope(() => this.router.forward(this.normalize.forward(x)).topk(2, -1)[1].select(1, 1)));
  }

  /** Logits of expert i on all of x, [N, K]. */
  expertLogits(x: Tensor, i: number): Tensor {
    return this.experts.at(i).forward(x);
  }

  /** Mixes expert outputs with given gates (batched dispatch); used by forward and by attacks. */
  combine(x: Tensor, g: Gates): Tensor {
    return scope(() => {
      // Each expert's output on its samples, and the gate weight of those samples.
      const parts: { rows: Tensor | null; weight: Tensor; y: Tensor }[] = [];
      for (let e = 0; e < this.numExperts; e++) {
        if (this.gating === "dense") {
          parts.push({ rows: null, weight: g.probs.select(1, e).unsqueeze(-1), y: this.experts.at(e).forward(x) });
          continue;
        }
        const hit = g.indices.eq(e);
        const rows = hit.any(-1).nonzero().select(1, 0);
        if (rows.size(0) === 0) continue;
        const weight = g.weights.mul(hit).sum(-1).indexSelect(0, rows).unsqueeze(-1);
        parts.push({ rows, weight, y: this.experts.at(e).forward(x.indexSelect(0, rows)) });
      }
      if (this.#backwardConcurrently(x, parts.length)) {
        const ys = autograd.concurrentBranches(parts.map((p) => p.y));
        parts.forEach((p, i) => {
          p.y = ys[i] as Tensor;
        });
      }
      let out: Tensor | null = null;
      for (const { rows, weight, y } of parts) {
        const term = y.mul(weight);
        if (rows === null) {
          out = out === null ? term : out.add(term);
          continue;
        }
        // The product's dtype, not the expert's: under autocast the logits are bfloat16 and the
        // gate weights float32 (as the reference's y.new_zeros after the product).
        out ??= zeros([x.size(0), term.size(1)], { dtype: term.dtype, device: term.device as "cpu" });
        out = out.indexAdd(0, rows, term);
      }
      return out as Tensor;
    });
  }

  /**
   * Whether the experts' backward passes run side by side (see concurrentBackward): only
   * for a training forward whose input needs no gradient, so attacks and input gradients
   * keep the ordinary sequential graph.
   */
  #backwardConcurrently(x: Tensor, branches: number): boolean {
    return (
      this.concurrentBackward && this.training && branches >= 2 && getNumThreads() >= 2 && isGradEnabled() && !x.requiresGrad
    );
  }

  /** F(x): the logits [N, K]. No side effects: usage and the load-balancing loss come from forwardDetailed. */
  forward(x: Tensor): Tensor {
    return scope(() => this.combine(x, this.gates(x)));
  }

  /**
   * The logits with what produced them: the gates (for usage counting, see ExpertUsage) and
   * the Switch load-balancing loss E * sum_i frac_i * meanprob_i (1 when balanced; frac_i
   * counts top-1 routes without a gradient, meanprob_i carries the router's). Every call
   * returns its own tensors, so several forwards per batch (TRADES, RT-ER) never overwrite
   * each other's loss.
   */
  forwardDetailed(x: Tensor): MoEOutput {
    return scope(() => {
      const gates = this.gates(x);
      return { logits: this.combine(x, gates), gates, loadBalancingLoss: this.loadBalancingLoss(gates) };
    });
  }

  /**
   * Refused: a gated mixture has no global constant (logits are unbounded and a router's
   * argmax jumps); its certificate is local, Theorem 5.4 (certify/lipschitz-radius.ts).
   */
  override lipschitz(_norm: LipschitzNorm, _options?: LipschitzOptions): number {
    throw new LipschitzError(
      "MoE: no global Lipschitz bound (the gate weights multiply unbounded logits, and top-k/hard routing jumps at ties); use lipschitzRadius (certify/lipschitz-radius.ts), whose local constant K(x) is Theorem 5.4's",
    );
  }

  /** Switch-Transformer load balancing of the given gates (a scalar). */
  loadBalancingLoss(g: Gates): Tensor {
    return scope(() => {
      const e = this.numExperts;
      const top1 = g.indices.select(1, 0);
      const frac = noGrad(() => top1.bincount(e).to(g.probs.dtype).div(top1.size(0)));
      return frac.mul(g.probs.mean(0)).sum().mul(e);
    });
  }
}

/** What MoE.forwardDetailed returns. */
export interface MoEOutput {
  logits: Tensor;
  gates: Gates;
  /** Switch load-balancing loss, a scalar (1 at perfectly balanced routing). */
  loadBalancingLoss: Tensor;
}
