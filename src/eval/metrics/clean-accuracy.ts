// SA: accuracy of the evaluated model on the clean inputs (column 'clean').
import type { EvalBatchContext } from "../batch-context.js";
import { type Metric, score } from "../metric.js";
import type { EvalRecord } from "../record.js";
import type { Score } from "../report.js";

/** The label of every sample (written by the batch loop). */
export const LABEL_COLUMN = "label";
/** Per sample: the evaluated model is correct on x. */
export const CLEAN_COLUMN = "clean";

export class CleanAccuracy implements Metric<Score> {
  readonly #record: EvalRecord;

  constructor(record: EvalRecord) {
    this.#record = record;
  }

  update(batch: EvalBatchContext): void {
    this.#record.table.set(CLEAN_COLUMN, batch.row, batch.cleanCorrect);
  }

  result(): Score {
    const t = this.#record.table;
    return score(t.countAll([CLEAN_COLUMN]), t.rows, this.#record.header.confidence);
  }
}
