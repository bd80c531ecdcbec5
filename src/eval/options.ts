// The options of an evaluation (evaluateRobustness, generateAdversarial) resolved and
// checked into the header of its record: every default is decided here, once, so that
// what ran is written down next to the flags it produced.
import { type Classifier, checkCount, checkEps, type Norm } from "../attacks/attack.js";
import type { MaskingCheckOptions } from "../attacks/masking-checks.js";
import { defaultEps } from "../attacks/pgd.js";
import {
  BatchCertifier,
  CERTIFY_METHODS,
  type CertifierOptions,
  certifyNorm,
  checkCertifyEps,
} from "../certify/batch-certifier.js";
import { ImageDataset } from "../data/dataset.js";
import { Module } from "../nn/module.js";
import { type AttackSpec, DEFAULT_APGD_STEPS, DEFAULT_QUERIES, toAttackSpecs } from "./attack-spec.js";
import { DEFAULT_EVAL_BATCH, type EvalData, sampleCount } from "./batches.js";
import { checkConfidence, DEFAULT_CONFIDENCE } from "./confidence.js";
import { formatEps } from "./eps.js";
import { type MoEMember, moeMembers, summarizeModel } from "./model-summary.js";
import { DEFAULT_MOE_ATTACKS, type MoEAttackDefinition, routerObjective } from "./moe-attacks.js";
import type { CertifyHeader, EvalHeader } from "./record.js";
import type { RunMeans } from "./report-builder.js";
import type { EvalProgress } from "./run-evaluation.js";
import { DEFAULT_EVAL_SEED } from "./seeds.js";
import { checkShard, type Shard } from "./shard.js";

export const DEFAULT_ATTACKS: readonly string[] = ["pgd50"];
/** PGD steps of RA-E and RA-R (METHOD.md: PGD-50 at eps 8/255, step 2/255). */
export const DEFAULT_MOE_STEPS = 50;

export interface RobustnessOptions {
  /** Attack names or specs, in order (see parseAttackSpec). Default ['pgd50']; [] for SA only. */
  attacks?: readonly (string | AttackSpec)[];
  /**
   * The radius of the threat model: RA, worst case, per class, MoE analysis and masking
   * checks are at eps. Default 8/255 (L-inf) or 0.5 (L2).
   */
  eps?: number;
  /**
   * More radii for robust accuracy against eps: every listed attack also runs at each
   * (eps itself is always a point), giving one curve per attack. Default none.
   */
  curveEps?: readonly number[];
  /** Default 'linf'. */
  norm?: Norm;
  /** PGD/APGD restarts (and the restarts of the MoE attacks). Default 1. */
  restarts?: number;
  /** APGD iterations. Default 100. */
  apgdSteps?: number;
  /** Square's queries (square, aa, aa-plus). Default 5000 (AutoAttack's). */
  queries?: number;
  /**
   * The MoE analysis attacks: true runs RA-E and RA-R (DEFAULT_MOE_ATTACKS), false none
   * (expert usage and route flips are reported either way), or the definitions to run.
   * Default true.
   */
  moeAttacks?: boolean | readonly MoEAttackDefinition[];
  /** PGD steps of the MoE attacks (step eps/4). Default 50. */
  moeSteps?: number;
  /** Run checkGradientMasking on the first batch (true, or its options; eps and norm default to the evaluation's). */
  maskingChecks?: boolean | MaskingCheckOptions;
  /**
   * Certified accuracy beside SA and RA: the method (ibp, smoothing, lipschitz; see
   * certify/batch-certifier.ts) and its radii (default: the evaluation's eps and curve radii
   * when the certificate's norm is the evaluation's, else 0.125, 0.25, 0.5, 1 in L2). Default none.
   */
  certify?: CertifySettings | null;
  /** Evaluate only the first n samples. Default all. */
  n?: number;
  /** Batch size when data is a dataset. Default 100. */
  batchSize?: number;
  /** Dataset only: resize every batch to size x size (bilinear, antialiased) before the model; attacks work at that size. */
  resize?: number;
  /**
   * Makes the run reproducible: before each attack on each batch, LibTorch's generator and
   * the attack's own generator are seeded from (seed, attack key, global batch index), so
   * an attack's result depends neither on the other attacks in the list nor on the shard
   * that ran the batch. Default 0; null leaves the global generator alone.
   */
  seed?: number | null;
  /** Evaluate only this shard's batches (1-based; see shard.ts); merge the records with mergeRecords. */
  shard?: Shard | null;
  /** Level of every confidence interval (Clopper-Pearson). Default 0.95. */
  confidence?: number;
  /** Class names (default: the dataset's, else '0', '1', ...). */
  classes?: readonly string[];
  /** Copied into the report's source field. */
  source?: { checkpoint?: string; dataset?: string; split?: string };
  onProgress?: (p: EvalProgress) => void;
}

