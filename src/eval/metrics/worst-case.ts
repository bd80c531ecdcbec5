// RA, worst case: per sample, correct on x and robust under every listed attack (and under
// the adaptive attacks on the evaluated MoE itself, when any ran).
import { score } from "../metric.js";
import type { EvalRecord } from "../record.js";
import type { Score } from "../report.js";
import { CLEAN_COLUMN } from "./clean-accuracy.js";

export class WorstCase {
  /** What the worst case is over: attack specs, then adaptive MoE attacks. */
  readonly attacks: readonly string[];
  readonly #columns: readonly string[];
  readonly #record: EvalRecord;

  constructor(record: EvalRecord, attacks: readonly string[], columns: readonly string[]) {
    this.#record = record;
    this.attacks = attacks;
    this.#columns = columns;
  }

  get ran(): boolean {
    return this.#columns.length > 0;
  }

  /** Per row of the record: robust under every attack. */
  flags(): boolean[] {
    return this.#record.table.allOf([CLEAN_COLUMN, ...this.#columns]);
  }

  result(): (Score & { attacks: string[] }) | null {
    if (!this.ran) return null;
    const r = this.#record;
    let correct = 0;
    for (const v of this.flags()) if (v) correct++;
    return { attacks: [...this.attacks], ...score(correct, r.table.rows, r.header.confidence) };
  }
}
