// The raw outcome of an evaluation: what was run (the header), one row per sample with
// every per-sample flag the metrics measured (the table), and a few summed scalars
// (timings). Every number of the report is a function of this record, computed by the
// metric objects' result(): so a record written to disk (`--save-flags`) and records of
// shards merged into one give exactly the report a single run gives.
import type { Norm } from "../attacks/attack.js";
import type { RouterObjective } from "../attacks/router-attack.js";
import type { CertifyMethod } from "../certify/batch-certifier.js";
import type { GatingMode } from "../models/moe.js";
import type { MaskingResult, ModelSummary, ReportSource } from "./report.js";
import type { Shard } from "./shard.js";

/** 'expert': counts towards RA-E; 'router': RA-R; 'model': an adaptive attack on the real MoE. */
export type MoEAttackGroup = "expert" | "router" | "model";

/** A MoE whose routing the evaluation analyses, as the header records it. */
export interface MemberHeader {
  member: "model" | "standard" | "robust";
  attackedAlone: boolean;
  numExperts: number;
  gating: GatingMode;
  k: number;
  renormalize: boolean;
  routerObjective: RouterObjective;
  /** The MoE attacks run on this member, in order (none with moeAttacks off). */
  attacks: { id: string; group: MoEAttackGroup }[];
}

/** An objective whose input gradient is checked for all-zero rows. */
export interface ObjectiveHeader {
  id: string;
  description: string;
  /** The column flagging the samples correct on x for the model the objective attacks: only those need moving. */
  cleanColumn: string;
}

/** The certificate an evaluation computes beside its attacks (`--certify`), every setting resolved. */
export interface CertifyHeader {
  method: CertifyMethod;
  /** The norm of the certified balls: linf for ibp, l2 for smoothing, either for lipschitz. */
  norm: Norm;
  /** Radii, increasing. */
  eps: number[];
  /** Randomized smoothing's settings (null for the deterministic methods). */
  smoothing: { sigma: number; n0: number; samples: number; alpha: number } | null;
}

/** What an evaluation ran: everything its report needs besides the per-sample flags. */
export interface EvalHeader {
  source: ReportSource;
  model: ModelSummary;
  norm: Norm;
  /** The radius of the headline numbers (RA, worst case, per class, MoE analysis). */
  eps: number;
  /** Radii of the RA-against-eps curves, ascending; eps is one of them. */
  curveEps: number[];
  seed: number | null;
  /** Canonical attack names, in the order given. */
  attacks: string[];
  settings: {
    restarts: number;
    apgdSteps: number;
    queries: number;
    moeSteps: number;
    /** null when the caller made the batches. */
    batchSize: number | null;
    resize: number | null;
    maskingChecks: boolean;
  };
  members: MemberHeader[];
  /** Certified accuracy beside SA and RA, or null (older flags files lack the field: read as null). */
  certify: CertifyHeader | null;
  /** Filled in at the first batch (they depend on the number of classes). */
  objectives: ObjectiveHeader[];
  /** Filled in at the first batch when neither the data nor the options name them. */
  classes: string[];
  confidence: number;
  /** Samples of the whole evaluation (every shard), filled in when the data is exhausted. */
  total: number;
  /** 1-based; null for a whole evaluation. */
  shard: Shard | null;
}

/** Per-sample values, one row per sample, in columns of integers (0/1 for flags). */
export class SampleTable {
  /** Each row's position among the evaluation's samples (0-based). */
  readonly index: number[] = [];
  readonly #columns = new Map<string, number[]>();

  get rows(): number {
    return this.index.length;
  }

  /** Adds rows for samples start..start+count-1 and returns the first new row. */
  appendRows(start: number, count: number): number {
    const row = this.index.length;
    for (let i = 0; i < count; i++) this.index.push(start + i);
    return row;
  }

  /**
   * Writes values into rows row..row+values.length-1 of a column (created on first use).
   * Rows are written in order and once, so a column that skipped a batch is caught.
   */
  set(name: string, row: number, values: readonly (number | boolean)[]): void {
    let col = this.#columns.get(name);
    if (col === undefined) {
      col = [];
      this.#columns.set(name, col);
    }
    if (col.length !== row) throw new Error(`SampleTable: column '${name}' has ${col.length} rows, written at row ${row}`);
    if (row + values.length > this.rows) throw new Error(`SampleTable: column '${name}' written beyond row ${this.rows}`);
    for (const v of values) col.push(typeof v === "boolean" ? (v ? 1 : 0) : v);
  }

  has(name: string): boolean {
    return this.#columns.has(name);
  }

  names(): string[] {
    return [...this.#columns.keys()];
  }

  column(name: string): readonly number[] {
    const col = this.#columns.get(name);
    if (col === undefined) throw new Error(`SampleTable: no column '${name}'`);
    if (col.length !== this.rows) throw new Error(`SampleTable: column '${name}' has ${col.length} of ${this.rows} rows`);
    return col;
  }

  /** Per row: every named column is non-zero (true for every row when names is empty). */
  allOf(names: readonly string[]): boolean[] {
    const cols = names.map((n) => this.column(n));
    return this.index.map((_, r) => cols.every((c) => c[r] !== 0));
  }

  /** Per row: some named column is non-zero. */
  anyOf(names: readonly string[]): boolean[] {
    const cols = names.map((n) => this.column(n));
    return this.index.map((_, r) => cols.some((c) => c[r] !== 0));
  }

  /** Rows where every named column is non-zero. */
  countAll(names: readonly string[]): number {
    return count(this.allOf(names));
  }

  /** A table of the given rows of this one, in that order (for merging and sorting). */
  static concat(
    tables: readonly SampleTable[],
    order: readonly [table: number, row: number][],
    names: readonly string[],
  ): SampleTable {
    const out = new SampleTable();
    for (const [t, r] of order) out.index.push((tables[t] as SampleTable).index[r] as number);
    for (const name of names) {
      const cols = tables.map((t) => t.column(name));
      out.#columns.set(
        name,
        order.map(([t, r]) => (cols[t] as readonly number[])[r] as number),
      );
    }
    return out;
  }
}

export function count(flags: readonly boolean[]): number {
  let c = 0;
  for (const v of flags) if (v) c++;
  return c;
}

/** An evaluation's (or a shard's) complete outcome. */
export interface EvalRecord {
  header: EvalHeader;
  table: SampleTable;
  /** Seconds per attack key ('pgd50@8/255', 'ra-e:model'), summed over batches (and shards). */
  seconds: Record<string, number>;
  /** The attack object's name per attack key. */
  names: Record<string, string>;
  /** checkGradientMasking on the evaluation's first batch, in the record that ran it. */
  masking: MaskingResult | null;
  /** Wall-clock seconds of the run (summed over merged shards). */
  elapsed: number;
}

export function newRecord(header: EvalHeader): EvalRecord {
  return { header, table: new SampleTable(), seconds: {}, names: {}, masking: null, elapsed: 0 };
}

/** Adds to a summed timing. */
export function addSeconds(record: EvalRecord, key: string, seconds: number): void {
  record.seconds[key] = (record.seconds[key] ?? 0) + seconds;
}
