// Cheap sanity checks for gradient masking (Athalye et al. 2018; Carlini et al. 2019,
// "On Evaluating Adversarial Robustness"): a model whose gradients are zero, shattered or
// misleading looks robust to gradient attacks without being robust. Each check reports a
// value, a flag and a note; a flag means "the gradient-based numbers may overstate
// robustness", never that it does for sure, and no flag proves the absence of masking.
import { enableGrad, noGrad } from "../tensor/autograd.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { type Classifier, checkBatch, inputGradient, type Norm, withEvalMode } from "./attack.js";
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
  /** Fraction of samples with an all-zero input gradient above which to flag. Default 0. */
  zeroGradientTolerance?: number;
  /** Accuracy increase (as a fraction) tolerated when adding steps or restarts. Default 0. */
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
      const pgd = fooledBy(model, new PGD(model, { eps, norm, steps }), x, y);
      const pgdLong = fooledBy(model, new PGD(model, { eps, norm, steps: 4 * steps }), x, y);
      const pgdRestarts = fooledBy(model, new PGD(model, { eps, norm, steps, restarts }), x, y);
      const rs = fooledBy(model, new RandomSearch(model, { eps, norm, queries }), x, y);
      const unbounded = fooledBy(model, new PGD(model, { eps: bigEps, norm, steps, alpha: bigEps / 4 }), x, y);
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
      const stepGain = accuracies.pgdMoreSteps - accuracies.pgd;
      checks.push({
        id: "more-steps",
        flagged: stepGain > monoTol,
        value: stepGain,
        threshold: monoTol,
        note: `PGD-${steps} leaves ${pct(accuracies.pgd)}, PGD-${4 * steps} leaves ${pct(accuracies.pgdMoreSteps)}${
          stepGain > monoTol ? ": more steps made the attack weaker, a sign of a noisy or misleading loss surface" : ""
        }`,
      });
      const restartGain = accuracies.pgdRestarts - accuracies.pgd;
      checks.push({
        id: "more-restarts",
        flagged: restartGain > monoTol,
        value: restartGain,
        threshold: monoTol,
        note: `PGD-${steps} x${restarts} restarts leaves ${pct(accuracies.pgdRestarts)} vs ${pct(accuracies.pgd)} with one${
          restartGain > monoTol
            ? ": restarts made the attack weaker, which the strongest-iterate rule should exclude up to randomness"
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
