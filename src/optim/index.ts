export { Adam, type AdamOptions, type AdamState, AdamW } from "./adam.js";
export { type ClipGradNormOptions, clipGradNorm, clipGradValue } from "./grad-clip.js";
export {
  CosineAnnealingLR,
  type CosineAnnealingLROptions,
  CyclicLR,
  type CyclicLRMode,
  type CyclicLROptions,
  LinearLR,
  type LinearLROptions,
  LRScheduler,
  MultiStepLR,
  type MultiStepLROptions,
  OneCycleLR,
  type OneCycleLROptions,
  type SchedulerStateDict,
  type SchedulerStateValue,
  SequentialLR,
  StepLR,
  type StepLROptions,
  WarmupCosineLR,
  type WarmupCosineLROptions,
} from "./lr-scheduler.js";
export {
  Optimizer,
  type OptimizerOptions,
  type OptimizerStateDict,
  type ParamGroup,
  type ParamGroupInit,
  type ParamState,
} from "./optimizer.js";
export { SGD, type SGDOptions, type SGDState } from "./sgd.js";