export interface CertifySettings extends CertifierOptions {
  eps?: readonly number[];
}

/** Default L2 radii of a certificate whose norm differs from the evaluation's (those of rmoe certify). */
export const DEFAULT_L2_CERTIFY_EPS: readonly number[] = [0.125, 0.25, 0.5, 1];

function resolveCertify(
  what: string,
  model: Classifier,
  c: CertifySettings,
  norm: Norm,
  curveEps: readonly number[],
): CertifyHeader {
  if (!(model instanceof Module))
    throw new TypeError(`${what}: certify needs a Module (its layers are bounded one by one), got a plain function`);
  if (!(CERTIFY_METHODS as readonly string[]).includes(c.method))
    throw new RangeError(`${what}: certify method '${String(c.method)}' is not one of ${CERTIFY_METHODS.join(", ")}`);
  const certNorm = certifyNorm(c);
  const eps = [...(c.eps ?? (certNorm === norm ? curveEps : DEFAULT_L2_CERTIFY_EPS))].sort((a, b) => a - b);
  checkCertifyEps(`${what}: certify`, eps);
  const smoothing =
    c.method === "smoothing"
      ? { sigma: c.sigma ?? 0.25, n0: c.n0 ?? 100, samples: c.samples ?? 1000, alpha: c.alpha ?? 0.001 }
      : null;
  if (smoothing !== null) {
    if (!(smoothing.sigma > 0)) throw new RangeError(`${what}: certify sigma must be > 0, got ${smoothing.sigma}`);
    if (!(smoothing.alpha > 0 && smoothing.alpha < 1))
      throw new RangeError(`${what}: certify alpha must be in (0, 1), got ${smoothing.alpha}`);
    checkCount(what, "certify n0", smoothing.n0, 1);
    checkCount(what, "certify samples", smoothing.samples, 1);
  }
  return { method: c.method, norm: certNorm, eps, smoothing };
}

export interface EvaluationPlan {
  header: EvalHeader;
  means: RunMeans;
  members: MoEMember[];
}

/** eps and the curve's radii, checked, without repeats (as formatEps writes them) and ascending; more may repeat eps. */
export function resolveCurveEps(what: string, eps: number, more: readonly number[], norm: Norm): number[] {
  checkEps(what, eps, norm);
  const seen = new Map<string, number>([[formatEps(eps), eps]]);
  for (const e of more) {
    checkEps(what, e, norm);
    if (e === eps) continue;
    const text = formatEps(e);
    if (seen.has(text)) throw new RangeError(`${what}: eps ${text} is listed twice`);
    seen.set(text, e);
  }
  return [...seen.values()].sort((a, b) => a - b);
}

