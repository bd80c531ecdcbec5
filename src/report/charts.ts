// The report's plots: Vega-Lite specs compiled with `vega-lite` and rendered to SVG strings in
// Node by `vega` (no browser, no canvas: `renderer: 'none'` then toSVG), so the page carries
// finished pictures and needs no script or network to show them.
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { KIND_NAMES, type ModelKind } from "./inputs.js";

// ---------------------------------------------------------------------------------------------
// Colours: one per model kind, the same in every plot (Tableau 10, which stays distinct in
// print and for the common colour-vision deficiencies better than most), and one per measure.

export const KIND_COLORS: Record<ModelKind, string> = {
  standard: "#4e79a7",
  "rt-er": "#e15759",
  dual: "#59a14f",
  jtdmoe: "#b07aa1",
  "pgd-at": "#f28e2b",
  trades: "#edc948",
  advmoe: "#76b7b2",
  other: "#9c755f",
};

/** Accuracy measures: clean (blue), whole-model attack (red), expert attack (orange), router attack (teal). */
export const MEASURE_COLORS = {
  clean: "#4c78a8",
  robust: "#e45756",
  expert: "#f58518",
  router: "#54a24b",
  train: "#9d9d9d",
} as const;

const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";

const CONFIG = {
  font: FONT,
  background: "white",
  padding: 8,
  view: { stroke: "#ddd" },
  axis: {
    labelFontSize: 11,
    titleFontSize: 12,
    titleFontWeight: 500 as const,
    titleColor: "#333",
    labelColor: "#444",
    gridColor: "#eee",
  },
  legend: {
    labelFontSize: 11,
    titleFontSize: 12,
    titleFontWeight: 500 as const,
    labelLimit: 320,
    orient: "bottom" as const,
    columns: 2,
  },
  header: { labelFontSize: 12, titleFontSize: 12, labelFontWeight: 600 as const },
  title: { fontSize: 13, fontWeight: 600 as const, anchor: "start" as const, color: "#222" },
};

const PERCENT = ".0%";

/** A legend under the plot, untitled (the entries say what they are), labels never cut. */
const SERIES_LEGEND = { orient: "bottom" as const, title: null, labelLimit: 0, columns: 2, symbolStrokeWidth: 2.5 };
/** The same in one column, for long labels beside a narrow plot (two plots must fit a row). */
const ONE_COLUMN = { ...SERIES_LEGEND, columns: 1 };

let chartCount = 0;

/**
 * Renders a Vega-Lite spec to an SVG string. Vega names its clip paths clip1, clip2, ... in
 * every picture; several pictures inline in one page would then share ids and clip each
 * other's marks, so every id (and every reference to it) gets a per-chart prefix.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const vegaSpec = compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new View(parse(vegaSpec), { renderer: "none" });
  // Numbered before the await: charts rendered concurrently still get their numbers in call order.
  const prefix = `c${++chartCount}-`;
  try {
    const svg = await view.toSVG();
    return svg
      .replace(/\bid="([^"]+)"/g, (_m, id: string) => `id="${prefix}${id}"`)
      .replace(/url\(#([^)]+)\)/g, (_m, id: string) => `url(#${prefix}${id})`)
      .replace(/href="#([^"]+)"/g, (_m, id: string) => `href="#${prefix}${id}"`)
      .replace(/^<svg /, '<svg role="img" ');
  } finally {
    view.finalize();
  }
}

// ---------------------------------------------------------------------------------------------
// Training curves.

export interface CurveRow {
  /** Epochs completed (fractional for step lines), or the step when epochs are unknown. */
  x: number;
  series: string;
  value: number;
}

export function lossSpec(rows: CurveRow[], xTitle: string, title: string): TopLevelSpec {
  return {
    title,
    width: 380,
    height: 220,
    data: { values: rows },
    mark: { type: "line", point: rows.length <= 40 ? { size: 30 } : false, strokeWidth: 1.8 },
    encoding: {
      x: { field: "x", type: "quantitative", title: xTitle, scale: { zero: false, nice: false }, axis: { format: "~g" } },
      y: { field: "value", type: "quantitative", title: "loss term", scale: { zero: false } },
      color: { field: "series", type: "nominal", title: "term", scale: { scheme: "tableau10" } },
    },
  };
}

