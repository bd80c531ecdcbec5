// Cheap sanity checks for gradient masking (Athalye et al. 2018; Carlini et al. 2019,
// "On Evaluating Adversarial Robustness"): a model whose gradients are zero, shattered or
// misleading looks robust to gradient attacks without being robust. Each check reports a
// value, a flag and a note; a flag means "the gradient-based numbers may overstate
// robustness", never that it does for sure, and no flag proves the absence of masking.
// The step and restart checks compare PAIRED runs: PGD-10, PGD-40 and PGD-10 x3 start
// from generators seeded alike, so PGD-10 is a prefix of PGD-40's trajectory and of
// restart 0, and a deterministic model can never look weaker under more steps or
// restarts; comparing independent random runs flagged honest models by chance.
import { enableGrad, noGrad } from "../tensor/autograd.js";
import { Generator } from "../tensor/generator.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { type Classifier, checkBatch, checkCount, inputGradient, type Norm, withEvalMode } from "./attack.js";
import { FGSM } from "./fgsm.js";
import { ceLoss } from "./losses.js";
import { defaultEps, PGD } from "./pgd.js";
import { RandomSearch } from "./random-search.js";

export type MaskingCheckId =
  | "zero-gradients"
  | "more-steps"
  | "more-restarts"
  | "random-search-beats-gradient"
  | "fgsm-beats-pgd"
  | "unbounded-attack";

export interface MaskingCheck {
  id: MaskingCheckId;
  flagged: boolean;
  /** The measured quantity (see note). */
  value: number;
  /** The value above which the check flags. */
  threshold: number;
  /** Human-readable result. */
  note: string;
  /** Indices of the samples behind the flag, where the check is per sample. */
  samples?: number[];
}

export interface MaskingReport {
  /** True when any check flagged. */
  flagged: boolean;
  checks: MaskingCheck[];
  /** Accuracies measured on the batch, by attack. */
  accuracies: {
    clean: number;
    fgsm: number;
    pgd: number;
    pgdMoreSteps: number;
    pgdRestarts: number;
    randomSearch: number;
    unbounded: number;
  };
  /** One line per check, flagged ones first. */
  notes: string[];
}

export interface MaskingCheckOptions {
  /** Default 8/255 for L-inf, 0.5 for L2. */
  eps?: number;
  /** Default 'linf'. */
  norm?: Norm;
  /** PGD steps of the base run; the "more steps" run uses 4x. Default 10. */
  steps?: number;
  /** Restarts of the "more restarts" run. Default 3. */
  restarts?: number;
  /** Random-search queries. Default 300. */
  queries?: number;
  /**
   * Seeds the random starts (one Generator per PGD run, all seeded alike so the runs are
   * paired) and the random search. Default 0: the checks are reproducible.
   */
  seed?: number;
  /** Fraction of samples with an all-zero input gradient above which to flag. Default 0. */
  zeroGradientTolerance?: number;
  /**
   * Fraction of samples that the shorter (or single-restart) run fooled and the longer (or
   * restarted) paired run did not, tolerated before flagging. Default 0: paired runs of a
   * deterministic model cannot lose a sample.
   */
  monotonicityTolerance?: number;
  /** Accuracy left under an unbounded attack above which to flag. Default 0. */
  unboundedTolerance?: number;
}

function pct(v: number): string {
  return `${(100 * v).toFixed(1)}%`;
}

/** Per-sample success of an attack (bool [N]) and the accuracy it leaves. */
function fooledBy(model: Classifier, attack: { run(x: Tensor, y: Tensor): Tensor }, x: Tensor, y: Tensor): Tensor {
  return scope(() => {
    const adv = attack.run(x, y);
    return noGrad(() => model.forward(adv).argmax(1).ne(y));
  });
}

function indices(mask: Tensor): number[] {
  return scope(() => mask.nonzero().select(1, 0).toFlatArray());
}

function meanOf(mask: Tensor): number {
  return scope(() => mask.double().mean().item());
}

