// The result of evaluateRobustness: what `rmoe eval --json` prints, field for field
// (docs/EVAL.md documents every field). Accuracies are fractions in [0, 1]; counts are
// numbers of samples. Changing a field's name or meaning means bumping REPORT_VERSION.
import type { Norm } from "../attacks/attack.js";
import type { MaskingReport } from "../attacks/masking-checks.js";
import type { RouterObjective } from "../attacks/router-attack.js";
import type { Interval } from "./confidence.js";
import type { CertifyHeader } from "./record.js";
import type { Shard } from "./shard.js";

export type { Interval } from "./confidence.js";

export const REPORT_SCHEMA = "robust-moe.robustness-report";
/**
 * 2: RA-E, RA-R and the real-MoE accuracies count a sample only when the model they
 * describe is also correct on the clean x (version 1 counted plain means); intervals,
 * eps curves, zero-gradient flags and shard fields added. Added since without a bump (new
 * fields only, old readers ignore them): certified, dual.
 */
export const REPORT_VERSION = 2;

/** What was evaluated. */
export interface ModelSummary {
  /** 'plain': no MoE at the top level (ResNet18, ViT, any classifier); 'moe'; 'dual': a DualModel. */
  kind: "plain" | "moe" | "dual";
  /** Class name of the model (e.g. 'ResNet18', 'MoE', 'DualModel'). */
  type: string;
  /** Dual model only: the mixing weight used (F_D = (1 - alpha) F_S + alpha F_R), else null. */
  alpha: number | null;
  /** Dual model only: 'logits' or 'probs', else null. */
  space: "logits" | "probs" | null;
  /** Dual model only: class names of the standard and robust members, else null. */
  members: { standard: string; robust: string } | null;
}

/** Where the data and model came from (filled in by the command line; null from the library unless given). */
export interface ReportSource {
  checkpoint: string | null;
  dataset: string | null;
  split: string | null;
}

/** A count out of n, its fraction and the report's confidence interval on it (Clopper-Pearson). */
export interface Score {
  correct: number;
  accuracy: number;
  interval: Interval;
}

/** RA under one attack of the whole model (a dual model end to end). */
export interface AttackResult extends Score {
  /** The canonical attack name ('pgd50', 'apgd-ce', ...). */
  spec: string;
  /** The attack object's own name, with its settings ('PGD-50 (linf, ce)'). */
  attack: string;
  /** Wall-clock seconds spent in this attack over all batches. */
  seconds: number;
}

/** A per-class count and its fraction; accuracy and interval are null for a class without samples. */
export interface ClassScore {
  correct: number;
  accuracy: number | null;
  interval: Interval | null;
}

/** Per class: how many samples, and how many were right clean and under the worst case. */
export interface ClassResult {
  index: number;
  name: string;
  n: number;
  clean: ClassScore;
  /** Correct under every attack at once (null when no attack ran). */
  robust: ClassScore | null;
}

/** Top-1 routes of a MoE on one set of inputs. */
export interface RouteCounts {
  /** Samples whose top-1 expert is i (sums to n). */
  counts: number[];
}

/** Routes of a MoE under one whole-model attack. */
export interface AttackRoutes extends RouteCounts {
  spec: string;
  /** Fraction of samples whose top-1 expert at the adversarial input differs from the one at x. */
  routeFlipRate: number;
}

/** One attack of a MoE analysis (one MoEAttackDefinition run on one MoE). */
export interface MoEAttackRun {
  /** The definition's id ('ra-e', 'ra-r', ...). */
  id: string;
  /** The attack object's name. */
  attack: string;
  /** Samples robust under this run alone (AND-ed with clean-correct, as accuracy). */
  correct: number;
  seconds: number;
}

/**
 * RA-E, RA-R (or an adaptive attack) of one MoE (METHOD.md section 2): the per-sample worst
 * case over the runs of its group (one run each today). Every accuracy counts a sample only
 * when the model it describes is also correct on the clean x, as RA does.
 */
export interface MoEAttackResult {
  /** The attack objects' names ('ExpertAttack PGD-50 (linf, ce)'), '; '-separated. */
  attack: string;
  /** RA-E (frozen router) or RA-R (frozen experts): accuracy of the modified model on x + d. */
  accuracy: number;
  /** Accuracy of the real MoE (router and experts live) on the same x + d. */
  moeAccuracy: number;
  /** Fraction of samples whose top-1 expert at x + d differs from the one at x (at any run's point). */
  routeFlipRate: number;
  seconds: number;
  /** Count behind accuracy and its interval. */
  correct: number;
  interval: Interval;
  /** Count behind moeAccuracy and its interval. */
  moeCorrect: number;
  moeInterval: Interval;
  /** Count behind routeFlipRate. */
  routeFlips: number;
  runs: MoEAttackRun[];
}

/** The MoE analysis of the model itself ('model') or of one member of a dual model. */
export interface MoEResult {
  /** 'model': the evaluated model is the MoE; 'standard' / 'robust': that member of a dual model. */
  member: "model" | "standard" | "robust";
  /**
   * True for a dual-model member: RA-E and RA-R attack that member alone (not the dual
   * model), and its cleanAccuracy is the member's own. The route counts under attack are
   * the member's routes at the dual model's adversarial inputs.
   */
  attackedAlone: boolean;
  numExperts: number;
  gating: "topk" | "dense" | "hard";
  k: number;
  /** Accuracy of this MoE on its own on the clean inputs. */
  cleanAccuracy: number;
  /** The same with its count and interval. */
  clean: Score;
  /**
   * The objective of RA-R: 'route' when the gate weights cannot change with x (hard gating,
   * or top-1 renormalised gating, whose weight is always 1), else 'output'.
   */
  routerObjective: RouterObjective;
  /** Expert usage: top-1 route counts on the clean inputs (what ExpertUsage counts). */
  usage: RouteCounts;
  /** Top-1 route counts and route-flip rate under each whole-model attack, in attack order. */
  underAttack: AttackRoutes[];
  /** RA-E; null when MoE attacks were turned off. */
  expertAttack: MoEAttackResult | null;
  /** RA-R (its routeFlipRate is the paper's route-flip rate); null when MoE attacks were turned off. */
  routerAttack: MoEAttackResult | null;
  /**
   * Adaptive attacks on the real MoE (MoEAttackDefinitions of group 'model'); for the
   * evaluated model itself they also enter the worst case. null when none ran.
   */
  adaptiveAttack: MoEAttackResult | null;
}

