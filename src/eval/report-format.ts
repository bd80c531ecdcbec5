// A RobustnessReport as text: an aligned table for people (`rmoe eval`) and JSON for
// machines (`rmoe eval --json`; the fields are documented in docs/EVAL.md).
import { formatEps } from "./eps.js";
import type { CertifiedResult, DualResult, Interval, MoEAttackResult, MoEResult, RobustnessReport } from "./report.js";

export function percent(v: number | null): string {
  return v === null || !Number.isFinite(v) ? "-" : `${(100 * v).toFixed(2)}%`;
}

/** '[12.34%, 20.00%]' (an interval's bounds in percent), '-' for none. */
export function intervalText(i: Interval | null): string {
  return i === null ? "-" : `[${percent(i.lower)}, ${percent(i.upper)}]`;
}

function ciHeader(r: RobustnessReport): string {
  return `${+(100 * r.confidence.level).toFixed(4)}% CI`;
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
  if (a === null) return [label, what, "off", "", "", ""];
  return [label, what, percent(a.accuracy), intervalText(a.interval), percent(a.moeAccuracy), percent(a.routeFlipRate)];
}

function moeSection(m: MoEResult, ci: string): string {
  const out = [memberTitle(m)];
  if (m.expertAttack !== null || m.routerAttack !== null || m.adaptiveAttack !== null) {
    const rows = [
      ["", "", "accuracy", ci, "real MoE", "route flips"],
      moeRow("RA-E", "expert attack (router frozen at clean x)", m.expertAttack),
      moeRow("RA-R", "router attack (experts frozen at clean x)", m.routerAttack),
    ];
    if (m.adaptiveAttack !== null) rows.push(moeRow("RA-A", "adaptive attack on the real MoE", m.adaptiveAttack));
    out.push(alignColumns(rows, "llrrrr"));
    const names = [m.expertAttack, m.routerAttack, m.adaptiveAttack].filter((a) => a !== null).map((a) => a.attack);
    out.push(`  attacks: ${names.join("; ")}`);
    out.push("  (a sample counts only when the model described is also correct on the clean image)");
    if (m.routerObjective === "route" && m.routerAttack !== null) {
      out.push("  (RA-R pushes the route: the gate weights cannot change with x, so the output objective has no gradient)");
    }
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
  if (r.shard !== null) {
    head.push([
      "shard",
      `${r.shard.index}/${r.shard.count} (${r.n} of ${r.shard.total} images; merge the shards' flags with rmoe eval merge)`,
    ]);
  }
  head.push([
    "threat model",
    `${r.threatModel.norm === "linf" ? "L-inf" : "L2"}, eps ${formatEps(r.threatModel.eps)}` +
      `${formatEps(r.threatModel.eps).includes("/") ? ` (${r.threatModel.eps.toFixed(6)})` : ""}` +
      `${r.seed === null ? "" : `, seed ${r.seed}`}`,
  ]);
  lines.push(alignColumns(head, "ll"), "");

  const ci = ciHeader(r);
  const rows: string[][] = [["", "", "accuracy", "count", ci, "seconds"]];
  const frac = (c: number) => `${c}/${r.n}`;
  rows.push(["SA", "clean", percent(r.clean.accuracy), frac(r.clean.correct), intervalText(r.clean.interval), ""]);
  for (const a of r.attacks) {
    rows.push(["RA", a.spec, percent(a.accuracy), frac(a.correct), intervalText(a.interval), a.seconds.toFixed(1)]);
  }
  if (r.worstCase !== null && (r.attacks.length > 1 || r.worstCase.attacks.length > r.attacks.length)) {
    rows.push([
      "RA",
      "worst case (per sample)",
      percent(r.worstCase.accuracy),
      frac(r.worstCase.correct),
      intervalText(r.worstCase.interval),
      "",
    ]);
  }
  lines.push(alignColumns(rows, "llrrrr"));
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
  if (r.curves.eps.length > 1 && r.curves.attacks.length > 0) lines.push("", curveSection(r));
  if (r.certified !== undefined && r.certified !== null) lines.push("", certifiedSection(r, r.certified, ci));

  if (r.dual !== undefined && r.dual !== null) lines.push("", dualSection(r.dual, ci));
  for (const m of r.moe) lines.push("", moeSection(m, ci));

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

  lines.push("", zeroGradientSection(r));

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

/** Who decides in a dual model: each member alone on x and at the dual model's adversarial points. */
function dualSection(d: DualResult, ci: string): string {
  const out = [
    `dual-model members (alpha ${d.alpha}, mixes ${d.space}): each member ALONE at the dual model's inputs;`,
    "  'decides': the dual model's prediction is this member's; 'logit spread': std of its logits over the classes",
  ];
  const rows = [["", "weight", "logit spread", "weighted", "on", "accuracy", ci, "decides", "out-voted"]];
  for (const m of d.members) {
    rows.push([
      m.member,
      String(+m.weight.toFixed(6)),
      m.logitSpread.toFixed(3),
      (m.weight * m.logitSpread).toFixed(3),
      "clean",
      percent(m.clean.accuracy),
      intervalText(m.clean.interval),
      percent(m.agreement),
      "",
    ]);
    for (const a of m.underAttack) {
      rows.push([
        "",
        "",
        "",
        "",
        a.spec,
        percent(a.correct.accuracy),
        intervalText(a.correct.interval),
        percent(a.agreement),
        `${a.outvoted}/${a.broken}`,
      ]);
    }
  }
  out.push(alignColumns(rows, "lrrrlrrrr"));
  if (d.members.some((m) => m.underAttack.length > 0)) {
    out.push(
      "  (out-voted: of the samples the attack broke (the dual model right on x, wrong at its point), those this member alone still gets right there)",
    );
  }
  return out.join("\n");
}

/** Certified accuracy per radius (--certify), and any certificate an attack broke. */
function certifiedSection(r: RobustnessReport, c: CertifiedResult, ci: string): string {
  const how =
    c.method === "ibp"
      ? "IBP with CROWN refinement, L-inf (sound, deterministic)"
      : c.method === "lipschitz"
        ? `Lipschitz margin (Theorem 5.4/5.5), ${c.norm === "linf" ? "L-inf" : "L2"} (sound, deterministic)`
        : `randomized smoothing, L2, sigma ${c.smoothing?.sigma}, ${c.smoothing?.samples} samples (holds with probability 1 - ${c.smoothing?.alpha}; certifies the smoothed classifier)`;
  const rows = [["certified accuracy", "radius", "accuracy", "count", ci]];
  for (const p of c.points) {
    rows.push([
      "",
      c.norm === "linf" ? formatEps(p.eps) : String(p.eps),
      percent(p.accuracy),
      `${p.correct}/${r.n}`,
      intervalText(p.interval),
    ]);
  }
  const out = [`certified: ${how}, ${c.seconds.toFixed(1)} s`, alignColumns(rows, "lrrrr")];
  for (const p of c.points) {
    for (const b of p.brokenByAttacks) {
      out.push(
        `  UNSOUND: ${b.samples.length} sample(s) certified at ${formatEps(p.eps)} broken by ${b.attack} (samples ${b.samples.slice(0, 10).join(", ")}${b.samples.length > 10 ? ", ..." : ""}): please report this`,
      );
    }
  }
  return out.join("\n");
}

/** RA against eps: one row per attack, one column per radius. */
function curveSection(r: RobustnessReport): string {
  const c = r.curves;
  const rows = [["RA against eps", ...c.eps.map(formatEps)]];
  for (const a of c.attacks) rows.push([a.spec, ...a.points.map((p) => percent(p.accuracy))]);
  if (c.worstCase !== null && c.attacks.length > 1) rows.push(["worst case", ...c.worstCase.map((p) => percent(p.accuracy))]);
  return alignColumns(rows, `l${"r".repeat(c.eps.length)}`);
}

/** Samples with an all-zero input gradient, per objective: one line when there are none. */
function zeroGradientSection(r: RobustnessReport): string {
  const z = r.zeroGradients;
  if (z.length === 0) return "zero input gradients: no gradient attack ran";
  const flagged = z.filter((o) => o.flagged);
  if (flagged.length === 0) {
    return `zero input gradients at x: none, for every objective (${z.map((o) => o.objective).join(", ")})`;
  }
  const rows = [...flagged, ...z.filter((o) => !o.flagged)].map((o) => [
    o.flagged ? "FLAG" : "ok",
    o.objective,
    `${o.count}/${r.n}`,
    percent(o.fraction),
    o.description,
  ]);
  return [
    `zero input gradients at x: ${flagged.length} objective(s) FLAGGED: gradient attacks cannot move those samples, so RA may overstate robustness (try apgd-dlr or square)`,
    alignColumns(rows, "llrrl"),
  ].join("\n");
}

/** The report as JSON (two-space indent, a trailing newline): what `rmoe eval --json` prints. */
export function formatReportJson(r: RobustnessReport): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}
