// Robustness evaluation (METHOD.md section 2; docs/EVAL.md): evaluateRobustness and its
// report, attack names, adversarial examples for inspection.
export {
  ADVERSARIAL_FORMAT_KEY,
  type AdversarialExamples,
  type AdversarialOptions,
  generateAdversarial,
  saveAdversarial,
} from "./adversarial-examples.js";
export type { AdversarialRunner, AdversarialSource, EvalTarget } from "./adversarial-source.js";
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
export type { EvalBatchContext } from "./batch-context.js";
export { type BatchOptions, DEFAULT_EVAL_BATCH, type EvalBatch, type EvalData } from "./batches.js";
export { accuracyInterval, DEFAULT_CONFIDENCE, type Interval } from "./confidence.js";
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
  evaluateRecord,
  evaluateRobustness,
  type RobustnessOptions,
  reportFromRecord,
} from "./evaluate.js";
export { FLAGS_FORMAT, FLAGS_VERSION, type FlagsFile, FlagsFileError, loadRecord, saveRecord } from "./flags-file.js";
export { MergeError, mergeRecords } from "./merge.js";
export type { Metric } from "./metric.js";
export { checkModelFitsData, ModelFitError, type ModelInput, modelInput } from "./model-fit.js";
export { type MoEMember, moeMembers, summarizeModel } from "./model-summary.js";
export {
  DEFAULT_MOE_ATTACKS,
  EXPERT_ATTACK,
  type MoEAttackDefinition,
  type MoEAttackInstance,
  type MoEAttackSettings,
  type Objective,
  ROUTER_ATTACK,
  routerObjective,
} from "./moe-attacks.js";
export { AdversarialOutputError, checkAdversarialOutput } from "./output-check.js";
export type { EvalHeader, EvalRecord, MemberHeader, MoEAttackGroup, ObjectiveHeader, SampleTable } from "./record.js";
export type {
  AttackCurve,
  AttackResult,
  AttackRoutes,
  ClassResult,
  ClassScore,
  DualMemberAttack,
  DualMemberResult,
  DualResult,
  EpsCurves,
  EpsPoint,
  MaskingResult,
  ModelSummary,
  MoEAttackResult,
  MoEAttackRun,
  MoEResult,
  ReportSource,
  RobustnessReport,
  RouteCounts,
  Score,
  ZeroGradientResult,
} from "./report.js";
export { REPORT_SCHEMA, REPORT_VERSION } from "./report.js";
export { alignColumns, formatReportJson, formatReportTable, percent } from "./report-format.js";
export { DEFAULT_EVAL_SEED } from "./seeds.js";
export { formatShard, parseShard, type Shard, ShardError } from "./shard.js";
