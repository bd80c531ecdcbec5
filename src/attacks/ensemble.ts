// AutoAttack-style worst case over several attacks: the attacks run in sequence, each on
// the samples that every earlier attack left correctly classified, and each sample keeps
// the point that fools the model (else the one with the highest cross entropy). Robust
// accuracy after each attack is reported as it goes.
import { performance } from "node:perf_hooks";
import { noGrad } from "../tensor/autograd.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { APGD, APGDT } from "./apgd.js";
import { Attack, type Classifier, type Norm } from "./attack.js";
import { BestIterate, rowsWhere } from "./best-iterate.js";
import { FAB, FABT } from "./fab.js";
import { ceLoss } from "./losses.js";
import { RandomSearch } from "./random-search.js";
import { Square } from "./square.js";

export interface EnsembleStage {
  /** The attack's name. */
  attack: string;
  /** Samples it was run on (those still robust before it). */
  attacked: number;
  /** Of those, the samples it fooled. */
  fooled: number;
  /** Robust accuracy over the whole batch after this attack. */
  robustAccuracy: number;
  seconds: number;
}

export interface EnsembleReport {
  n: number;
  cleanAccuracy: number;
  /** Robust accuracy after every attack: the worst case per sample. */
  robustAccuracy: number;
  stages: EnsembleStage[];
}

export interface EnsembleOptions {
  /** Called after each attack (e.g. to log progress). */
  onStage?: (stage: EnsembleStage) => void;
}

export interface StandardEnsembleOptions {
  /** Default 8/255 for L-inf, 0.5 for L2. */
  eps?: number;
  /** Default 'linf'. */
  norm?: Norm;
  /** APGD iterations. Default 100. */
  steps?: number;
  /** APGD-T target classes; 0 leaves APGD-T out (models with fewer than 4 classes). Default 9. */
  targets?: number;
  /** Random-search queries; 0 leaves it out. Default 1000. */
  queries?: number;
  onStage?: (stage: EnsembleStage) => void;
}

/** AutoAttack's versions (Croce & Hein 2020, autoattack.py set_version). */
export type AutoAttackVersion = "standard" | "plus" | "rand";

export interface AutoAttackOptions {
  /** Default 8/255 for L-inf, 0.5 for L2. */
  eps?: number;
  /** Default 'linf'. */
  norm?: Norm;
  /** Default 'standard'. */
  version?: AutoAttackVersion;
  /** The seed every attack starts from (AutoAttack's own default is 0). */
  seed?: number;
  /** The model's class count, when known: below 4 the targeted attacks (APGD-T, FAB-T) are left out. */
  classes?: number;
  /** APGD and FAB iterations (AutoAttack: 100). Change it only for smoke runs: the result is then not AutoAttack's. */
  steps?: number;
  /** Square's queries (AutoAttack: 5000), likewise. */
  queries?: number;
  onStage?: (stage: EnsembleStage) => void;
}

export class Ensemble<M extends Classifier = Classifier> extends Attack<M> {
  readonly attacks: readonly Attack[];
  readonly onStage: ((stage: EnsembleStage) => void) | undefined;
  /** The report of the latest run(). */
  lastReport: EnsembleReport | null = null;

  /** Attacks may target another model (transfer); success is always judged on this model. */
  constructor(model: M, attacks: readonly Attack[], options: EnsembleOptions = {}) {
    super(model);
    if (attacks.length === 0) throw new TypeError("Ensemble: needs at least one attack");
    this.attacks = [...attacks];
    this.onStage = options.onStage;
  }

