// Who decides in a dual model F_D = (1 - alpha) F_S + alpha F_R: each member alone on x and
// at the dual model's own adversarial points (headline eps), how often the dual model's
// prediction is that member's, how loud the member's logits are (their spread over the
// classes), and, of the samples an attack broke, how many this member alone still had right
// there: on those the other member out-voted it. This is what tells a dual model whose robust
// member is robust but drowned out (its standard member's logits are larger) from one whose
// robust member is itself broken.
// Columns 'dual:<member>:clean', ':agree', ':spread', and per attack ':correct@<key>' and
// ':agree@<key>'. The spread is kept in fixed point (units of SPREAD_UNIT): the table holds
// integers so that flags files and merged shards give bit-identical reports.
import { DualModel } from "../../models/dual.js";
import { noGrad } from "../../tensor/autograd.js";
import { scope } from "../../tensor/scope.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { EvalBatchContext } from "../batch-context.js";
import { type Metric, score } from "../metric.js";
import type { EvalRecord } from "../record.js";
import type { DualMemberResult, DualResult } from "../report.js";
import { CLEAN_COLUMN } from "./clean-accuracy.js";
import type { RobustAccuracy } from "./robust-accuracy.js";

export const DUAL_MEMBERS = ["standard", "robust"] as const;
export type DualMemberName = (typeof DUAL_MEMBERS)[number];

/** The resolution of the stored logit spreads (1e-4 logits: far below any difference that matters). */
export const SPREAD_UNIT = 1e-4;

function column(member: DualMemberName, what: string): string {
  return `dual:${member}:${what}`;
}

/** Per sample at one input: each member's prediction and the dual model's (the mixture of the same outputs). */
interface Predictions {
  standard: number[];
  robust: number[];
  dual: number[];
  /** Per member, per sample: the population std over classes of its logits. */
  spread: Record<DualMemberName, number[]>;
}

function predictionsAt(model: DualModel, x: Tensor): Predictions {
  return noGrad(() =>
    scope(() => {
      const s = model.standard.forward(x);
      const r = model.robust.forward(x);
      return {
        standard: s.argmax(1).toFlatArray(),
        robust: r.argmax(1).toFlatArray(),
        dual: model.mix(s, r).argmax(1).toFlatArray(),
        spread: { standard: s.std(1, { correction: 0 }).toFlatArray(), robust: r.std(1, { correction: 0 }).toFlatArray() },
      };
    }),
  );
}

export class DualMembers implements Metric<DualResult | null> {
  readonly #record: EvalRecord;
  readonly #attacks: readonly RobustAccuracy[];

  /** attacks: the whole-model attacks at the headline eps, at whose points the members are read. */
  constructor(record: EvalRecord, attacks: readonly RobustAccuracy[]) {
    this.#record = record;
    this.#attacks = attacks;
  }

  update(batch: EvalBatchContext): void {
    const model = batch.target.model;
    if (!(model instanceof DualModel)) throw new Error("evaluation: the dual-member analysis needs a DualModel");
    const t = this.#record.table;
    const labels = batch.labels;
    const clean = predictionsAt(model, batch.x);
    for (const m of DUAL_MEMBERS) {
      t.set(
        column(m, "clean"),
        batch.row,
        clean[m].map((p, i) => p === labels[i]),
      );
      t.set(
        column(m, "agree"),
        batch.row,
        clean[m].map((p, i) => p === clean.dual[i]),
      );
      t.set(
        column(m, "spread"),
        batch.row,
        clean.spread[m].map((v) => Math.round(v / SPREAD_UNIT)),
      );
    }
    for (const a of this.#attacks) {
      const adv = predictionsAt(model, batch.adversarial(a.source));
      for (const m of DUAL_MEMBERS) {
        t.set(
          column(m, `correct@${a.key}`),
          batch.row,
          adv[m].map((p, i) => p === labels[i]),
        );
        t.set(
          column(m, `agree@${a.key}`),
          batch.row,
          adv[m].map((p, i) => p === adv.dual[i]),
        );
      }
    }
  }

  /** null for a model that is not a dual model, or a flags file written before this analysis. */
  result(): DualResult | null {
    const r = this.#record;
    const h = r.header;
    const t = r.table;
    if (h.model.kind !== "dual" || h.model.alpha === null || !t.has(column("standard", "clean"))) return null;
    const n = t.rows;
    const alpha = h.model.alpha;
    const fraction = (col: string) => t.countAll([col]) / n;
    const members = DUAL_MEMBERS.map((m): DualMemberResult => {
      const spreads = t.column(column(m, "spread"));
      let sum = 0;
      for (const v of spreads) sum += v * SPREAD_UNIT;
      return {
        member: m,
        weight: m === "standard" ? 1 - alpha : alpha,
        clean: score(t.countAll([column(m, "clean")]), n, h.confidence),
        agreement: fraction(column(m, "agree")),
        logitSpread: sum / n,
        underAttack: this.#attacks.map((a) => {
          const right = t.column(column(m, `correct@${a.key}`));
          const dualClean = t.column(CLEAN_COLUMN);
          const dualRobust = t.column(a.column);
          let broken = 0;
          let outvoted = 0;
          for (let i = 0; i < n; i++) {
            if (dualClean[i] === 0 || dualRobust[i] !== 0) continue;
            broken++;
            if (right[i] !== 0) outvoted++;
          }
          return {
            spec: a.spec,
            correct: score(t.countAll([column(m, "clean"), column(m, `correct@${a.key}`)]), n, h.confidence),
            agreement: fraction(column(m, `agree@${a.key}`)),
            broken,
            outvoted,
          };
        }),
      };
    });
    return { alpha, space: h.model.space ?? "logits", members };
  }
}
