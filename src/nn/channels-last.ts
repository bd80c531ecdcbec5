// Where channels-last may be used. LibTorch 1.13 crashes (SIGSEGV or abort, in oneDNN) in the
// backward of some channels-last ResNet18s once the batch size changes, which an MoE's
// sub-batches do every step (../shared/spec/LIBTORCH-NOTES.md). A crash cannot be caught, so
// the decision is made beforehand, from a table of configurations each run in its own process
// by scripts/channels-last-matrix.mjs (channels-last-table.ts, committed): a configuration is
// allowed only if every case tested for it finished. Anything else, including a width or a
// model the table does not cover, trains in NCHW.
import type { Precision } from "../tensor/autocast.js";
import type { MemoryFormat } from "../tensor/tensor.js";
import { CHANNELS_LAST_TABLE } from "./channels-last-table.js";

/** The model kinds the matrix tests: one ResNet18, or a top-1 MoE of ResNet18 experts. */
export type ChannelsLastModel = "resnet18" | "moe";

export interface ChannelsLastCase {
  model: ChannelsLastModel;
  width: number;
  precision: Precision;
  /** Batch sizes of the consecutive steps (each a training step and a PGD input gradient). */
  batches: readonly number[];
  /** "ok": the process finished; "crash": it died by a signal or abort; "error": a JS error. */
  outcome: "ok" | "crash" | "error";
  /** Exit code or signal name. */
  exit: number | string;
  seconds: number;
}

export interface ChannelsLastTable {
  /** When, where and with what the table was measured. */
  measured: { date: string; cpu: string; torch: string; threads: number };
  cases: readonly ChannelsLastCase[];
}

export interface ChannelsLastQuery {
  /** "moe" also for a dual model of MoEs (each MoE sees its own sub-batches). */
  model: ChannelsLastModel | "vit";
  width: number;
  precision: Precision;
}

export interface ChannelsLastDecision {
  allowed: boolean;
  /** Why, in one line (the notice printed when a request falls back to NCHW). */
  reason: string;
}

/** Whether channels-last is allowed for this configuration, by the committed table (or the one given). */
export function channelsLastSupport(q: ChannelsLastQuery, table: ChannelsLastTable = CHANNELS_LAST_TABLE): ChannelsLastDecision {
  const what = `${q.model} width ${q.width} ${q.precision}`;
  if (q.model === "vit") return { allowed: false, reason: `channels-last: not tested for ViT experts (${what}); using NCHW` };
  const cases = table.cases.filter((c) => c.model === q.model && c.width === q.width && c.precision === q.precision);
  if (cases.length === 0)
    return {
      allowed: false,
      reason: `channels-last: ${what} is not in the tested table (nn/channels-last-table.ts); using NCHW`,
    };
  const bad = cases.find((c) => c.outcome !== "ok");
  if (bad !== undefined) {
    return {
      allowed: false,
      reason: `channels-last: ${what} ${bad.outcome === "crash" ? "crashed" : "failed"} in LibTorch ${table.measured.torch} (batches ${bad.batches.join(",")}: exit ${bad.exit}); using NCHW`,
    };
  }
  return { allowed: true, reason: `channels-last: ${what} passed ${cases.length} tested case(s)` };
}

/**
 * The memory format to actually use for a request: the request itself when it is NCHW or
 * allowed, else NCHW with the one-line notice.
 */
export function resolveMemoryFormat(
  requested: MemoryFormat,
  q: ChannelsLastQuery,
  table: ChannelsLastTable = CHANNELS_LAST_TABLE,
): { format: MemoryFormat; notice: string | null } {
  if (requested !== "channelsLast") return { format: requested, notice: null };
  const d = channelsLastSupport(q, table);
  return d.allowed ? { format: "channelsLast", notice: null } : { format: "contiguous", notice: d.reason };
}
