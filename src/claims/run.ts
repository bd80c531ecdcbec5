// `rmoe claims`: run the stages of the selected claims and seeds (resumable: finished stages
// are skipped, an interrupted training continues), then write the summary. The runner is
// src/pipeline/stages.ts, the same one `rmoe demo` uses.
import { mkdirSync } from "node:fs";
import { runStages } from "../pipeline/stages.js";
import { formatDuration } from "../train/progress.js";
import { type ClaimsOptions, claimsSettings, claimsStages, recordingStages } from "./plan.js";
import { type ClaimsSummary, summarizeClaims, writeClaimsSummary } from "./summarize.js";

export interface RunClaimsOptions extends ClaimsOptions {
  /** Only read what exists and write the summary. */
  summarizeOnly: boolean;
  /** Where progress lines go (default stderr). */
  log?: (line: string) => void;
}

export async function runClaims(o: RunClaimsOptions): Promise<{ summary: ClaimsSummary; json: string; tables: string }> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const settings = claimsSettings(o.quick);
  mkdirSync(o.out, { recursive: true });
  if (!o.summarizeOnly) {
    const stages = recordingStages(o.out, claimsStages(o, settings));
    const seconds = await runStages("rmoe claims", stages, log);
    log(`rmoe claims: ${stages.length} stages done in ${formatDuration(seconds)}`);
  }
  const summary = summarizeClaims(o, settings);
  const files = writeClaimsSummary(summary);
  for (const c of summary.claims) log(`rmoe claims: claim ${c.row}: ${c.status}`);
  return { summary, ...files };
}
