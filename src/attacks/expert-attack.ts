// RA-E, the expert attack (METHOD.md section 2): the router is frozen at its clean value,
// and PGD maximises CE(sum_i a_i(x) f_i(x + d), y): the gates are computed once at the
// clean x without a graph, the experts see the perturbed input (MoE.combine with the
// clean gates). It measures how robust the experts are when the route cannot change.
import type { MoE } from "../models/moe.js";
import { noGrad } from "../tensor/autograd.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { Attack, checkBatch, withEvalMode, withModelMode } from "./attack.js";
import { cleanContext, type Forward, type PGDOptions, pgdSearch, type ResolvedPGDOptions, resolvePGDOptions } from "./pgd.js";

export interface ExpertAttackReport {
  n: number;
  /** Accuracy of the MoE on the clean inputs. */
  cleanAccuracy: number;
  /** RA-E: accuracy of the frozen-router model sum_i a_i(x) f_i(x + d). */
  frozenRouterAccuracy: number;
  /** Accuracy of the real MoE (router free) on x + d. */
  moeAccuracy: number;
  /** Fraction of samples whose top-1 expert at x + d differs from the one at x. */
  routeFlipRate: number;
}

/** Accuracy and top-1 route agreement shared by the expert and router reports. */
export function moeOutcome(moe: MoE, x: Tensor, xAdv: Tensor, y: Tensor): { clean: number; moe: number; flip: number } {
  return noGrad(() =>
    scope(() => {
      const mean = (t: Tensor) => t.double().mean().item();
      return {
        clean: mean(moe.forward(x).argmax(1).eq(y)),
        moe: mean(moe.forward(xAdv).argmax(1).eq(y)),
        flip: mean(moe.routerLogits(xAdv).argmax(1).ne(moe.routerLogits(x).argmax(1))),
      };
    }),
  );
}

export class ExpertAttack extends Attack<MoE> {
  readonly options: Readonly<ResolvedPGDOptions>;

  constructor(moe: MoE, options: PGDOptions = {}) {
    super(moe);
    this.options = resolvePGDOptions("ExpertAttack", options);
  }

  get name(): string {
    return `ExpertAttack PGD-${this.options.steps} (${this.options.norm}, ${this.options.lossName})`;
  }

  /** The frozen-router model at x: xa -> sum_i a_i(x) f_i(xa), run in the attack's mode (default eval) as run() does. */
  frozenRouter(x: Tensor): Forward {
    const gates = withModelMode(this.model, this.mode, () => noGrad(() => this.model.gates(x)));
    return (xa) => withModelMode(this.model, this.mode, () => this.model.combine(xa, gates));
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    const forward = this.frozenRouter(x);
    return pgdSearch(forward, x, y, this.options, cleanContext(forward, x, this.options.needsClean)).x;
  }

  /**
   * RA-E and the real MoE's accuracy on adversarial inputs: xAdv when given (e.g. from
   * run()), else a fresh run whose images are freed.
   */
  evaluate(x: Tensor, y: Tensor, xAdv?: Tensor): ExpertAttackReport {
    checkBatch(this.name, x, y);
    return scope(() => {
      const adv = xAdv ?? this.run(x, y);
      return withEvalMode(this.model, () =>
        noGrad(() => {
          const frozen = this.frozenRouter(x)(adv).argmax(1).eq(y).double().mean().item();
          const o = moeOutcome(this.model, x, adv, y);
          return {
            n: x.size(0),
            cleanAccuracy: o.clean,
            frozenRouterAccuracy: frozen,
            moeAccuracy: o.moe,
            routeFlipRate: o.flip,
          };
        }),
      );
    });
  }
}
