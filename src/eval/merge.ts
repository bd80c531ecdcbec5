// Merging the records of a sharded evaluation (shard 1/n .. n/n of the same run) into the
// record one run would have made: the same header (without the shard), every sample once,
// in sample order. The report of the merge is then, number for number, the report of the
// single run; only timings differ (they are summed over the shards).
import { type EvalRecord, SampleTable } from "./record.js";
import { formatShard } from "./shard.js";

export class MergeError extends Error {
  override name = "MergeError";
}

/** JSON with object keys sorted, so equal headers compare equal however they were built or read. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    typeof x === "object" && x !== null && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

/** The first header field (dotted path) where a and b differ. */
function firstDifference(a: unknown, b: unknown, path: string): string | null {
  if (canonical(a) === canonical(b)) return null;
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null && !Array.isArray(a) && !Array.isArray(b)) {
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    for (const k of new Set([...Object.keys(ra), ...Object.keys(rb)])) {
      const d = firstDifference(ra[k], rb[k], path === "" ? k : `${path}.${k}`);
      if (d !== null) return d;
    }
  }
  return path === "" ? "(header)" : path;
}

/**
 * Merges the records of every shard of one evaluation (any order). Throws MergeError when
 * they are not exactly the shards 1..n of one evaluation: a shard missing or repeated, a
 * different setting (naming the field), samples missing or overlapping.
 */
export function mergeRecords(records: readonly EvalRecord[]): EvalRecord {
  if (records.length === 0) throw new MergeError("nothing to merge");
  const first = records[0] as EvalRecord;
  if (records.length === 1 && first.header.shard === null) return first;
  const count = first.header.shard?.count;
  const seen = new Map<number, number>();
  for (const [i, r] of records.entries()) {
    const s = r.header.shard;
    if (s === null) throw new MergeError(`input ${i + 1} is a whole evaluation, not a shard`);
    if (s.count !== count) throw new MergeError(`input ${i + 1} is shard ${formatShard(s)}, input 1 is of ${count} shards`);
    const twice = seen.get(s.index);
    if (twice !== undefined) throw new MergeError(`shard ${formatShard(s)} is given twice (inputs ${twice + 1} and ${i + 1})`);
    seen.set(s.index, i);
    const d = firstDifference({ ...first.header, shard: null }, { ...r.header, shard: null }, "");
    if (d !== null) throw new MergeError(`input ${i + 1} comes from a different evaluation than input 1: '${d}' differs`);
    for (const [k, name] of Object.entries(r.names)) {
      const other = first.names[k];
      if (other !== undefined && other !== name)
        throw new MergeError(`inputs disagree on attack '${k}': '${other}' vs '${name}'`);
    }
  }
  const missing = Array.from({ length: count as number }, (_, i) => i + 1).filter((i) => !seen.has(i));
  if (missing.length > 0) throw new MergeError(`shards ${missing.map((i) => `${i}/${count}`).join(", ")} missing`);

  // Shards in order, then rows in sample order.
  const ordered = [...records].sort((a, b) => (a.header.shard?.index as number) - (b.header.shard?.index as number));
  const names = ordered[0]?.table.names().sort() ?? [];
  for (const r of ordered) {
    const own = r.table.names().sort();
    if (own.join("\n") !== names.join("\n")) {
      throw new MergeError(
        `shard ${formatShard(r.header.shard as { index: number; count: number })} has other per-sample columns`,
      );
    }
  }
  const order: [number, number][] = [];
  for (const [t, r] of ordered.entries()) for (let row = 0; row < r.table.rows; row++) order.push([t, row]);
  order.sort((a, b) => (ordered[a[0]] as EvalRecord).table.index[a[1]]! - (ordered[b[0]] as EvalRecord).table.index[b[1]]!);
  const tables = ordered.map((r) => r.table);
  const table = SampleTable.concat(tables, order, names);
  const total = first.header.total;
  if (table.rows !== total || table.index.some((v, i) => v !== i)) {
    const dup = table.index.find((v, i) => i > 0 && table.index[i - 1] === v);
    throw new MergeError(
      dup !== undefined
        ? `sample ${dup} appears in more than one shard`
        : `the shards hold ${table.rows} samples, the evaluation has ${total}`,
    );
  }
  const seconds: Record<string, number> = {};
  const namesOut: Record<string, string> = {};
  for (const r of ordered) {
    for (const [k, v] of Object.entries(r.seconds)) seconds[k] = (seconds[k] ?? 0) + v;
    Object.assign(namesOut, r.names);
  }
  return {
    header: { ...first.header, shard: null },
    table,
    seconds,
    names: namesOut,
    // The masking checks ran on the evaluation's first batch, which the shard holding sample 0 evaluated.
    masking: ordered.find((r) => r.table.index.includes(0))?.masking ?? null,
    elapsed: ordered.reduce((s, r) => s + r.elapsed, 0),
  };
}
