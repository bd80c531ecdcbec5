// Attack names as the command line and evaluateRobustness take them ('pgd50', 'apgd-ce',
// 'aa', ...), parsed into specs, and the attack object each spec builds for a model.
import { APGD, APGDT } from "../attacks/apgd.js";
import type { Attack, Classifier, Norm } from "../attacks/attack.js";
import { Ensemble } from "../attacks/ensemble.js";
import { FGSM } from "../attacks/fgsm.js";
import { PGD } from "../attacks/pgd.js";
import { Square } from "../attacks/square.js";
import type { Generator } from "../tensor/generator.js";

/** The attacks named by a fixed word. */
export type NamedAttackKind = "fgsm" | "apgd-ce" | "apgd-dlr" | "apgd-t" | "square" | "aa" | "aa-plus" | "aa-rand" | "aa-fast";

/** One attack of an evaluation; `name` is its canonical spelling ('pgd50', 'apgd-ce', ...). */
export type AttackSpec =
  | { readonly kind: NamedAttackKind; readonly name: NamedAttackKind }
  | { readonly kind: "pgd"; readonly name: string; readonly steps: number };

export type AttackKind = AttackSpec["kind"];

/** What each name means, for usage texts and error messages. */
export const ATTACK_NAMES: readonly { readonly name: string; readonly description: string }[] = [
  { name: "fgsm", description: "FGSM, one step of size eps" },
  { name: "pgd<steps>", description: "PGD with that many steps, e.g. pgd10, pgd50 (step eps/4 = 2/255 at 8/255)" },
  { name: "apgd-ce", description: "APGD on cross entropy (--apgd-steps, default 100)" },
  { name: "apgd-dlr", description: "APGD on the DLR loss (needs >= 3 classes)" },
  { name: "apgd-t", description: "targeted APGD-DLR against the top 9 other classes (needs >= 4 classes)" },
  { name: "square", description: "the Square attack as in AutoAttack (--queries, default 5000)" },
  {
    name: "aa",
    description:
      "AutoAttack, standard version: APGD-CE, APGD-T, FAB-T, Square (AutoAttack's settings at the default --apgd-steps and --queries)",
  },
  { name: "aa-plus", description: "AutoAttack's plus version: APGD-CE/DLR x5 restarts, FAB x5, Square, APGD-T, FAB-T" },
  { name: "aa-rand", description: "AutoAttack's rand version (randomised defences): APGD-CE, APGD-DLR with EOT over 20 passes" },
  { name: "aa-fast", description: "a cheaper, weaker suite: APGD-CE, APGD-T, then a 1000-query random search (not Square)" },
];

/** The maximum step count of a 'pgd<steps>' name (a typo guard, not a limit of PGD). */
export const MAX_PGD_STEPS = 100_000;

export class AttackSpecError extends Error {
  override name = "AttackSpecError";
}

function known(): string {
  return ATTACK_NAMES.map((a) => a.name).join(", ");
}

/** Parses one attack name (case and surrounding blanks ignored); throws AttackSpecError naming it. */
export function parseAttackSpec(text: string): AttackSpec {
  const t = text.trim().toLowerCase();
  switch (t) {
    case "fgsm":
    case "apgd-ce":
    case "apgd-dlr":
    case "apgd-t":
    case "square":
    case "aa":
    case "aa-plus":
    case "aa-rand":
    case "aa-fast":
      return { kind: t, name: t };
    default:
      break;
  }
  const m = /^pgd(\d+)$/.exec(t);
  if (m !== null) {
    const steps = Number(m[1]);
    if (steps < 1 || steps > MAX_PGD_STEPS) {
      throw new AttackSpecError(`attack '${text.trim()}': PGD needs between 1 and ${MAX_PGD_STEPS} steps`);
    }
    return { kind: "pgd", name: `pgd${steps}`, steps };
  }
  if (t === "") throw new AttackSpecError(`empty attack name (known: ${known()})`);
  const hint = t === "pgd" ? " (give the steps: pgd10, pgd50)" : t === "apgd" ? " (apgd-ce or apgd-dlr)" : "";
  throw new AttackSpecError(`unknown attack '${text.trim()}'${hint} (known: ${known()})`);
}