  /**
   * AutoAttack with its own settings (autoattack.py, set_version):
   * - standard: APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5,000 queries), one
   *   restart each;
   * - plus: APGD-CE and APGD-DLR with 5 restarts, FAB with 5 restarts, Square, APGD-T, FAB-T;
   * - rand (randomised defences): APGD-CE and APGD-DLR with EOT over 20 forward passes.
   * With `classes` below 4 the targeted attacks are left out (their losses need 4 classes).
   */
  static autoattack<M extends Classifier>(model: M, o: AutoAttackOptions = {}): Ensemble<M> {
    const norm = o.norm ?? "linf";
    const seed = o.seed ?? 0;
    const common = { norm, seed, ...(o.eps === undefined ? {} : { eps: o.eps }) } as const;
    const version = o.version ?? "standard";
    const steps = o.steps ?? 100;
    const apgdCe = (restarts: number, eot = 1) => new APGD(model, { ...common, steps, loss: "ce", restarts, eot });
    const apgdDlr = (restarts: number, eot = 1) => new APGD(model, { ...common, steps, loss: "dlr", restarts, eot });
    const apgdT = () => new APGDT(model, { ...common, steps, targets: 9, restarts: 1 });
    const fabT = () => new FABT(model, { ...common, steps, targets: 9, restarts: 1 });
    const square = () => new Square(model, { ...common, queries: o.queries ?? 5000 });
    let attacks: Attack[];
    const targeted = o.classes === undefined || o.classes >= 4;
    switch (version) {
      case "standard":
        attacks = targeted ? [apgdCe(1), apgdT(), fabT(), square()] : [apgdCe(1), square()];
        break;
      case "plus":
        attacks = [
          apgdCe(5),
          apgdDlr(5),
          new FAB(model, { ...common, steps, restarts: 5 }),
          square(),
          ...(targeted ? [apgdT(), fabT()] : []),
        ];
        break;
      case "rand":
        attacks = [apgdCe(1, 20), apgdDlr(1, 20)];
        break;
      default:
        throw new TypeError(`AutoAttack: version must be 'standard', 'plus' or 'rand', got '${String(version)}'`);
    }
    return new Ensemble(model, attacks, o.onStage === undefined ? {} : { onStage: o.onStage });
  }

  /**
   * A cheaper AutoAttack-style suite ('aa-fast'): APGD-CE, APGD-T (targeted DLR), then a
   * random search (not Square's schedule) with `queries` queries. Faster than 'aa', and weaker:
   * reports say which one ran.
   */
  static standard<M extends Classifier>(model: M, o: StandardEnsembleOptions = {}): Ensemble<M> {
    const common = { norm: o.norm ?? "linf", steps: o.steps ?? 100, ...(o.eps === undefined ? {} : { eps: o.eps }) } as const;
    const attacks: Attack[] = [new APGD(model, { ...common, loss: "ce" })];
    const targets = o.targets ?? 9;
    if (targets > 0) attacks.push(new APGDT(model, { ...common, targets }));
    const queries = o.queries ?? 1000;
    if (queries > 0)
      attacks.push(new RandomSearch(model, { norm: common.norm, queries, ...(o.eps === undefined ? {} : { eps: o.eps }) }));
    return new Ensemble(model, attacks, o.onStage === undefined ? {} : { onStage: o.onStage });
  }

  get name(): string {
    return `Ensemble [${this.attacks.map((a) => a.name).join(", ")}]`;
  }

  /** Runs the ensemble and returns only its report (the adversarial images are freed). */
  evaluate(x: Tensor, y: Tensor): EnsembleReport {
    scope(() => {
      this.run(x, y);
    });
    return this.lastReport as EnsembleReport;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    const n = x.size(0);
    const best = new BestIterate(x);
    const cleanAccuracy = noGrad(() =>
      scope(() => {
        const logits = this.model.forward(x);
        best.update(x, ceLoss(logits, y), logits.argmax(1).ne(y));
        return best.fooled.logicalNot().double().mean().item();
      }),
    );
    const stages: EnsembleStage[] = [];
    for (const attack of this.attacks) {
      const started = performance.now();
      const { attacked, fooled } = scope(() => {
        const idx = rowsWhere(best.fooled.logicalNot());
        const count = idx.size(0);
        if (count === 0) return { attacked: 0, fooled: 0 };
        const ys = y.indexSelect(0, idx);
        const adv = attack.run(x.indexSelect(0, idx), ys);
        return noGrad(() => {
          const logits = this.model.forward(adv);
          const hit = logits.argmax(1).ne(ys);
          best.updateRows(idx, { x: adv, loss: ceLoss(logits, ys), fooled: hit });
          return { attacked: count, fooled: hit.sum().item() };
        });
      });
      const robustAccuracy = scope(() => best.fooled.logicalNot().double().mean().item());
      const stage = { attack: attack.name, attacked, fooled, robustAccuracy, seconds: (performance.now() - started) / 1000 };
      stages.push(stage);
      this.onStage?.(stage);
    }
    this.lastReport = { n, cleanAccuracy, robustAccuracy: stages.at(-1)?.robustAccuracy ?? cleanAccuracy, stages };
    return best.x;
  }
}
