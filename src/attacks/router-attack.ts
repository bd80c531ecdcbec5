// RA-R, the router attack (METHOD.md section 2): the experts are frozen at their clean
// outputs f_i(x), and PGD maximises CE(sum_i a_i(x + d) f_i(x), y) through the router's
// softmax. For top-k gating the gates at x + d come from gatesFromLogits(routerLogits(x + d))
// and pick among the precomputed clean outputs of every expert, so the route may move to
// any expert. The 'route' objective instead pushes the router logits away from the clean
// top-1 expert (CE of the router logits against it), which also works for hard gating,
// where the output objective has no gradient.
import type { Gates, MoE } from "../models/moe.js";
import { noGrad } from "../tensor/autograd.js";
import { stack } from "../tensor/combine.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { Attack, checkBatch, withEvalMode, withModelMode } from "./attack.js";
import { moeOutcome } from "./expert-attack.js";
import { cleanContext, type Forward, type PGDOptions, pgdSearch, type ResolvedPGDOptions, resolvePGDOptions } from "./pgd.js";

export type RouterObjective = "output" | "route";

export interface RouterAttackOptions extends PGDOptions {
  /** 'output': CE of the frozen-expert mixture against y (RA-R); 'route': flip the clean top-1 route. Default 'output'. */
  objective?: RouterObjective;
}

export interface RouterAttackReport {
  n: number;
  /** Accuracy of the MoE on the clean inputs. */
  cleanAccuracy: number;
  /** RA-R: accuracy of the frozen-expert model sum_i a_i(x + d) f_i(x). */
  frozenExpertAccuracy: number;
  /** Accuracy of the real MoE on x + d (experts see the perturbation too). */
  moeAccuracy: number;
  /** Fraction of samples whose top-1 expert at x + d differs from the one at x. */
  routeFlipRate: number;
}

/** sum_j w_j(g) * outputs[:, idx_j(g)]: gates mixing precomputed expert outputs [N, E, K]. */
export function mixOutputs(g: Gates, outputs: Tensor): Tensor {
  return scope(() => {
    const [n, k] = g.indices.shape as [number, number];
    const classes = outputs.size(2);
    const picked = outputs.gather(1, g.indices.unsqueeze(-1).expand(n, k, classes));
    return picked.mul(g.weights.unsqueeze(-1)).sum(1);
  });
}

export class RouterAttack extends Attack<MoE> {
  readonly options: Readonly<ResolvedPGDOptions>;
  readonly objective: RouterObjective;

  constructor(moe: MoE, options: RouterAttackOptions = {}) {
    super(moe);
    this.options = resolvePGDOptions("RouterAttack", options);
    this.objective = options.objective ?? "output";
    if (this.objective !== "output" && this.objective !== "route") {
      throw new TypeError(`RouterAttack: objective must be 'output' or 'route', got '${String(this.objective)}'`);
    }
  }

  get name(): string {
    return `RouterAttack PGD-${this.options.steps} (${this.options.norm}, ${this.objective})`;
  }

  /** Clean logits of every expert on x, [N, E, K], without a graph, in the attack's mode (default eval) as run() does. */
  expertOutputs(x: Tensor): Tensor {
    return withModelMode(this.model, this.mode, () =>
      noGrad(() =>
        scope(() =>
          stack(
            Array.from({ length: this.model.numExperts }, (_, i) => this.model.expertLogits(x, i)),
            1,
          ),
        ),
      ),
    );
  }

  /** The frozen-expert model at x: xa -> sum_i a_i(xa) f_i(x), in the attack's mode (default eval). */
  frozenExperts(x: Tensor): Forward {
    const outputs = this.expertOutputs(x);
    return (xa) =>
      withModelMode(this.model, this.mode, () =>
        scope(() => mixOutputs(this.model.gatesFromLogits(this.model.routerLogits(xa)), outputs)),
      );
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    if (this.objective === "route") {
      const route = noGrad(() => scope(() => this.model.routerLogits(x).argmax(1)));
      const forward: Forward = (xa) => this.model.routerLogits(xa);
      return pgdSearch(forward, x, route, this.options, cleanContext(forward, x, this.options.needsClean)).x;
    }
    const forward = this.frozenExperts(x);
    return pgdSearch(forward, x, y, this.options, cleanContext(forward, x, this.options.needsClean)).x;
  }

  /**
   * RA-R, the real MoE's accuracy and the route-flip rate on adversarial inputs: xAdv when
   * given (e.g. from run()), else a fresh run whose images are freed.
   */
  evaluate(x: Tensor, y: Tensor, xAdv?: Tensor): RouterAttackReport {
    checkBatch(this.name, x, y);
    return scope(() => {
      const adv = xAdv ?? this.run(x, y);
      return withEvalMode(this.model, () =>
        noGrad(() => {
          const frozen = this.frozenExperts(x)(adv).argmax(1).eq(y).double().mean().item();
          const o = moeOutcome(this.model, x, adv, y);
          return {
            n: x.size(0),
            cleanAccuracy: o.clean,
            frozenExpertAccuracy: frozen,
            moeAccuracy: o.moe,
            routeFlipRate: o.flip,
          };
        }),
      );
    });
  }
}