/**
 * Parses a comma-separated list such as 'pgd50,apgd-ce,apgd-dlr'. 'none' is the empty list
 * (clean accuracy only). Names may not repeat.
 */
export function parseAttackList(text: string): AttackSpec[] {
  if (text.trim().toLowerCase() === "none") return [];
  const specs = text.split(",").map(parseAttackSpec);
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new AttackSpecError(`attack '${s.name}' is listed twice`);
    seen.add(s.name);
  }
  return specs;
}

/** Accepts specs or names, as evaluateRobustness does. */
export function toAttackSpecs(attacks: readonly (string | AttackSpec)[]): AttackSpec[] {
  const specs = attacks.map((a) => (typeof a === "string" ? parseAttackSpec(a) : a));
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new AttackSpecError(`attack '${s.name}' is listed twice`);
    seen.add(s.name);
  }
  return specs;
}

/** Settings shared by every attack of an evaluation. */
export interface AttackSettings {
  eps: number;
  norm: Norm;
  /** Classes the model predicts (APGD-DLR needs 3, APGD-T 4; 'aa' drops APGD-T below 4). */
  numClasses: number;
  /** PGD and APGD restarts. Default 1. */
  restarts?: number;
  /** APGD iterations (apgd-ce, apgd-dlr, apgd-t, aa). Default 100. */
  apgdSteps?: number;
  /** Square's queries per sample (square, aa, aa-plus). Default 5000. */
  queries?: number;
  /**
   * Where PGD draws its random starts (default: the global generator). The others draw from
   * the global generator, which evaluations seed per attack and batch.
   */
  generator?: Generator;
}

export const DEFAULT_APGD_STEPS = 100;
/** Square's queries (AutoAttack's setting). */
export const DEFAULT_QUERIES = 5000;
/** The random search at the end of 'aa-fast'. */
export const FAST_QUERIES = 1000;
/** APGD-T's targets: the 9 most likely other classes (AutoAttack), fewer when the model has fewer classes. */
export const DEFAULT_TARGETS = 9;

/** The attack a spec names, against model. Throws AttackSpecError when the model cannot support it. */
export function buildAttack(spec: AttackSpec, model: Classifier, s: AttackSettings): Attack {
  const { eps, norm } = s;
  const restarts = s.restarts ?? 1;
  const steps = s.apgdSteps ?? DEFAULT_APGD_STEPS;
  const queries = s.queries ?? DEFAULT_QUERIES;
  const targets = Math.min(DEFAULT_TARGETS, s.numClasses - 1);
  switch (spec.kind) {
    case "fgsm":
      return new FGSM(model, { eps, norm });
    case "pgd":
      return new PGD(model, {
        eps,
        norm,
        steps: spec.steps,
        alpha: eps / 4,
        restarts,
        ...(s.generator === undefined ? {} : { generator: s.generator }),
      });
    case "apgd-ce":
      return new APGD(model, { eps, norm, steps, restarts, loss: "ce" });
    case "apgd-dlr":
      if (s.numClasses < 3)
        throw new AttackSpecError(`attack 'apgd-dlr' needs at least 3 classes, the model has ${s.numClasses}`);
      return new APGD(model, { eps, norm, steps, restarts, loss: "dlr" });
    case "apgd-t":
      if (s.numClasses < 4) throw new AttackSpecError(`attack 'apgd-t' needs at least 4 classes, the model has ${s.numClasses}`);
      return new APGDT(model, { eps, norm, steps, restarts, targets });
    case "square":
      return new Square(model, { eps, norm, queries });
    case "aa":
    case "aa-plus":
    case "aa-rand": {
      const version = spec.kind === "aa" ? "standard" : spec.kind === "aa-plus" ? "plus" : "rand";
      return Ensemble.autoattack(model, { eps, norm, version, steps, queries, classes: s.numClasses });
    }
    case "aa-fast":
      return Ensemble.standard(model, { eps, norm, steps, queries: FAST_QUERIES, targets: s.numClasses >= 4 ? targets : 0 });
  }
}
