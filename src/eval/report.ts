// The result of evaluateRobustness: what `rmoe eval --json` prints, field for field
// (docs/EVAL.md documents every field). Accuracies are fractions in [0, 1]; counts are
// numbers of samples. Changing a field's name or meaning means bumping REPORT_VERSION.
import type { Norm } from "../attacks/attack.js";
import type { MaskingReport } from "../attacks/masking-checks.js";

export const REPORT_SCHEMA = "robust-moe.robustness-report";
export const REPORT_VERSION = 1;

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

/** A count out of n and its fraction. */
export interface Score {
  correct: number;
  accuracy: number;
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

/** A per-class count and its fraction; accuracy is null for a class without samples. */
export interface ClassScore {
  correct: number;
  accuracy: number | null;
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

/** RA-E or RA-R of one MoE (METHOD.md section 2). */
export interface MoEAttackResult {
  /** The attack object's name ('ExpertAttack PGD-50 (linf, ce)'). */
  attack: string;
  /** RA-E (frozen router) or RA-R (frozen experts): accuracy of the modified model on x + d. */
  accuracy: number;
  /** Accuracy of the real MoE (router and experts live) on the same x + d. */
  moeAccuracy: number;
  /** Fraction of samples whose top-1 expert at x + d differs from the one at x. */
  routeFlipRate: number;
  seconds: number;
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
  /** Expert usage: top-1 route counts on the clean inputs (what ExpertUsage counts). */
  usage: RouteCounts;
  /** Top-1 route counts and route-flip rate under each whole-model attack, in attack order. */
  underAttack: AttackRoutes[];
  /** RA-E; null when MoE attacks were turned off. */
  expertAttack: MoEAttackResult | null;
  /** RA-R (its routeFlipRate is the paper's route-flip rate); null when MoE attacks were turned off. */
  routerAttack: MoEAttackResult | null;
}

/** checkGradientMasking on the first batch (notes: flagged first, 'FLAG ...' / 'ok   ...'). */
export interface MaskingResult extends MaskingReport {
  /** Samples in the first batch (the checks' sample indices are positions in it). */
  n: number;
}

export interface RobustnessReport {
  schema: typeof REPORT_SCHEMA;
  version: typeof REPORT_VERSION;
  source: ReportSource;
  model: ModelSummary;
  threatModel: { norm: Norm; eps: number };
  /** The seed the run was made reproducible with, or null when the generator was left alone. */
  seed: number | null;
  /** Samples evaluated. */
  n: number;
  classes: string[];
  /** SA: accuracy on the clean inputs. */
  clean: Score;
  /** RA under each attack, in the order given. A sample counts as robust only when it is also correct clean. */
  attacks: AttackResult[];
  /** Per sample, correct under every attack at once; null when no attack ran. */
  worstCase: (Score & { attacks: string[] }) | null;
  perClass: ClassResult[];
  /** One entry for a MoE, one per MoE member for a dual model, none otherwise. */
  moe: MoEResult[];
  masking: MaskingResult | null;
  /** Wall-clock seconds of the whole evaluation. */
  seconds: number;
}