export function planEvaluation(model: Classifier, data: EvalData, options: RobustnessOptions, what: string): EvaluationPlan {
  const norm = options.norm ?? "linf";
  const eps = options.eps ?? defaultEps(norm);
  const curveEps = resolveCurveEps(what, eps, options.curveEps ?? [], norm);
  const specs = toAttackSpecs(options.attacks ?? DEFAULT_ATTACKS);
  const moeSteps = options.moeSteps ?? DEFAULT_MOE_STEPS;
  checkCount(what, "moeSteps", moeSteps, 1);
  const restarts = options.restarts ?? 1;
  checkCount(what, "restarts", restarts, 1);
  const apgdSteps = options.apgdSteps ?? DEFAULT_APGD_STEPS;
  checkCount(what, "apgdSteps", apgdSteps, 1);
  const queries = options.queries ?? DEFAULT_QUERIES;
  checkCount(what, "queries", queries, 1);
  if (options.batchSize !== undefined) checkCount(what, "batchSize", options.batchSize, 1);
  if (options.n !== undefined) checkCount(what, "n", options.n, 1);
  const seed = options.seed === undefined ? DEFAULT_EVAL_SEED : options.seed;
  if (seed !== null) checkCount(what, "seed", seed, 0);
  const shard = options.shard ?? null;
  if (shard !== null) checkShard(what, shard);
  const confidence = options.confidence ?? DEFAULT_CONFIDENCE;
  checkConfidence(what, confidence);
  const definitions =
    options.moeAttacks === undefined || options.moeAttacks === true
      ? DEFAULT_MOE_ATTACKS
      : options.moeAttacks === false
        ? []
        : options.moeAttacks;
  const byId = new Map<string, MoEAttackDefinition>();
  for (const d of definitions) {
    if (byId.has(d.id)) throw new RangeError(`${what}: MoE attack '${d.id}' is listed twice`);
    byId.set(d.id, d);
  }
  const members = moeMembers(model);
  const isDataset = data instanceof ImageDataset;
  const classes = options.classes !== undefined ? [...options.classes] : isDataset ? [...data.classes] : [];
  const src = options.source ?? {};
  const masking: MaskingCheckOptions | null =
    options.maskingChecks === undefined || options.maskingChecks === false
      ? null
      : { eps, norm, ...(options.maskingChecks === true ? {} : options.maskingChecks) };
  const certify = options.certify == null ? null : resolveCertify(what, model, options.certify, norm, curveEps);
  const header: EvalHeader = {
    source: { checkpoint: src.checkpoint ?? null, dataset: src.dataset ?? null, split: src.split ?? null },
    model: summarizeModel(model),
    norm,
    eps,
    curveEps,
    seed,
    attacks: specs.map((s) => s.name),
    settings: {
      restarts,
      apgdSteps,
      queries,
      moeSteps,
      batchSize: isDataset ? (options.batchSize ?? DEFAULT_EVAL_BATCH) : null,
      resize: isDataset ? (options.resize ?? null) : null,
      maskingChecks: masking !== null,
    },
    members: members.map((m) => ({
      member: m.member,
      attackedAlone: m.attackedAlone,
      numExperts: m.moe.numExperts,
      gating: m.moe.gating,
      k: m.moe.k,
      renormalize: m.moe.renormalize,
      routerObjective: routerObjective(m.moe),
      attacks: definitions.filter((d) => d.appliesTo?.(m.moe) ?? true).map((d) => ({ id: d.id, group: d.group })),
    })),
    certify,
    objectives: [],
    classes,
    confidence,
    total: sampleCount(data, options.n) ?? 0,
    shard,
  };
  const certifier =
    certify === null
      ? null
      : new BatchCertifier(model as Module & Classifier, {
          method: certify.method,
          norm: certify.norm,
          ...(certify.smoothing === null
            ? {}
            : {
                sigma: certify.smoothing.sigma,
                n0: certify.smoothing.n0,
                samples: certify.smoothing.samples,
                alpha: certify.smoothing.alpha,
                seed: seed ?? 0,
              }),
        });
  return { header, means: { definitions: byId, masking, certifier }, members };
}
