// The attacks of a MoE analysis (METHOD.md section 2) as definitions the evaluation runs on
// every analysed MoE: RA-E (the router frozen at the clean x), RA-R (the experts frozen at
// their clean outputs), and whatever comes next (targeted route attacks join group
// 'router', so RA-R becomes the per-sample worst over them; an adaptive attack on the real
// MoE joins group 'model' and enters the model's worst case). A definition says how to
// attack, which model its accuracy describes, and which objectives it differentiates.
import type { Norm } from "../attacks/attack.js";
import { ExpertAttack } from "../attacks/expert-attack.js";
import { ceLoss, maxOtherLogit, trueLogit } from "../attacks/losses.js";
import type { Forward } from "../attacks/pgd.js";
import { RouteThenExpertAttack, TargetedRouteAttack } from "../attacks/route-attacks.js";
import { RouterAttack, type RouterObjective } from "../attacks/router-attack.js";
import type { MoE } from "../models/moe.js";
import { noGrad } from "../tensor/autograd.js";
import { stack } from "../tensor/combine.js";
import type { Generator } from "../tensor/generator.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import type { AdversarialRunner } from "./adversarial-source.js";
import type { MoEAttackGroup } from "./record.js";

/** A per-sample objective [N] an attack maximises, as a function of the (perturbed) input. */
export interface Objective {
  /** Short and unique within its attack ('ce', 'route', 'output'). */
  id: string;
  description: string;
  value(xa: Tensor): Tensor;
}

export interface MoEAttackSettings {
  eps: number;
  norm: Norm;
  /** PGD steps (step eps / 4). */
  steps: number;
  restarts: number;
  /** The attack's own seeded stream (undefined: the global generator). */
  generator: Generator | undefined;
}

/** One MoE attack, built for one MoE. */
export interface MoEAttackInstance extends AdversarialRunner {
  /**
   * The model whose accuracy the attack reports, fixed at the clean x and applied to an
   * input xa (the frozen-router mixture for RA-E, the frozen-expert mixture for RA-R, the
   * MoE itself for an adaptive attack). Its accuracy at x + d is AND-ed with its own
   * accuracy at x.
   */
  describedModel(x: Tensor): Forward;
  /** The objectives the attack differentiates, at the clean x, for the zero-gradient check. */
  objectives(x: Tensor, y: Tensor): Objective[];
}

export interface MoEAttackDefinition {
  /** Unique, short: it names the report entry, the seeds and the flag columns ('ra-e'). */
  readonly id: string;
  readonly group: MoEAttackGroup;
  /** Progress label ('RA-E'). */
  readonly title: string;
  /** Whether the attack is defined for this MoE (e.g. top-1 and hard routing only); default: every MoE. */
  appliesTo?(moe: MoE): boolean;
  build(moe: MoE, settings: MoEAttackSettings): MoEAttackInstance;
}

/**
 * RA-R's objective. When the gate weights cannot change with x (hard gating, or top-1
 * renormalised gating, whose single weight is always 1), the frozen-expert output is
 * piecewise constant in x and its gradient is zero: push the route instead ('route', CE
 * of the router logits against the clean top-1 expert). Otherwise ('output') maximise the
 * CE of the frozen-expert mixture, which moves through the weights.
 */
export function routerObjective(moe: MoE): RouterObjective {
  const weightsFixed = moe.gating === "hard" || (moe.gating === "topk" && moe.k === 1 && moe.renormalize);
  return weightsFixed ? "route" : "output";
}

function pgdOptions(s: MoEAttackSettings) {
  return {
    eps: s.eps,
    norm: s.norm,
    steps: s.steps,
    alpha: s.eps / 4,
    restarts: s.restarts,
    ...(s.generator === undefined ? {} : { generator: s.generator }),
  };
}

/** RA-E: PGD on CE(sum_i a_i(x) f_i(x + d), y), the router frozen at the clean x. */
export const EXPERT_ATTACK: MoEAttackDefinition = {
  id: "ra-e",
  group: "expert",
  title: "RA-E",
  build(moe, settings) {
    const attack = new ExpertAttack(moe, pgdOptions(settings));
    return {
      name: attack.name,
      run: (x, y) => attack.run(x, y),
      describedModel: (x) => attack.frozenRouter(x),
      objectives: (x, y) => {
        const f = attack.frozenRouter(x);
        return [{ id: "ce", description: "RA-E objective: CE of the frozen-router mixture", value: (xa) => ceLoss(f(xa), y) }];
      },
    };
  },
};

