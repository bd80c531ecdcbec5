// The report page: one HTML file with everything inline (styles, SVG plots, PNG data URIs) and
// no script, so it opens from disk, offline, in any browser, and prints.
import type { ReportJson, SectionId } from "./build.js";
import type { GalleryInput, RouteOf } from "./gallery.js";
import type { ModelKind } from "./inputs.js";

/** One plot (or a row of plots) with its explanation. */
export interface Figure {
  title: string;
  /** Colours the title's dot (a run's kind); null: no dot. */
  kind: ModelKind | null;
  subtitle: string | null;
  svgs: string[];
  caption: string;
}

export interface Table {
  caption: string;
  head: string[];
  rows: { kind: ModelKind | null; cells: string[] }[];
}

export interface Section {
  id: SectionId;
  title: string;
  intro: string;
  figures: Figure[];
  /** Plain statements of what could not be shown and why. */
  notes: string[];
  tables: Table[];
  gallery?: { input: GalleryInput; source: string }[];
}

export interface PageInput {
  title: string;
  subtitle: string[];
  json: ReportJson;
  sections: Section[];
  kindColors: Record<ModelKind, string>;
  kindNames: Record<ModelKind, string>;
  sectionTitles: Record<SectionId, string>;
}

export function escapeHtml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

const STYLE = `
:root { --fg: #1d2329; --muted: #5b6570; --line: #e3e6ea; --bg: #f6f7f9; --card: #fff; --accent: #2f6db5; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 28px 28px 60px; }
header h1 { font-size: 28px; margin: 0 0 4px; letter-spacing: -0.01em; }
header .meta { color: var(--muted); margin: 0; }
nav { margin: 18px 0 8px; display: flex; flex-wrap: wrap; gap: 6px 8px; }
nav a { color: var(--accent); text-decoration: none; background: var(--card); border: 1px solid var(--line); border-radius: 999px; padding: 3px 12px; font-size: 13px; }
nav a:hover { border-color: var(--accent); }
.legend-kinds { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 13px; color: var(--muted); margin: 10px 0 0; }
.dot { display: inline-block; width: 11px; height: 11px; border-radius: 50%; margin-right: 6px; vertical-align: baseline; position: relative; top: 1px; }
.missing { background: #fff8e6; border: 1px solid #f0d58c; border-radius: 8px; padding: 10px 16px; margin: 18px 0; }
.missing strong { display: block; margin-bottom: 2px; }
.missing ul { margin: 4px 0; padding-left: 20px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 20px 24px; margin: 22px 0; }
section h2 { font-size: 20px; margin: 0 0 6px; }
section > p.intro { color: var(--muted); margin: 0 0 12px; max-width: 900px; }
figure { margin: 18px 0 8px; }
figure h3 { font-size: 16px; margin: 0; }
figure .sub, .gallery-file .sub { color: var(--muted); font-size: 13px; margin: 0 0 6px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: flex-start; }
.plots svg { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13.5px; max-width: 900px; margin-top: 6px; }
.note { color: #8a5a00; font-size: 13.5px; margin: 8px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 10px 0; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f1f3f5; font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
table caption { text-align: left; font-weight: 600; padding: 4px 0; }
code, .cmd { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
details summary { cursor: pointer; color: var(--accent); margin: 8px 0; }
.gallery-file h3 { font-size: 16px; margin: 14px 0 2px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; margin-top: 10px; }
.tile { border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
.imgs { display: flex; gap: 8px; }
.imgs figure { margin: 0; text-align: center; }
.imgs img { width: 88px; height: 88px; image-rendering: pixelated; border: 1px solid var(--line); display: block; }
.imgs figcaption { font-size: 11px; margin: 2px 0 0; }
.tile dl { display: grid; grid-template-columns: auto 1fr; gap: 1px 8px; margin: 6px 0 0; font-size: 13px; }
.tile dt { color: var(--muted); }
.tile dd { margin: 0; }
.ok { color: #1f7a3a; }
.bad { color: #b3261e; font-weight: 600; }
.flip { color: #8a5a00; }
footer { color: var(--muted); font-size: 13px; margin-top: 30px; }
@media print { body { background: white; } section { break-inside: avoid-page; border: none; } }
`;

