// The per-sample flags of an evaluation on disk (`rmoe eval --save-flags FILE`): its record
// as JSON, one array per column with one entry per sample in sample order, so that results
// combine across runs (`rmoe eval merge`, or any tool that reads JSON: a worst case over
// attacks from two runs is the AND of their 'robust:...' columns by 'index').
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { type EvalHeader, type EvalRecord, SampleTable } from "./record.js";
import type { MaskingResult } from "./report.js";

export const FLAGS_FORMAT = "robust-moe.eval-flags";
export const FLAGS_VERSION = 1;

export class FlagsFileError extends Error {
  override name = "FlagsFileError";
}

/** The file's JSON object. Columns hold integers (0/1 for flags); 'index' is each row's sample position. */
export interface FlagsFile {
  format: typeof FLAGS_FORMAT;
  version: typeof FLAGS_VERSION;
  header: EvalHeader;
  rows: number;
  columns: Record<string, number[]>;
  seconds: Record<string, number>;
  names: Record<string, string>;
  masking: MaskingResult | null;
  elapsed: number;
}

/** The record's rows in sample order. */
export function sortedTable(table: SampleTable): SampleTable {
  const order = table.index.map((_, r) => [0, r] as [number, number]).sort((a, b) => table.index[a[1]]! - table.index[b[1]]!);
  return SampleTable.concat([table], order, table.names());
}

export function recordToFlags(record: EvalRecord): FlagsFile {
  const t = sortedTable(record.table);
  const columns: Record<string, number[]> = { index: [...t.index] };
  for (const name of t.names()) columns[name] = [...t.column(name)];
  return {
    format: FLAGS_FORMAT,
    version: FLAGS_VERSION,
    header: record.header,
    rows: t.rows,
    columns,
    seconds: { ...record.seconds },
    names: { ...record.names },
    masking: record.masking,
    elapsed: record.elapsed,
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Checks a parsed flags file and turns it back into a record; errors name the file and the problem. */
export function recordFromFlags(value: unknown, what: string): EvalRecord {
  const fail = (msg: string): never => {
    throw new FlagsFileError(`${what}: ${msg}`);
  };
  if (!isObject(value) || value.format !== FLAGS_FORMAT) fail(`not a robust-moe flags file (no "format": "${FLAGS_FORMAT}")`);
  const v = value as Record<string, unknown>;
  if (v.version !== FLAGS_VERSION) fail(`flags file version ${String(v.version)}, this build reads version ${FLAGS_VERSION}`);
  const header = v.header;
  if (
    !isObject(header) ||
    typeof header.eps !== "number" ||
    !Array.isArray(header.curveEps) ||
    !Array.isArray(header.attacks) ||
    !Array.isArray(header.members)
  ) {
    fail("malformed header");
  }
  const rows = v.rows;
  if (typeof rows !== "number" || !Number.isInteger(rows) || rows < 0) fail("malformed row count");
  const columns = v.columns;
  if (!isObject(columns)) fail("malformed columns");
  const cols = columns as Record<string, unknown>;
  for (const [name, col] of Object.entries(cols)) {
    if (!Array.isArray(col) || col.length !== rows || !col.every((x) => Number.isInteger(x))) {
      fail(`column '${name}' is not ${rows} integers`);
    }
  }
  const index = cols.index as number[] | undefined;
  if (index === undefined) fail("no 'index' column");
  if (new Set(index).size !== index?.length || index?.some((i) => i < 0)) fail("the 'index' column repeats a sample");
  const table = new SampleTable();
  for (const i of index as number[]) table.appendRows(i, 1);
  for (const [name, col] of Object.entries(cols)) if (name !== "index") table.set(name, 0, col as number[]);
  for (const k of ["seconds", "names"] as const) if (!isObject(v[k])) fail(`malformed ${k}`);
  if (typeof v.elapsed !== "number") fail("malformed elapsed");
  return {
    header: header as unknown as EvalHeader,
    table,
    seconds: v.seconds as Record<string, number>,
    names: v.names as Record<string, string>,
    masking: (v.masking ?? null) as MaskingResult | null,
    elapsed: v.elapsed as number,
  };
}

/** Writes the record's flags file (via a temporary file, so a crash never leaves half a file). */
export function saveRecord(path: string, record: EvalRecord): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(recordToFlags(record))}\n`);
  renameSync(tmp, path);
}

export function loadRecord(path: string): EvalRecord {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new FlagsFileError(`cannot read flags file ${path}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new FlagsFileError(`${path}: not JSON (${(e as Error).message})`);
  }
  return recordFromFlags(parsed, path);
}
