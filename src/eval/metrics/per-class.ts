// Per class: how many samples, and how many were right clean and under the worst case.
import { accuracyInterval } from "../confidence.js";
import type { EvalRecord } from "../record.js";
import type { ClassResult, ClassScore } from "../report.js";
import { CLEAN_COLUMN, LABEL_COLUMN } from "./clean-accuracy.js";
import type { WorstCase } from "./worst-case.js";

export class PerClass {
  readonly #record: EvalRecord;
  readonly #worst: WorstCase;

  constructor(record: EvalRecord, worst: WorstCase) {
    this.#record = record;
    this.#worst = worst;
  }

  result(): ClassResult[] {
    const r = this.#record;
    const classes = r.header.classes;
    const n = new Array<number>(classes.length).fill(0);
    const clean = new Array<number>(classes.length).fill(0);
    const robust = new Array<number>(classes.length).fill(0);
    const labels = r.table.column(LABEL_COLUMN);
    const ok = r.table.column(CLEAN_COLUMN);
    const worst = this.#worst.ran ? this.#worst.flags() : null;
    for (let i = 0; i < labels.length; i++) {
      const c = labels[i] as number;
      n[c] = (n[c] as number) + 1;
      if (ok[i] !== 0) clean[c] = (clean[c] as number) + 1;
      if (worst?.[i] === true) robust[c] = (robust[c] as number) + 1;
    }
    const level = r.header.confidence;
    const scoreOf = (k: number, cn: number): ClassScore =>
      cn === 0
        ? { correct: k, accuracy: null, interval: null }
        : { correct: k, accuracy: k / cn, interval: accuracyInterval(k, cn, level) };
    return classes.map((name, c) => ({
      index: c,
      name,
      n: n[c] as number,
      clean: scoreOf(clean[c] as number, n[c] as number),
      robust: worst === null ? null : scoreOf(robust[c] as number, n[c] as number),
    }));
  }
}
