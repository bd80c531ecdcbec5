// Robustness evaluation (METHOD.md section 2; docs/EVAL.md): evaluateRobustness and its
// report, attack names, adversarial examples for inspection.
export {
  ADVERSARIAL_FORMAT_KEY,
  type AdversarialExamples,
  type AdversarialOptions,
  generateAdversarial,
  saveAdversarial,
} from "./adversarial-examples.js";
export {
  ATTACK_NAMES,
  type AttackKind,
  type AttackSettings,
  type AttackSpec,
  AttackSpecError,
  buildAttack,
  DEFAULT_APGD_STEPS,
  DEFAULT_QUERIES,
  MAX_PGD_STEPS,
  type NamedAttackKind,
  parseAttackList,
  parseAttackSpec,
  toAttackSpecs,
} from "./attack-spec.js";
export { type BatchOptions, DEFAULT_EVAL_BATCH, type EvalBatch, type EvalData } from "./batches.js";
export {
  checkSplit,
  DatasetError,
  defaultSplit,
  EVAL_DATASETS,
  type EvalDatasetName,
  isEvalDataset,
  loadEvalDataset,
} from "./datasets.js";
export { EpsError, formatEps, parseEps } from "./eps.js";
export {
  DEFAULT_ATTACKS,
  DEFAULT_MOE_STEPS,
  deriveSeed,
  type EvalProgress,
  evaluateRobustness,
  type RobustnessOptions,
} from "./evaluate.js";
export { checkModelFitsData, ModelFitError, type ModelInput, modelInput } from "./model-fit.js";
export { type MoEMember, moeMembers, summarizeModel } from "./model-summary.js";
export type {
  AttackResult,
  AttackRoutes,
  ClassResult,
  ClassScore,
  MaskingResult,
  ModelSummary,
  MoEAttackResult,
  MoEResult,
  ReportSource,
  RobustnessReport,
  RouteCounts,
  Score,
} from "./report.js";
export { REPORT_SCHEMA, REPORT_VERSION } from "./report.js";
export { alignColumns, formatReportJson, formatReportTable, percent } from "./report-format.js";