function dot(kind: ModelKind | null, colors: Record<ModelKind, string>): string {
  return kind === null ? "" : `<span class="dot" style="background:${colors[kind]}"></span>`;
}

function renderFigure(f: Figure, colors: Record<ModelKind, string>): string {
  return `<figure>
<h3>${dot(f.kind, colors)}${escapeHtml(f.title)}</h3>
${f.subtitle === null ? "" : `<p class="sub">${escapeHtml(f.subtitle)}</p>`}
<div class="plots">${f.svgs.join("\n")}</div>
<figcaption>${escapeHtml(f.caption)}</figcaption>
</figure>`;
}

function renderTable(t: Table, colors: Record<ModelKind, string>): string {
  const head = t.head.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const rows = t.rows
    .map(
      (r) =>
        `<tr>${r.cells.map((c, i) => `<td${i >= 2 ? ' class="num"' : ""}>${i === 0 ? dot(r.kind, colors) : ""}${escapeHtml(c)}</td>`).join("")}</tr>`,
    )
    .join("\n");
  return `<table><caption>${escapeHtml(t.caption)}</caption><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`;
}

function routeText(r: RouteOf[] | null): string {
  if (r === null) return "";
  return r.map((m) => (m.member === "model" ? `expert ${m.expert}` : `${m.member} expert ${m.expert}`)).join(", ");
}

function renderGallery(g: GalleryInput, source: string): string {
  const cls = (k: number): string => g.classes?.[k] ?? `class ${k}`;
  const pctText = (v: number | null): string => (v === null ? "?" : `${(100 * v).toFixed(1)}%`);
  const tiles = g.items
    .map((it) => {
      const flipped = it.routeClean !== null && it.routeAdv !== null && routeText(it.routeClean) !== routeText(it.routeAdv);
      const route = (r: RouteOf[] | null, flip: boolean): string =>
        r === null
          ? ""
          : ` · <span class="${flip ? "flip" : ""}">${escapeHtml(routeText(r))}${flip ? " (route flipped)" : ""}</span>`;
      const verdict = (p: number): string => (p === it.label ? "ok" : "bad");
      const mark = (p: number): string => (p === it.label ? "✓" : "✗");
      return `<div class="tile" data-index="${it.index}">
<div class="imgs">
<figure><img src="${it.clean}" alt="clean image ${it.index}"><figcaption>clean</figcaption></figure>
<figure><img src="${it.adv}" alt="adversarial image ${it.index}"><figcaption>adversarial</figcaption></figure>
<figure><img src="${it.perturbation}" alt="perturbation of image ${it.index}"><figcaption>perturbation</figcaption></figure>
</div>
<dl>
<dt>#${it.index} true</dt><dd>${escapeHtml(cls(it.label))}</dd>
<dt>clean</dt><dd><span class="${verdict(it.predClean)}">${mark(it.predClean)} ${escapeHtml(cls(it.predClean))}</span>${route(it.routeClean, false)}</dd>
<dt>attacked</dt><dd><span class="${verdict(it.predAdv)}">${mark(it.predAdv)} ${escapeHtml(cls(it.predAdv))}</span>${route(it.routeAdv, flipped)}</dd>
</dl>
</div>`;
    })
    .join("\n");
  const eps = g.epsText ?? (g.eps === null ? "?" : String(g.eps));
  return `<div class="gallery-file">
<h3>${escapeHtml(g.label)}: ${escapeHtml(g.attackName ?? g.attack)}, ${g.norm === "l2" ? "L2" : "L-inf"} eps ${escapeHtml(eps)}</h3>
<p class="sub">${g.items.length} of ${g.n} images shown · over all ${g.n}: clean accuracy ${pctText(g.cleanAccuracy)}, robust accuracy ${pctText(g.robustAccuracy)} · source ${escapeHtml(source)}${
    g.routes === "checkpoint"
      ? " · routes computed from the checkpoint's router"
      : g.routes === "file"
        ? " · routes from the file"
        : ""
  }</p>
<div class="tiles">${tiles}</div>
</div>`;
}

