// Training (METHOD.md sections 3, 4, 6, 7): methods, the Trainer, configs and presets.
export {
  configJson,
  DEFAULT_CONFIG,
  presetNames,
  presetPath,
  readConfigFile,
  resolveConfig,
  TRAIN_SCHEMA,
  type TrainConfig,
} from "./config.js";
export {
  type BatchLoss,
  ceWithBalance,
  type Level,
  type MethodSettings,
  type MethodSpec,
  type TrainAttack,
  type TrainBatch,
  type TrainingMethod,
  trainAttack,
  trainForward,
} from "./method.js";
export { METHOD_NAMES, METHODS, methodSpec } from "./methods/index.js";
export { rtErLoss } from "./methods/rt-er.js";
export { RUN_FILES, readMetrics, readRunConfig, runPath } from "./run-dir.js";
export { ConfigError } from "./schema.js";
export { buildOptimizer, buildScheduler, buildTrainModel, modelConfig, moeConfig, trainSplits } from "./setup.js";
export { loadTrainState, saveTrainState, type TrainState } from "./train-state.js";
export {
  type StepOptions,
  Trainer,
  type TrainerOptions,
  TrainingDivergedError,
  type TrainSummary,
  trainStep,
} from "./trainer.js";
export { type ValidationResult, validate } from "./validate.js";
