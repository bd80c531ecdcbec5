// The unit evaluation is built from: a metric measures each batch (update) into the
// evaluation's record and reads its report entry back from the record (result). Metrics
// keep no totals of their own, so the same result() serves a single run, a saved flags
// file and a merge of shards; adding a metric (certified accuracy, a new attack) is a new
// file and one line where the report is assembled (report-builder.ts).
import type { EvalBatchContext } from "./batch-context.js";
import { accuracyInterval } from "./confidence.js";
import type { Score } from "./report.js";

export interface Metric<R> {
  /**
   * Measures one batch: writes this metric's per-sample columns (rows batch.row ..
   * batch.row + batch.size - 1) and timings into batch.record. Adversarial examples come
   * from batch.adversarial(source), which runs each attack once per batch for all metrics.
   */
  update(batch: EvalBatchContext): void;
  /** The metric's report entry: a pure function of the record. */
  result(): R;
}

/** A count out of n with its interval at the given confidence level. */
export function score(correct: number, n: number, level: number): Score {
  return { correct, accuracy: correct / n, interval: accuracyInterval(correct, n, level) };
}