/** Robust accuracy at one radius. */
export interface EpsPoint extends Score {
  eps: number;
}

/** One attack's robust accuracy against eps. */
export interface AttackCurve {
  spec: string;
  attack: string;
  points: (EpsPoint & { seconds: number })[];
}

/** Robust accuracy against eps (--eps 2/255,4/255,8/255): one curve per attack. */
export interface EpsCurves {
  /** The radii, ascending; threatModel.eps is one of them. */
  eps: number[];
  attacks: AttackCurve[];
  /** Per sample, robust under every listed attack at that eps; null when no attack ran. */
  worstCase: EpsPoint[] | null;
}

/** Samples whose input gradient of one attack objective is all zero at the clean x. */
export interface ZeroGradientResult {
  /** 'model:ce', 'model:dlr', 'ra-e:model:ce', 'ra-r:model:route', ... */
  objective: string;
  description: string;
  count: number;
  fraction: number;
  /** True when any sample has one: gradient attacks cannot move it (gradient masking). */
  flagged: boolean;
}

/** checkGradientMasking on the first batch (notes: flagged first, 'FLAG ...' / 'ok   ...'). */
export interface MaskingResult extends MaskingReport {
  /** Samples in the first batch (the checks' sample indices are positions in it). */
  n: number;
}

/** Certified accuracy at one radius (a certified sample is also correct on x). */
export interface CertifiedPoint extends Score {
  eps: number;
  /**
   * Certified samples that an attack of the same evaluation broke at this radius: always
   * empty for a sound certificate (a non-empty list is a bug report, with sample indices).
   */
  brokenByAttacks: { attack: string; samples: number[] }[];
}

/** `--certify`: the certificate, its settings, and certified accuracy per radius. */
export interface CertifiedResult extends CertifyHeader {
  points: CertifiedPoint[];
  seconds: number;
}

/** One member of a dual model under one whole-model attack (at the dual model's adversarial points). */
export interface DualMemberAttack {
  spec: string;
  /** The member alone correct on x and at the dual model's adversarial point (its RA there, not under its own attack). */
  correct: Score;
  /** Fraction of samples whose dual-model prediction at the adversarial point is this member's. */
  agreement: number;
  /** Samples the attack broke: the dual model correct on x and wrong at its point. */
  broken: number;
  /** Of those, the ones this member alone still classifies correctly at that point: the other member out-voted it. */
  outvoted: number;
}

/** What one member of a dual model contributes to the dual model's decisions. */
export interface DualMemberResult {
  member: "standard" | "robust";
  /** Its mixing weight: 1 - alpha for the standard member, alpha for the robust one. */
  weight: number;
  /** The member alone on the clean inputs. */
  clean: Score;
  /** Fraction of samples whose clean dual-model prediction is this member's. */
  agreement: number;
  /**
   * Mean over samples of the standard deviation over classes of the member's logits on x
   * (unweighted): with logits mixing, weight * logitSpread is how hard it pulls on the mixture.
   */
  logitSpread: number;
  /** At each whole-model attack's points (headline eps), in attack order. */
  underAttack: DualMemberAttack[];
}

/** Who decides in a dual model: each member alone, at the dual model's clean and adversarial inputs. */
export interface DualResult {
  alpha: number;
  space: "logits" | "probs";
  /** The standard member, then the robust one. */
  members: DualMemberResult[];
}

export interface RobustnessReport {
  schema: typeof REPORT_SCHEMA;
  version: typeof REPORT_VERSION;
  source: ReportSource;
  model: ModelSummary;
  threatModel: { norm: Norm; eps: number };
  /** The seed the run was made reproducible with (default 0), or null when the generator was left alone. */
  seed: number | null;
  /** Samples evaluated (in this shard, for a shard's own report). */
  n: number;
  /** The shard this report covers (1-based), or null for a whole evaluation (one run or a merge). */
  shard: (Shard & { total: number }) | null;
  /** Level and method of every interval in the report. */
  confidence: { level: number; method: "clopper-pearson" };
  classes: string[];
  /** SA: accuracy on the clean inputs. */
  clean: Score;
  /** RA under each attack, in the order given. A sample counts as robust only when it is also correct clean. */
  attacks: AttackResult[];
  /** Per sample, correct under every attack at once; null when no attack ran. */
  worstCase: (Score & { attacks: string[] }) | null;
  perClass: ClassResult[];
  /** Robust accuracy against eps, one curve per attack (one point when a single eps ran). */
  curves: EpsCurves;
  /** One entry for a MoE, one per MoE member for a dual model, none otherwise. */
  moe: MoEResult[];
  /** All-zero input gradients of every objective the attacks follow, over all samples. */
  zeroGradients: ZeroGradientResult[];
  masking: MaskingResult | null;
  /** Certified accuracy per radius (`--certify`), or null. */
  certified: CertifiedResult | null;
  /** A dual model's members (null for any other model, or a flags file written before this field). */
  dual: DualResult | null;
  /** Wall-clock seconds of the whole evaluation. */
  seconds: number;
}
