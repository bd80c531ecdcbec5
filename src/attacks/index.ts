// Adversarial attacks and robustness evaluation (METHOD.md section 2).
export { APGD, type APGDOptions, APGDT, type APGDTOptions, type ApgdConfig, apgdCheckpoints, apgdRun } from "./apgd.js";
export {
  Attack,
  type AttackMode,
  accuracy,
  type Classifier,
  inputGradient,
  type Norm,
  predict,
  withEvalMode,
  withModelMode,
} from "./attack.js";
export { BestIterate, type SearchResult } from "./best-iterate.js";
export {
  Ensemble,
  type EnsembleOptions,
  type EnsembleReport,
  type EnsembleStage,
  type StandardEnsembleOptions,
} from "./ensemble.js";
export { ExpertAttack, type ExpertAttackReport } from "./expert-attack.js";
export {
  FAB,
  FABBase,
  type FABOptions,
  FABT,
  type FABTOptions,
  type MinimalAdversarial,
  projectOntoHyperplaneBox,
} from "./fab.js";
export { FGSM, type FGSMOptions } from "./fgsm.js";
export {
  ceLoss,
  dlrLoss,
  klLoss,
  type LossContext,
  type LossFn,
  type LossName,
  marginLoss,
  resolveLoss,
  targetedDlrLoss,
} from "./losses.js";
export {
  checkGradientMasking,
  type MaskingCheck,
  type MaskingCheckId,
  type MaskingCheckOptions,
  type MaskingReport,
} from "./masking-checks.js";
export {
  type Forward,
  PGD,
  type PGDOptions,
  pgdLastIterate,
  pgdOn,
  pgdSearch,
  type ResolvedPGDOptions,
  resolvePGDOptions,
} from "./pgd.js";
export { ascentDirection, project, projectL2, projectLinf, randomStart, sampleNorm } from "./projections.js";
export { RandomSearch, type RandomSearchOptions } from "./random-search.js";
export { RouteThenExpertAttack, type RouteThenExpertOptions, TargetedRouteAttack } from "./route-attacks.js";
export {
  mixOutputs,
  RouterAttack,
  type RouterAttackOptions,
  type RouterAttackReport,
  type RouterObjective,
} from "./router-attack.js";
export { SQUARE_P_BREAKPOINTS, Square, type SquareOptions, squareEta, squareP, squareWindowSide } from "./square.js";
