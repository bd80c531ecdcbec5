// Certified robustness (METHOD.md section 5 and beyond): Lipschitz-margin radii, interval bound
// propagation (with CROWN), randomized smoothing, and the dataset runner behind rmoe certify.

export {
  type BatchCertificates,
  BatchCertifier,
  CERTIFY_METHODS,
  type CertifierOptions,
  certifyNorm,
  checkCertifyEps,
} from "./batch-certifier.js";
export { clopperPearsonInterval, clopperPearsonLower, clopperPearsonUpper } from "./clopper-pearson.js";
export { crownRefiner } from "./crown.js";
export { type IbpCertifyOptions, type IbpCertifyResult, ibpBounds, ibpCertify, ibpClassifierBounds } from "./ibp.js";
export { dualLipschitzRadius, lipschitzRadius } from "./lipschitz-radius.js";
export { normalQuantile } from "./normal.js";
export { type CertifyMethod, type CertifyRunOptions, type CertifyRunResult, certifyDataset } from "./run-certify.js";
export { ABSTAIN, certifiedAccuracy, Smooth, type SmoothCertificate } from "./smoothing.js";
