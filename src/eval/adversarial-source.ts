// Where the adversarial examples of an evaluation come from: a source names one attack at
// one radius (its key seeds it, times it and caches its output per batch) and builds the
// attack object once per evaluation, when the model's number of classes is known.
import type { Attack, Classifier, Norm } from "../attacks/attack.js";
import type { Generator } from "../tensor/generator.js";
import type { Tensor } from "../tensor/tensor.js";
import { type AttackSpec, buildAttack } from "./attack-spec.js";
import { formatEps } from "./eps.js";
import type { MoEMember } from "./model-summary.js";

/** The model under evaluation as the attacks see it. */
export interface EvalTarget {
  model: Classifier;
  /** The MoEs whose routing is analysed (the model, or a dual model's MoE members). */
  members: readonly MoEMember[];
  numClasses: number;
}

/** Anything that turns (x, y) into adversarial images the caller owns (every Attack does). */
export interface AdversarialRunner {
  readonly name: string;
  run(x: Tensor, y: Tensor): Tensor;
}

export interface AdversarialSource<G extends AdversarialRunner = AdversarialRunner> {
  /** Unique within an evaluation; seeds (with the run seed and batch index), timings, names and the per-batch cache. */
  readonly key: string;
  /** The progress label ('pgd50', 'RA-E (model)'). */
  readonly stage: string;
  /** The threat model every output is checked against. */
  readonly eps: number;
  readonly norm: Norm;
  /** The attack, once per evaluation; generator is the source's own seeded stream (none when unseeded). */
  build(target: EvalTarget, generator: Generator | undefined): G;
}

/** The key of a whole-model attack at one radius: 'pgd50@8/255'. */
export function attackKey(spec: string, eps: number): string {
  return `${spec}@${formatEps(eps)}`;
}

export interface WholeModelSettings {
  restarts: number;
  apgdSteps: number;
  queries: number;
}

/** A listed attack on the whole model at radius eps (stage: its name, plus the radius when several run). */
export function wholeModelSource(
  spec: AttackSpec,
  eps: number,
  norm: Norm,
  settings: WholeModelSettings,
  showEps: boolean,
): AdversarialSource<Attack> {
  return {
    key: attackKey(spec.name, eps),
    stage: showEps ? `${spec.name} @ ${formatEps(eps)}` : spec.name,
    eps,
    norm,
    build: (t, generator) =>
      buildAttack(spec, t.model, {
        eps,
        norm,
        numClasses: t.numClasses,
        ...settings,
        ...(generator === undefined ? {} : { generator }),
      }),
  };
}
