// A RobustnessReport as text: an aligned table for people (`rmoe eval`) and JSON for
// machines (`rmoe eval --json`; the fields are documented in docs/EVAL.md).
import { formatEps } from "./eps.js";
import type { MoEAttackResult, MoEResult, RobustnessReport } from "./report.js";

export function percent(v: number | null): string {
  return v === null || !Number.isFinite(v) ? "-" : `${(100 * v).toFixed(2)}%`;
}

/** Rows of cells as aligned columns; align[i] 'r' right-aligns column i. */
export function alignColumns(rows: readonly (readonly string[])[], align: string, indent = "  "): string {
  const widths: number[] = [];
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  return rows
    .map(
      (r) =>
        indent +
        r
          .map((c, i) => (align[i] === "r" ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
          .join("  ")
          .trimEnd(),
    )
    .join("\n");
}

function modelLine(r: RobustnessReport): string {
  const m = r.model;
  if (m.kind === "dual" && m.members !== null) {
    return `dual model (alpha ${m.alpha}, mixes ${m.space}): standard ${m.members.standard} + robust ${m.members.robust}`;
  }
  const moe = r.moe[0];
  if (m.kind === "moe" && moe !== undefined) return `MoE (${moe.numExperts} experts, ${gatingText(moe)})`;
  return m.type;
}

function gatingText(m: MoEResult): string {
  return m.gating === "topk" ? `top-${m.k} gating` : `${m.gating} gating`;
}

function memberTitle(m: MoEResult): string {
  if (!m.attackedAlone) return `MoE analysis (${m.numExperts} experts, ${gatingText(m)})`;
  return (
    `MoE analysis of the dual model's ${m.member} member (${m.numExperts} experts, ${gatingText(m)}):\n` +
    `  RA-E and RA-R attack this member ALONE, not the dual model; its clean accuracy alone is ${percent(m.cleanAccuracy)}`
  );
}

function moeRow(label: string, what: string, a: MoEAttackResult | null): string[] {
  if (a === null) return [label, what, "off", "", ""];
  return [label, what, percent(a.accuracy), percent(a.moeAccuracy), percent(a.routeFlipRate)];
}

function moeSection(m: MoEResult): string {
  const out = [memberTitle(m)];
  if (m.expertAttack !== null || m.routerAttack !== null) {
    out.push(
      alignColumns(
        [
          ["", "", "accuracy", "real MoE", "route flips"],
          moeRow("RA-E", "expert attack (router frozen at clean x)", m.expertAttack),
          moeRow("RA-R", "router attack (experts frozen at clean x)", m.routerAttack),
        ],
        "llrrr",
      ),
    );
    out.push(`  attacks: ${m.expertAttack?.attack ?? "-"}; ${m.routerAttack?.attack ?? "-"}`);
  } else {
    out.push("  RA-E and RA-R: not run (--no-moe-attacks)");
  }
  const head = ["expert usage (top-1 routes)", ...m.usage.counts.map((_, i) => `e${i}`), "route flips"];
  const rows = [head, ["clean", ...m.usage.counts.map(String), ""]];
  for (const u of m.underAttack) {
    const on = m.attackedAlone ? `${u.spec} (dual-model attack)` : u.spec;
    rows.push([on, ...u.counts.map(String), percent(u.routeFlipRate)]);
  }
  out.push(alignColumns(rows, `l${"r".repeat(m.usage.counts.length)}r`));
  return out.join("\n");
}

/** The human-readable table `rmoe eval` prints. */
export function formatReportTable(r: RobustnessReport): string {
  const lines: string[] = ["robust-moe robustness evaluation"];
  const s = r.source;
  const head: string[][] = [];
  if (s.checkpoint !== null) head.push(["checkpoint", s.checkpoint]);
  const data = [s.dataset, s.split].filter((v) => v !== null).join(" ");
  head.push(["data", `${data === "" ? "" : `${data}, `}${r.n} images`]);
  head.push(["model", modelLine(r)]);
  head.push([
    "threat model",
    `${r.threatModel.norm === "linf" ? "L-inf" : "L2"}, eps ${formatEps(r.threatModel.eps)}` +
      `${formatEps(r.threatModel.eps).includes("/") ? ` (${r.threatModel.eps.toFixed(6)})` : ""}` +
      `${r.seed === null ? "" : `, seed ${r.seed}`}`,
  ]);
  lines.push(alignColumns(head, "ll"), "");

  const rows: string[][] = [["", "", "accuracy", "count", "seconds"]];
  const frac = (c: number) => `${c}/${r.n}`;
  rows.push(["SA", "clean", percent(r.clean.accuracy), frac(r.clean.correct), ""]);
  for (const a of r.attacks) rows.push(["RA", a.spec, percent(a.accuracy), frac(a.correct), a.seconds.toFixed(1)]);
  if (r.worstCase !== null && r.attacks.length > 1) {
    rows.push(["RA", "worst case (per sample)", percent(r.worstCase.accuracy), frac(r.worstCase.correct), ""]);
  }
  lines.push(alignColumns(rows, "llrrr"));
  if (r.attacks.length > 0) {
    lines.push(
      alignColumns(
        r.attacks.map((a, i) => [i === 0 ? "attacks:" : "", a.spec, a.attack]),
        "lll",
      ),
    );
  }
  if (r.attacks.length > 0) lines.push("  (RA counts a sample as robust only when it is also correct on the clean image)");
  if (r.model.kind === "dual") lines.push("  (every RA above attacks the dual model end to end)");

  for (const m of r.moe) lines.push("", moeSection(m));

  lines.push("");
  const classRows: string[][] = [["per class", "n", "clean", r.worstCase === null ? "" : "robust (worst case)"]];
  const shown = r.perClass.filter((c) => c.n > 0);
  for (const c of shown) {
    classRows.push([c.name, String(c.n), percent(c.clean.accuracy), c.robust === null ? "" : percent(c.robust.accuracy)]);
  }
  lines.push(alignColumns(classRows, "lrrr"));
  const hidden = r.perClass.length - shown.length;
  if (hidden > 0)
    lines.push(`  (${hidden} of ${r.perClass.length} classes have no samples among these ${r.n} and are not shown)`);

  if (r.masking !== null) {
    const k = r.masking.checks.filter((c) => c.flagged).length;
    lines.push(
      "",
      `gradient-masking checks on the first batch (${r.masking.n} images): ${
        k === 0
          ? "no flags (this does not prove the absence of masking)"
          : `${k} FLAGGED: the RA numbers above may overstate robustness`
      }`,
    );
    for (const note of r.masking.notes) lines.push(`  ${note}`);
  }
  lines.push("", `${r.seconds.toFixed(1)} s`);
  return `${lines.join("\n")}\n`;
}

/** The report as JSON (two-space indent, a trailing newline): what `rmoe eval --json` prints. */
export function formatReportJson(r: RobustnessReport): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}
