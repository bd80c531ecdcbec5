// Robust accuracy against eps: one curve per attack, and the per-sample worst case over
// the attacks at each radius, read from the RA columns of every (attack, eps).
import { score } from "../metric.js";
import type { EvalRecord } from "../record.js";
import type { EpsCurves as EpsCurvesResult, EpsPoint } from "../report.js";
import { CLEAN_COLUMN } from "./clean-accuracy.js";
import type { RobustAccuracy } from "./robust-accuracy.js";

export class EpsCurves {
  readonly #record: EvalRecord;
  /** Per attack, its RA at each of the header's radii (ascending). */
  readonly #curves: readonly (readonly RobustAccuracy[])[];

  constructor(record: EvalRecord, curves: readonly (readonly RobustAccuracy[])[]) {
    this.#record = record;
    this.#curves = curves;
  }

  result(): EpsCurvesResult {
    const r = this.#record;
    const eps = r.header.curveEps;
    const worstCase: EpsPoint[] | null =
      this.#curves.length === 0
        ? null
        : eps.map((e, i) => ({
            eps: e,
            ...score(
              r.table.countAll([CLEAN_COLUMN, ...this.#curves.map((c) => (c[i] as RobustAccuracy).column)]),
              r.table.rows,
              r.header.confidence,
            ),
          }));
    return {
      eps: [...eps],
      attacks: this.#curves.map((points) => {
        const results = points.map((p) => p.result());
        return {
          spec: (points[0] as RobustAccuracy).spec,
          attack: results.at(-1)?.attack ?? "",
          points: results.map((a, i) => ({
            eps: eps[i] as number,
            correct: a.correct,
            accuracy: a.accuracy,
            interval: a.interval,
            seconds: a.seconds,
          })),
        };
      }),
      worstCase,
    };
  }
}