/** RA-R: PGD through the router, the experts frozen at their clean outputs (objective by routerObjective). */
export const ROUTER_ATTACK: MoEAttackDefinition = {
  id: "ra-r",
  group: "router",
  title: "RA-R",
  build(moe, settings) {
    const objective = routerObjective(moe);
    const attack = new RouterAttack(moe, { ...pgdOptions(settings), objective });
    return {
      name: attack.name,
      run: (x, y) => attack.run(x, y),
      describedModel: (x) => attack.frozenExperts(x),
      objectives: (x, y) => {
        if (objective === "route") {
          const route = noGrad(() => scope(() => moe.routerLogits(x).argmax(1)));
          return [
            {
              id: "route",
              description: "RA-R objective 'route': CE of the router logits against the clean top-1 expert",
              value: (xa) => ceLoss(moe.routerLogits(xa), route),
            },
          ];
        }
        const f = attack.frozenExperts(x);
        return [
          {
            id: "output",
            description: "RA-R objective 'output': CE of the frozen-expert mixture",
            value: (xa) => ceLoss(f(xa), y),
          },
        ];
      },
    };
  },
};

/** Top-1 and hard routing: one expert answers per sample (where the route attacks apply). */
function singleRoute(moe: MoE): boolean {
  return moe.k === 1 && moe.gating !== "dense";
}

/**
 * RA-R's worst case for top-1 and hard routing: route each sample to an expert that is wrong
 * on it when clean (group 'router': RA-R becomes the per-sample worst over this and ra-r).
 */
export const TARGETED_ROUTE_ATTACK: MoEAttackDefinition = {
  id: "ra-r-targeted",
  group: "router",
  title: "RA-R (targeted routes)",
  appliesTo: singleRoute,
  build(moe, settings) {
    const attack = new TargetedRouteAttack(moe, pgdOptions(settings));
    const frozen = new RouterAttack(moe, pgdOptions(settings));
    return {
      name: attack.name,
      run: (x, y) => attack.run(x, y),
      describedModel: (x) => frozen.frozenExperts(x),
      objectives: (x) => {
        // The margin towards the runner-up route: what a targeted run starts by climbing.
        const second = noGrad(() => scope(() => moe.routerLogits(x).topk(2, 1)[1].select(1, 1)));
        return [
          {
            id: "route-margin",
            description: "targeted route objective: margin of the router logits towards the runner-up expert",
            value: (xa) => scope(() => trueLogit(moe.routerLogits(xa), second).sub(maxOtherLogit(moe.routerLogits(xa), second))),
          },
        ];
      },
    };
  },
};

/**
 * The adaptive attack on the real MoE (group 'model': it enters the MoE's worst-case RA): for
 * each expert, keep the route on it while maximising its CE.
 */
export const ROUTE_THEN_EXPERT_ATTACK: MoEAttackDefinition = {
  id: "route-then-expert",
  group: "model",
  title: "route-then-expert",
  appliesTo: singleRoute,
  build(moe, settings) {
    const attack = new RouteThenExpertAttack(moe, pgdOptions(settings));
    return {
      name: attack.name,
      run: (x, y) => attack.run(x, y),
      describedModel: () => (xa) => moe.forward(xa),
      objectives: (x, y) => {
        const route = noGrad(() => scope(() => moe.routerLogits(x).argmax(1)));
        return [
          {
            id: "routed-expert-ce",
            description: "route-then-expert objective: CE of the expert each sample is routed to at x",
            value: (xa: Tensor) =>
              scope(() => {
                const all = stack(
                  Array.from({ length: moe.numExperts }, (_, j) => moe.expertLogits(xa, j)),
                  1,
                );
                const k = all.size(2);
                const routed = all.gather(1, route.view(-1, 1, 1).expand(route.size(0), 1, k)).squeeze(1);
                return ceLoss(routed, y);
              }),
          },
        ];
      },
    };
  },
};

/** What `moeAttacks: true` runs on every analysed MoE (each where it applies). */
export const DEFAULT_MOE_ATTACKS: readonly MoEAttackDefinition[] = [
  EXPERT_ATTACK,
  ROUTER_ATTACK,
  TARGETED_ROUTE_ATTACK,
  ROUTE_THEN_EXPERT_ATTACK,
];
