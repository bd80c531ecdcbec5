// Gradient masking, measured on every sample: for each objective the evaluation's
// gradient attacks follow (the whole model's CE, and DLR when a DLR attack runs; each MoE
// attack's own objectives), the samples correct on x whose input gradient at x is zero. A
// gradient attack cannot move such a sample beyond its random start, so its RA there
// overstates robustness; any such sample is flagged. Samples already wrong on x need no
// moving and are not counted (DLR, for one, is constant where y ranks third). "Zero" includes rounding noise: a
// gradient that predicts a change of the objective over the whole eps-ball below
// ZERO_GRADIENT_RELATIVE of the objective (at least 1). Such gradients arise where the
// exact gradient is 0 but autograd does not cancel exactly (the renormalised top-1 weight
// p / p has derivative 1/p - p/p^2), and a sign step on them is a random step.
// Columns 'zero-grad:<objective>'.
import { inputGradient, type Norm } from "../../attacks/attack.js";
import { ceLoss, dlrLoss } from "../../attacks/losses.js";
import { enableGrad, noGrad } from "../../tensor/autograd.js";
import { scope } from "../../tensor/scope.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { EvalBatchContext } from "../batch-context.js";
import type { Metric } from "../metric.js";
import type { Objective } from "../moe-attacks.js";
import type { EvalRecord, ObjectiveHeader } from "../record.js";
import type { ZeroGradientResult } from "../report.js";
import { CLEAN_COLUMN } from "./clean-accuracy.js";
import type { MoEAttackMetric } from "./moe-attack.js";

export function zeroGradientColumn(objective: string): string {
  return `zero-grad:${objective}`;
}

/** The first-order change over the eps-ball, relative to max(|objective|, 1), at or below which a gradient counts as zero. */
export const ZERO_GRADIENT_RELATIVE = 1e-6;

/**
 * Per sample: the input gradient g of the objective at x is zero, or so small that the
 * change it predicts over the whole ball, eps * |g|_1 (L-inf) or eps * |g|_2 (L2), is at
 * most ZERO_GRADIENT_RELATIVE * max(|objective|, 1): rounding noise, not a direction.
 */
export function zeroGradientRows(objective: (xa: Tensor) => Tensor, x: Tensor, eps: number, norm: Norm): boolean[] {
  return scope(() =>
    enableGrad(() => {
      const xa = x.detach().requiresGrad_();
      const value = objective(xa);
      const g = inputGradient(value, xa);
      return noGrad(() => {
        const flat = g.double().flatten(1);
        // At eps 0 nothing moves anyway; measure against a unit ball so only exact zeros count.
        const change = (norm === "linf" ? flat.abs().sum(1) : flat.norm(2, 1)).mul(eps > 0 ? eps : 1);
        const floor = value.detach().double().abs().clamp(1, null).mul(ZERO_GRADIENT_RELATIVE);
        return change
          .le(floor)
          .toFlatArray()
          .map((v) => v !== 0);
      });
    }),
  );
}

export interface ModelObjectives {
  /** The whole model's CE (every listed gradient attack but DLR ones). */
  ce: boolean;
  /** The whole model's DLR (apgd-dlr, apgd-t, aa), checked when the model has >= 3 classes. */
  dlr: boolean;
}

export class ZeroGradients implements Metric<ZeroGradientResult[]> {
  readonly #record: EvalRecord;
  readonly #model: ModelObjectives;
  readonly #attacks: readonly MoEAttackMetric[];

  constructor(record: EvalRecord, model: ModelObjectives, attacks: readonly MoEAttackMetric[]) {
    this.#record = record;
    this.#model = model;
    this.#attacks = attacks;
  }

  #objectives(batch: EvalBatchContext): (Objective & { cleanColumn: string })[] {
    const { x, y, target } = batch;
    const out: (Objective & { cleanColumn: string })[] = [];
    if (this.#model.ce) {
      const value = (xa: Tensor) => ceLoss(target.model.forward(xa), y);
      out.push({ id: "model:ce", description: "CE of the evaluated model", value, cleanColumn: CLEAN_COLUMN });
    }
    if (this.#model.dlr && target.numClasses >= 3) {
      const value = (xa: Tensor) => dlrLoss(target.model.forward(xa), y);
      out.push({ id: "model:dlr", description: "DLR of the evaluated model", value, cleanColumn: CLEAN_COLUMN });
    }
    for (const a of this.#attacks) {
      for (const o of batch.instance(a.source).objectives(x, y)) {
        out.push({
          id: `${a.key}:${o.id}`,
          description: `${o.description} (${a.member})`,
          value: o.value,
          cleanColumn: a.column("clean"),
        });
      }
    }
    return out;
  }

  update(batch: EvalBatchContext): void {
    const h = this.#record.header;
    scope(() => {
      const objectives = this.#objectives(batch);
      const ids: ObjectiveHeader[] = objectives.map((o) => ({
        id: o.id,
        description: o.description,
        cleanColumn: o.cleanColumn,
      }));
      if (batch.row === 0) h.objectives = ids;
      else if (ids.map((o) => o.id).join("\n") !== h.objectives.map((o) => o.id).join("\n")) {
        throw new Error("evaluation: the attack objectives changed between batches");
      }
      for (const o of objectives) {
        this.#record.table.set(zeroGradientColumn(o.id), batch.row, zeroGradientRows(o.value, batch.x, h.eps, h.norm));
      }
    });
  }

  result(): ZeroGradientResult[] {
    const r = this.#record;
    const n = r.table.rows;
    return r.header.objectives.map((o) => {
      const count = r.table.countAll([zeroGradientColumn(o.id), o.cleanColumn]);
      return { objective: o.id, description: o.description, count, fraction: count / n, flagged: count > 0 };
    });
  }
}