/** Train accuracy (grey), validation SA (blue), validation RA (red): the same three colours for every run. */
export function accuracySpec(rows: CurveRow[], xTitle: string, title: string): TopLevelSpec {
  const series = [...new Set(rows.map((r) => r.series))];
  // Multi-level methods have a training accuracy per level: greys of different depth.
  const greys = [MEASURE_COLORS.train, "#555555", "#c4c4c4"];
  let grey = 0;
  const color = (s: string): string =>
    s.startsWith("validation SA")
      ? MEASURE_COLORS.clean
      : s.startsWith("validation RA")
        ? MEASURE_COLORS.robust
        : (greys[grey++ % greys.length] as string);
  return {
    title,
    width: 380,
    height: 220,
    data: { values: rows },
    mark: { type: "line", point: { size: 36 }, strokeWidth: 1.8 },
    encoding: {
      x: { field: "x", type: "quantitative", title: xTitle, scale: { zero: false, nice: false }, axis: { format: "~g" } },
      y: { field: "value", type: "quantitative", title: "accuracy", axis: { format: PERCENT }, scale: { domain: [0, 1] } },
      // Colour and dash share one legend (same field, same legend settings); a null legend on
      // either would drop the merged one.
      color: { field: "series", type: "nominal", scale: { domain: series, range: series.map(color) }, legend: ONE_COLUMN },
      strokeDash: {
        field: "series",
        type: "nominal",
        legend: ONE_COLUMN,
        scale: { domain: series, range: series.map((s) => (s.startsWith("train") ? [4, 3] : [1, 0])) },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Grouped horizontal bars: one group per model (RA-E / RA-R, route flips).

export interface BarRow {
  model: string;
  measure: string;
  value: number;
  /** A confidence interval, drawn as a whisker when given. */
  lower: number | null;
  upper: number | null;
}

export function groupedBarsSpec(
  rows: BarRow[],
  measures: { name: string; color: string }[],
  xTitle: string,
  options: { percent: boolean },
): TopLevelSpec {
  const models = [...new Set(rows.map((r) => r.model))];
  const used = measures.filter((m) => rows.some((r) => r.measure === m.name));
  const bar = 15;
  const withIntervals = rows.some((r) => r.lower !== null && r.upper !== null);
  const y = { field: "model", type: "nominal" as const, title: null, sort: models, axis: { labelLimit: 260, labelFontSize: 12 } };
  const yOffset = { field: "measure", type: "nominal" as const, sort: used.map((m) => m.name) };
  return {
    width: 520,
    height: models.length * (used.length * bar + 14),
    data: { values: rows },
    // The value label sits right of the whisker when there is one, so the two never overlap.
    transform: [{ calculate: "datum.upper != null ? datum.upper : datum.value", as: "labelAt" }],
    layer: [
      {
        mark: { type: "bar", height: bar - 2 },
        encoding: {
          y,
          yOffset,
          x: {
            field: "value",
            type: "quantitative",
            title: xTitle,
            scale: { domain: [0, 1] },
            axis: options.percent ? { format: PERCENT } : {},
          },
          color: {
            field: "measure",
            type: "nominal",
            title: null,
            scale: { domain: used.map((m) => m.name), range: used.map((m) => m.color) },
            legend: { orient: "bottom", columns: 1, labelLimit: 0 },
          },
        },
      },
      ...(withIntervals
        ? [
            {
              transform: [{ filter: "datum.lower != null && datum.upper != null" }],
              mark: { type: "rule" as const, color: "#333", strokeWidth: 1.2 },
              encoding: { y, yOffset, x: { field: "lower", type: "quantitative" as const }, x2: { field: "upper" } },
            },
          ]
        : []),
      {
        mark: { type: "text", align: "left", dx: 3, fontSize: 10, color: "#333" },
        encoding: {
          y,
          yOffset,
          x: { field: "labelAt", type: "quantitative" },
          text: { field: "value", type: "quantitative", format: options.percent ? ".1%" : ".3f" },
        },
      },
    ],
  };
}

/** Expert usage: one stacked bar per MoE, a segment per expert. */
export function usageSpec(rows: { model: string; expert: string; fraction: number; count: number }[]): TopLevelSpec {
  const models = [...new Set(rows.map((r) => r.model))];
  const experts = [...new Set(rows.map((r) => r.expert))];
  return {
    width: 520,
    height: models.length * 26,
    data: { values: rows },
    mark: { type: "bar", height: 20, stroke: "white", strokeWidth: 1 },
    encoding: {
      y: { field: "model", type: "nominal", title: null, sort: models, axis: { labelLimit: 260, labelFontSize: 12 } },
      x: {
        field: "fraction",
        type: "quantitative",
        title: "share of clean test images routed to each expert (top-1)",
        stack: "zero",
        scale: { domain: [0, 1] },
        axis: { format: PERCENT },
      },
      color: { field: "expert", type: "nominal", title: null, sort: experts, scale: { scheme: "set2" }, legend: { columns: 8 } },
      order: { field: "expert", type: "ordinal" },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The alpha trade-off and certified accuracy.

export interface TradeoffRow {
  /** 'sweep' rows are the dual model at one alpha; 'marker' rows are models placed beside it. */
  role: "sweep" | "marker";
  series: string;
  attack: string;
  alpha: number | null;
  sa: number;
  ra: number;
  text: string;
  /** Put the label above the symbol (the alpha = 0 end, whose label would otherwise sit on the curve). */
  labelAbove: boolean;
}

/** [min, max] of values padded a little and kept inside [0, 1], so no axis shows a negative accuracy. */
function paddedDomain(values: readonly number[]): [number, number] {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const pad = Math.max(0.02, 0.08 * (hi - lo));
  return [Math.max(0, lo - pad), Math.min(1, hi + pad)];
}

/**
 * SA against RA, one picture per attack: the sweep as a line of alpha points, the markers as
 * large symbols. Separate pictures rather than a Vega-Lite facet, so the page wraps them two
 * to a row at a readable size; the axes are shared (fitted to every panel's data) and the
 * legend is drawn once, under the first.
 */
export function tradeoffSpecs(rows: TradeoffRow[], series: { name: string; kind: ModelKind }[]): TopLevelSpec[] {
  const attacks = [...new Set(rows.map((r) => r.attack))];
  const domain = series.map((s) => s.name);
  const range = series.map((s) => KIND_COLORS[s.kind]);
  const shapes = series.map((_s, i) =>
    i === 0 ? "circle" : ["diamond", "square", "triangle-up", "cross", "triangle-down", "wedge"][(i - 1) % 6],
  );
  const x = {
    field: "ra",
    type: "quantitative" as const,
    title: "robust accuracy (RA)",
    axis: { format: PERCENT },
    scale: { domain: paddedDomain(rows.map((r) => r.ra)), nice: false, zero: false },
  };
  const y = {
    field: "sa",
    type: "quantitative" as const,
    title: "clean accuracy (SA)",
    axis: { format: PERCENT },
    scale: { domain: paddedDomain(rows.map((r) => r.sa)), nice: false, zero: false },
  };
  const xMid = (x.scale.domain[0] + x.scale.domain[1]) / 2;
  return attacks.map((attack, panel) => {
    // Colour and shape share one legend (same field, same settings), so each model's entry shows its symbol.
    const legend = panel === 0 ? { orient: "bottom" as const, columns: 2, title: null, labelLimit: 0, symbolSize: 120 } : null;
    const colour = { field: "series", type: "nominal" as const, scale: { domain, range }, legend };
    const shape = { field: "series", type: "nominal" as const, scale: { domain, range: shapes }, legend };
    return {
      title: attack === "worst case" ? "RA: worst case over the attacks" : `RA under ${attack}`,
      data: { values: rows.filter((r) => r.attack === attack) },
      width: 330,
      height: 270,
      layer: [
        {
          transform: [{ filter: "datum.role === 'sweep'" }],
          mark: { type: "line", strokeWidth: 2, opacity: 0.8 },
          encoding: { x, y, order: { field: "alpha", type: "quantitative" }, color: colour },
        },
        {
          transform: [{ filter: "datum.role === 'sweep'" }],
          mark: { type: "point", filled: true, size: 45, opacity: 1 },
          encoding: { x, y, color: colour, shape },
        },
        {
          // Alpha labels below-left of the points: the inside of the (concave) curve is empty.
          transform: [{ filter: "datum.role === 'sweep'" }],
          mark: { type: "text", dx: -7, dy: 10, fontSize: 10, color: "#555", align: "right" },
          encoding: { x, y, text: { field: "text" } },
        },
        {
          transform: [{ filter: "datum.role === 'marker'" }],
          mark: { type: "point", filled: true, size: 170, stroke: "#222", strokeWidth: 1, opacity: 1 },
          encoding: { x, y, color: colour, shape },
        },
        // Marker labels: below or above (labelAbove), and on the side of the symbol facing the
        // middle of the plot, so no label runs past the plot's edge and widens the picture.
        ...(
          [
            [false, false],
            [false, true],
            [true, false],
            [true, true],
          ] as const
        ).map(([above, left]) => ({
          transform: [
            { filter: `datum.role === 'marker' && ${above ? "" : "!"}datum.labelAbove && datum.ra ${left ? ">" : "<="} ${xMid}` },
          ],
          mark: {
            type: "text" as const,
            dx: left ? -10 : 10,
            dy: above ? -11 : 12,
            fontSize: 11,
            fontWeight: 600 as const,
            align: left ? ("right" as const) : ("left" as const),
            color: "#222",
          },
          encoding: { x, y, text: { field: "text" } },
        })),
      ],
    };
  });
}

/** Certified accuracy of the sweep's dual models against alpha, a line per radius. */
export function certifiedAlphaSpec(rows: { alpha: number; eps: string; accuracy: number }[]): TopLevelSpec {
  return {
    width: 380,
    height: 240,
    data: { values: rows },
    mark: { type: "line", point: { size: 40 }, strokeWidth: 1.8 },
    encoding: {
      x: { field: "alpha", type: "quantitative", title: "alpha (weight of the robust member)", scale: { domain: [0, 1] } },
      y: {
        field: "accuracy",
        type: "quantitative",
        title: "certified accuracy",
        axis: { format: PERCENT },
        scale: { domain: [0, 1] },
      },
      color: { field: "eps", type: "nominal", title: "radius", scale: { scheme: "viridis" } },
    },
  };
}

export interface CertifyRow {
  model: string;
  eps: number;
  accuracy: number;
}

/** Certified accuracy against the radius, a line per model in its kind's colour (dashes tell two models of one kind apart). */
export function certifySpec(rows: CertifyRow[], models: { name: string; kind: ModelKind }[], epsTitle: string): TopLevelSpec {
  const domain = models.map((m) => m.name);
  const seen = new Map<ModelKind, number>();
  const dashes = models.map((m) => {
    const k = seen.get(m.kind) ?? 0;
    seen.set(m.kind, k + 1);
    return [
      [1, 0],
      [6, 3],
      [2, 2],
      [8, 3, 2, 3],
    ][k % 4] as number[];
  });
  return {
    width: 520,
    height: 280,
    data: { values: rows },
    mark: { type: "line", point: { size: 40 }, strokeWidth: 2.2 },
    encoding: {
      x: { field: "eps", type: "quantitative", title: epsTitle },
      y: {
        field: "accuracy",
        type: "quantitative",
        title: "certified accuracy",
        axis: { format: PERCENT },
        scale: { domain: [0, 1] },
      },
      color: {
        field: "model",
        type: "nominal",
        scale: { domain, range: models.map((m) => KIND_COLORS[m.kind]) },
        legend: SERIES_LEGEND,
      },
      strokeDash: { field: "model", type: "nominal", scale: { domain, range: dashes }, legend: SERIES_LEGEND },
    },
  };
}

/** The legend name of a kind, for explanations next to the plots. */
export function kindName(kind: ModelKind): string {
  return KIND_NAMES[kind];
}
