// RA under one attack at one radius: a sample is robust when the model is correct on x
// AND on the attack's point (AutoAttack's count). Column 'robust:<spec>@<eps>'.
import type { Attack } from "../../attacks/attack.js";
import { noGrad } from "../../tensor/autograd.js";
import { scope } from "../../tensor/scope.js";
import type { AdversarialSource } from "../adversarial-source.js";
import { attackKey } from "../adversarial-source.js";
import type { EvalBatchContext } from "../batch-context.js";
import { type Metric, score } from "../metric.js";
import type { EvalRecord } from "../record.js";
import type { AttackResult } from "../report.js";
import { CLEAN_COLUMN } from "./clean-accuracy.js";

export function robustColumn(key: string): string {
  return `robust:${key}`;
}

export class RobustAccuracy implements Metric<AttackResult> {
  readonly spec: string;
  readonly eps: number;
  /** 'pgd50@8/255': seeds, timings and names are kept under it. */
  readonly key: string;
  readonly column: string;
  readonly #record: EvalRecord;
  readonly #source: AdversarialSource<Attack> | null;

  /** source: how to attack (null for a record read back, which is never updated). */
  constructor(record: EvalRecord, spec: string, eps: number, source: AdversarialSource<Attack> | null) {
    this.#record = record;
    this.spec = spec;
    this.eps = eps;
    this.key = attackKey(spec, eps);
    this.column = robustColumn(this.key);
    this.#source = source;
  }

  get source(): AdversarialSource<Attack> {
    if (this.#source === null) throw new Error(`evaluation: attack '${this.key}' cannot run from a saved record`);
    return this.#source;
  }

  update(batch: EvalBatchContext): void {
    const adv = batch.adversarial(this.source);
    const okAdv = noGrad(() => scope(() => batch.target.model.forward(adv).argmax(1).eq(batch.y).toFlatArray()));
    this.#record.table.set(
      this.column,
      batch.row,
      okAdv.map((v, i) => v !== 0 && (batch.cleanCorrect[i] as boolean)),
    );
  }

  result(): AttackResult {
    const r = this.#record;
    const correct = r.table.countAll([CLEAN_COLUMN, this.column]);
    return {
      spec: this.spec,
      attack: r.names[this.key] ?? "",
      ...score(correct, r.table.rows, r.header.confidence),
      seconds: r.seconds[this.key] ?? 0,
    };
  }
}