function renderSection(s: Section, colors: Record<ModelKind, string>): string {
  return `<section id="${s.id}" data-section="${s.id}">
<h2>${escapeHtml(s.title)}</h2>
<p class="intro">${escapeHtml(s.intro)}</p>
${s.notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`).join("\n")}
${s.tables.map((t) => renderTable(t, colors)).join("\n")}
${s.figures.map((f) => renderFigure(f, colors)).join("\n")}
${(s.gallery ?? []).map((g) => renderGallery(g.input, g.source)).join("\n")}
</section>`;
}

function renderNumbers(json: ReportJson, sectionTitles: Record<SectionId, string>): string {
  const sources = json.sources
    .map(
      (
        s,
      ) => `<tr id="source-${s.id}"><td>${s.id}</td><td>${escapeHtml(s.kind)}</td><td>${escapeHtml(s.label)}<br><code>${escapeHtml(s.path)}</code></td>
<td>${s.command === null ? "" : `<div class="cmd">${escapeHtml(s.command)}</div>`}${s.settings === null ? "" : `<div>${escapeHtml(s.settings)}</div>`}${
        s.command === null && s.settings === null ? "not recorded" : ""
      }</td><td>${escapeHtml(s.machine ?? "not recorded in the file")}</td></tr>`,
    )
    .join("\n");
  const rows = json.numbers
    .map(
      (n) =>
        `<tr><td>${escapeHtml(sectionTitles[n.section].split(":")[0] as string)}</td><td>${escapeHtml(n.subject)}</td><td>${escapeHtml(n.quantity)}</td><td class="num">${escapeHtml(
          n.display,
        )}</td><td><a href="#source-${n.source}">${n.source}</a></td></tr>`,
    )
    .join("\n");
  return `<section id="numbers" data-section="numbers">
<h2>Every number, and where it came from</h2>
<p class="intro">Each number on this page, with the file it was read from. The sources table gives the command that produced each file (or, where the file does not record its command line, the settings it records) and the machine it ran on. report.json beside this page holds the same numbers at full precision.</p>
<table><caption>Sources</caption><thead><tr><th>id</th><th>kind</th><th>file</th><th>command / settings</th><th>machine</th></tr></thead><tbody>
${sources}
</tbody></table>
<details${json.numbers.length <= 200 ? " open" : ""}><summary>${json.numbers.length} numbers</summary>
<table><thead><tr><th>section</th><th>subject</th><th>quantity</th><th>value</th><th>source</th></tr></thead><tbody>
${rows}
</tbody></table>
</details>
</section>`;
}

export function renderPage(p: PageInput): string {
  const { json } = p;
  const kinds = [...new Set([...json.training.map((t) => t.kind), ...json.models.map((m) => m.kind)])];
  const legend =
    kinds.length === 0
      ? ""
      : `<div class="legend-kinds">Model colours: ${kinds.map((k) => `<span>${dot(k, p.kindColors)}${escapeHtml(p.kindNames[k])}</span>`).join("")}</div>`;
  const nav = [
    ...p.sections.map((s) => `<a href="#${s.id}">${escapeHtml(p.sectionTitles[s.id].split(":")[0] as string)}</a>`),
    '<a href="#numbers">Every number</a>',
  ].join("");
  const missing =
    json.missing.length === 0
      ? ""
      : `<div class="missing" id="missing"><strong>Not in this report</strong><ul>${json.missing
          .map((m) => `<li>${escapeHtml(p.sectionTitles[m.section].split(":")[0] as string)}: ${escapeHtml(m.reason)}</li>`)
          .join("")}</ul></div>`;
  const who = p.subtitle.length === 0 ? "" : ` · ${p.subtitle.map(escapeHtml).join(", ")}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(p.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<header>
<h1>${escapeHtml(p.title)}</h1>
<p class="meta">${escapeHtml(json.generator)} · ${escapeHtml(json.createdAt.replace("T", " ").replace(/\.\d+Z$/, " UTC"))}${who}</p>
${legend}
</header>
<nav>${nav}</nav>
${missing}
${p.sections.map((s) => renderSection(s, p.kindColors)).join("\n")}
${renderNumbers(json, p.sectionTitles)}
<footer>Made by <code>rmoe report</code>. Plots: Vega-Lite, rendered to SVG when the report was written; the page loads nothing from the network.</footer>
</main>
</body>
</html>
`;
}
