// evaluateRobustness (METHOD.md section 2; docs/EVAL.md): plan the evaluation from its
// options, run the metrics over the data in one batch loop, and read the report off the
// record they filled. The record is also what `--save-flags` writes and what shards merge.
import type { Classifier } from "../attacks/attack.js";
import type { EvalData } from "./batches.js";
import { planEvaluation, type RobustnessOptions } from "./options.js";
import { type EvalRecord, newRecord } from "./record.js";
import type { RobustnessReport } from "./report.js";
import { buildMetrics, reportOf } from "./report-builder.js";
import { runEvaluation } from "./run-evaluation.js";

export { DEFAULT_ATTACKS, DEFAULT_MOE_STEPS, type RobustnessOptions } from "./options.js";
export type { EvalProgress } from "./run-evaluation.js";
export { deriveSeed } from "./seeds.js";

/**
 * Runs the evaluation and returns its record: the header of what ran and every
 * per-sample flag (reportFromRecord turns it into the report; saveRecord writes it).
 */
export function evaluateRecord(model: Classifier, data: EvalData, options: RobustnessOptions = {}): EvalRecord {
  const what = "evaluateRobustness";
  const plan = planEvaluation(model, data, options, what);
  const record = newRecord(plan.header);
  const metrics = buildMetrics(record, plan.means);
  const moeStages = metrics.members.reduce((s, m) => s + m.attacks.length, 0);
  try {
    runEvaluation(model, data, record, metrics.measured, {
      what,
      ...(options.n === undefined ? {} : { n: options.n }),
      ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
      ...(options.resize === undefined ? {} : { resize: options.resize }),
      members: plan.members,
      stages: metrics.curves.flat().length + moeStages,
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    });
  } finally {
    plan.means.certifier?.dispose();
  }
  return record;
}

/** The report of a record (of one run, one shard, or merged shards). */
export function reportFromRecord(record: EvalRecord): RobustnessReport {
  return reportOf(record);
}

/**
 * Evaluates model on data (a dataset, or (x, y) batches) and returns the report that
 * `rmoe eval` prints. Synchronous; the model runs in eval mode and its modes are restored
 * afterwards. Reproducible by default (seed 0).
 */
export function evaluateRobustness(model: Classifier, data: EvalData, options: RobustnessOptions = {}): RobustnessReport {
  return reportOf(evaluateRecord(model, data, options));
}