export function checkGradientMasking(model: Classifier, x: Tensor, y: Tensor, options: MaskingCheckOptions = {}): MaskingReport {
  checkBatch("checkGradientMasking", x, y);
  const norm = options.norm ?? "linf";
  const eps = options.eps ?? defaultEps(norm);
  const steps = options.steps ?? 10;
  const restarts = options.restarts ?? 3;
  const queries = options.queries ?? 300;
  const zeroTol = options.zeroGradientTolerance ?? 0;
  const monoTol = options.monotonicityTolerance ?? 0;
  const unboundedTol = options.unboundedTolerance ?? 0;
  const seed = options.seed ?? 0;
  checkCount("checkGradientMasking", "seed", seed, 0);
  // The whole box: L-inf radius 1, L2 radius of the box's diagonal.
  const bigEps = norm === "linf" ? 1 : Math.sqrt(x.numel / Math.max(x.size(0), 1));

  return withEvalMode(model, () =>
    scope(() => {
      const n = x.size(0);
      const wrongClean = noGrad(() => model.forward(x).argmax(1).ne(y));
      const zeroRows = scope(() =>
        enableGrad(() => {
          const xa = x.detach().requiresGrad_();
          const g = inputGradient(ceLoss(model.forward(xa), y), xa);
          return noGrad(() => g.flatten(1).abs().max(1)[0].eq(0));
        }),
      );
      const fgsm = fooledBy(model, new FGSM(model, { eps, norm }), x, y);
      // A fresh generator per run, all from the same seed: the same random start for each.
      const paired = <T>(fn: (generator: Generator) => T): T => {
        const generator = new Generator({ seed });
        try {
          return fn(generator);
        } finally {
          generator.dispose();
        }
      };
      const pgd = paired((generator) => fooledBy(model, new PGD(model, { eps, norm, steps, generator }), x, y));
      const pgdLong = paired((generator) => fooledBy(model, new PGD(model, { eps, norm, steps: 4 * steps, generator }), x, y));
      const pgdRestarts = paired((generator) => fooledBy(model, new PGD(model, { eps, norm, steps, restarts, generator }), x, y));
      const rs = fooledBy(model, new RandomSearch(model, { eps, norm, queries, seed }), x, y);
      const unbounded = paired((generator) =>
        fooledBy(model, new PGD(model, { eps: bigEps, norm, steps, alpha: bigEps / 4, generator }), x, y),
      );
      const gradientAny = noGrad(() => pgd.logicalOr(pgdLong).logicalOr(pgdRestarts).logicalOr(wrongClean));

      const acc = (m: Tensor) => 1 - meanOf(m);
      const accuracies = {
        clean: acc(wrongClean),
        fgsm: acc(noGrad(() => fgsm.logicalOr(wrongClean))),
        pgd: acc(noGrad(() => pgd.logicalOr(wrongClean))),
        pgdMoreSteps: acc(noGrad(() => pgdLong.logicalOr(wrongClean))),
        pgdRestarts: acc(noGrad(() => pgdRestarts.logicalOr(wrongClean))),
        randomSearch: acc(noGrad(() => rs.logicalOr(wrongClean))),
        unbounded: acc(noGrad(() => unbounded.logicalOr(wrongClean))),
      };

      const checks: MaskingCheck[] = [];
      const zeroFrac = meanOf(zeroRows);
      checks.push({
        id: "zero-gradients",
        flagged: zeroFrac > zeroTol,
        value: zeroFrac,
        threshold: zeroTol,
        samples: indices(zeroRows),
        note:
          `${pct(zeroFrac)} of samples have an all-zero input gradient of the CE loss at x` +
          (zeroFrac > zeroTol
            ? " (saturated softmax, non-differentiable or detached layers): gradient attacks cannot move them; try loss 'margin' or 'dlr'"
            : ""),
      });
      // Samples the shorter paired run fooled and the longer one lost: none for a deterministic
      // model (its trajectory extends the shorter one and keeps the strongest iterate).
      const lostSteps = indices(noGrad(() => pgd.logicalAnd(pgdLong.logicalNot())));
      const stepLoss = lostSteps.length / Math.max(n, 1);
      checks.push({
        id: "more-steps",
        flagged: stepLoss > monoTol,
        value: stepLoss,
        threshold: monoTol,
        samples: lostSteps,
        note: `PGD-${steps} leaves ${pct(accuracies.pgd)}, PGD-${4 * steps} (same start) leaves ${pct(accuracies.pgdMoreSteps)}${
          stepLoss > monoTol
            ? `: ${lostSteps.length} samples fooled in the first ${steps} steps were not fooled after ${4 * steps}, so the model's outputs are not a function of its input (randomness), a sign of obfuscated gradients`
            : ""
        }`,
      });
      const lostRestarts = indices(noGrad(() => pgd.logicalAnd(pgdRestarts.logicalNot())));
      const restartLoss = lostRestarts.length / Math.max(n, 1);
      checks.push({
        id: "more-restarts",
        flagged: restartLoss > monoTol,
        value: restartLoss,
        threshold: monoTol,
        samples: lostRestarts,
        note: `PGD-${steps} x${restarts} restarts (restart 0 = the single run) leaves ${pct(accuracies.pgdRestarts)} vs ${pct(accuracies.pgd)} with one${
          restartLoss > monoTol
            ? `: ${lostRestarts.length} samples the single run fooled were not fooled with restarts, so the model's outputs are not a function of its input (randomness), a sign of obfuscated gradients`
            : ""
        }`,
      });
      const rsOnly = noGrad(() => rs.logicalAnd(gradientAny.logicalNot()));
      const rsCount = indices(rsOnly);
      checks.push({
        id: "random-search-beats-gradient",
        flagged: rsCount.length > 0,
        value: rsCount.length,
        threshold: 0,
        samples: rsCount,
        note: `random search (${queries} queries, no gradient) fooled ${rsCount.length} of ${n} samples that every PGD run missed${
          rsCount.length > 0 ? ": the gradient attacks are being misled there" : ""
        }`,
      });
      const fgsmOnly = indices(noGrad(() => fgsm.logicalAnd(gradientAny.logicalNot())));
      checks.push({
        id: "fgsm-beats-pgd",
        flagged: fgsmOnly.length > 0,
        value: fgsmOnly.length,
        threshold: 0,
        samples: fgsmOnly,
        note: `FGSM fooled ${fgsmOnly.length} samples that every PGD run missed${
          fgsmOnly.length > 0 ? ": a single step beating many is typical of a masked (locally flat or noisy) loss" : ""
        }`,
      });
      checks.push({
        id: "unbounded-attack",
        flagged: accuracies.unbounded > unboundedTol,
        value: accuracies.unbounded,
        threshold: unboundedTol,
        note: `PGD with eps ${bigEps.toPrecision(3)} (the whole image box) leaves ${pct(accuracies.unbounded)}${
          accuracies.unbounded > unboundedTol
            ? ": an unbounded attack should reach 0% unless some class wins everywhere in the box; otherwise the gradients are not usable"
            : ""
        }`,
      });
      const flagged = checks.some((c) => c.flagged);
      const notes = [...checks.filter((c) => c.flagged), ...checks.filter((c) => !c.flagged)].map(
        (c) => `${c.flagged ? "FLAG" : "ok  "} ${c.id}: ${c.note}`,
      );
      return { flagged, checks, accuracies, notes };
    }),
  );
}
