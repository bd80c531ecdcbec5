// The summary of `rmoe claims` against hand-written outputs in the documented formats (eval
// reports, docs/EVAL.md; sweep files, docs/SWEEP.md; certificates, docs/REPORT.md): means,
// sample std, per-seed values, verdicts computed from the numbers (including a sweep that
// violates monotonicity and one whose reversal lies inside the intervals), and "not run yet".
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import {
  type ClaimRow,
  type ClaimsOptions,
  claimsSettings,
  claimsStages,
  type ModelName,
  seedPaths,
  stageCommand,
} from "../../src/claims/plan.js";
import { monotone, stat } from "../../src/claims/stats.js";
import {
  type ClaimSummary,
  formatResultsTables,
  summarizeClaims,
  sweepVerdict,
  writeClaimsSummary,
} from "../../src/claims/summarize.js";

const root = mkdtempSync(join(tmpdir(), "rmoe-claims-sum-"));
after(() => rmSync(root, { recursive: true, force: true }));
const ALPHA = claimsSettings(false).alpha;

function put(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

const iv = (k: number, n: number) => ({ lower: Math.max(0, k / n - 0.05), upper: Math.min(1, k / n + 0.05) });
const acc = (k: number, n: number) => ({ correct: k, accuracy: k / n, interval: iv(k, n) });

interface EvalCounts {
  n: number;
  sa: number;
  ra: Record<string, number>;
  raE?: number;
  raR?: number;
  raRU?: number;
  raRT?: number;
  /** The per-sample worst case over every attack of the run (docs/EVAL.md `worstCase`). */
  worst?: number;
  usage?: number[];
}

/** An `rmoe eval --json` report (schema version 2) with the given counts. */
function evalReport(c: EvalCounts): unknown {
  const moeAttack = (k: number, runs: { id: string; correct: number }[]) => ({
    attack: "PGD-50 (linf, ce)",
    ...acc(k, c.n),
    moeAccuracy: k / c.n,
    moeCorrect: k,
    moeInterval: iv(k, c.n),
    routeFlipRate: 0.25,
    routeFlips: Math.round(c.n / 4),
    seconds: 1,
    runs: runs.map((r) => ({ ...r, attack: r.id, seconds: 1 })),
  });
  const usage = c.usage ?? [c.n / 4, c.n / 4, c.n / 4, c.n / 4];
  return {
    schema: "robust-moe.robustness-report",
    version: 2,
    source: { checkpoint: "/x/model.safetensors", dataset: "cifar10", split: "test" },
    model: { kind: "moe", type: "MoE", alpha: null, space: null, members: null },
    threatModel: { norm: "linf", eps: 8 / 255 },
    seed: 0,
    n: c.n,
    shard: null,
    confidence: { level: 0.95, method: "clopper-pearson" },
    classes: ["a", "b"],
    clean: acc(c.sa, c.n),
    attacks: Object.entries(c.ra).map(([spec, k]) => ({ spec, attack: spec, ...acc(k, c.n), seconds: 1 })),
    worstCase:
      c.worst === undefined ? null : { attacks: [...Object.keys(c.ra), "route-then-expert:model"], ...acc(c.worst, c.n) },
    perClass: [],
    moe:
      c.raE === undefined
        ? []
        : [
            {
              member: "model",
              attackedAlone: false,
              numExperts: usage.length,
              gating: "topk",
              k: 1,
              cleanAccuracy: c.sa / c.n,
              clean: acc(c.sa, c.n),
              routerObjective: "output",
              usage: { counts: usage },
              underAttack: [],
              expertAttack: moeAttack(c.raE, [{ id: "ra-e", correct: c.raE }]),
              routerAttack: moeAttack(c.raR ?? 0, [
                { id: "ra-r", correct: c.raRU ?? c.raR ?? 0 },
                { id: "ra-r-targeted", correct: c.raRT ?? c.raR ?? 0 },
              ]),
              adaptiveAttack: null,
            },
          ],
    zeroGradients: [],
    masking: null,
    certified: null,
    seconds: 3,
  };
}

/** An `rmoe sweep --out` file: points (alpha, SA, RA as fractions) and an optional JTDMoE marker. */
function sweepFile(n: number, pts: [number, number, number][], jtd?: { alpha: number; sa: number; ra: number }): unknown {
  return {
    kind: "sweep",
    schema: "robust-moe.sweep",
    version: 1,
    source: { standard: "s", robust: "r", dataset: "cifar10", split: "test" },
    space: "logits",
    threatModel: { norm: "linf", eps: 8 / 255 },
    attacks: ["pgd50"],
    seed: 0,
    certify: null,
    points: pts.map(([alpha, sa, ra]) => ({ alpha, n, sa: sa / n, ra: { pgd50: ra / n }, worst: ra / n, certified: null })),
    markers:
      jtd === undefined
        ? []
        : [
            {
              label: "JTDMoE",
              kind: "jtdmoe",
              alpha: jtd.alpha,
              sa: jtd.sa / n,
              ra: { pgd50: jtd.ra / n },
              worst: jtd.ra / n,
              certified: null,
            },
          ],
    seconds: 5,
  };
}

function certifyFile(method: string, norm: string, n: number, pts: [number, number][]): unknown {
  return {
    schema: "robust-moe.certify",
    version: 1,
    method,
    norm,
    data: { dataset: "cifar10", split: "test", n },
    settings: {},
    command: "rmoe certify ...",
    machine: null,
    curves: [{ model: "m", kind: "rt-er", checkpoint: null, points: pts.map(([eps, k]) => ({ eps, certifiedAccuracy: k / n })) }],
    cleanAccuracy: 0.5,
    seconds: 1,
  };
}

function options(name: string, rows: ClaimRow[], seeds = [0, 1, 2]): ClaimsOptions {
  return { out: join(root, name), seeds, rows, n: 500, aaN: 200, quick: false };
}
const claim = (sum: { claims: ClaimSummary[] }, row: ClaimRow) => sum.claims.find((c) => c.row === row) as ClaimSummary;
const close = (a: number | null, b: number, what: string) =>
  assert.ok(a !== null && Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

describe("claims summary", () => {
  it("stat: mean, sample std (n - 1), per-seed values with gaps", () => {
    const s = stat([0.1, null, 0.3, 0.2]);
    close(s.mean, 0.2, "mean");
    close(s.std, 0.1, "sample std");
    assert.equal(s.n, 3);
    assert.deepEqual(s.perSeed, [0.1, null, 0.3, 0.2]);
    assert.equal(stat([0.4]).std, null);
    assert.equal(stat([null]).mean, null);
  });

  it("claim 1: per-seed numbers, mean and sample std; holds when RA-E < RA-R in every seed; a missing seed is not run yet", () => {
    const o = options("c1", [1]);
    const raE = [10, 15, 20];
    const raR = [300, 280, 320];
    for (const seed of [0, 1])
      put(
        seedPaths(o.out, seed, ALPHA).eval("standard"),
        evalReport({
          n: 500,
          sa: 400,
          ra: { pgd50: 5 },
          worst: 3 + seed,
          raE: raE[seed],
          raR: raR[seed],
          raRU: (raR[seed] as number) + 20,
        }),
      );
    let sum = summarizeClaims(o);
    let c = claim(sum, 1);
    assert.equal(c.status, "holds");
    assert.deepEqual(c.seedsComplete, [0, 1]);
    assert.deepEqual(c.missing, ["seed 2: seed-2/eval-standard.json: not run yet"]);
    const [table] = c.tables;
    const cells = table?.rows[0]?.cells ?? [];
    const col = (label: string) => cells[table?.columns.findIndex((x) => x.label === label) ?? -1];
    assert.deepEqual(col("RA-E")?.perSeed, [0.02, 0.03, null]);
    close(col("RA-E")?.mean ?? null, 0.025, "RA-E mean");
    close(col("RA-E")?.std ?? null, Math.sqrt(2 * 0.005 ** 2), "RA-E sample std");
    assert.deepEqual(col("RA-R untargeted")?.perSeed, [0.64, 0.6, null]);
    assert.deepEqual(col("RA worst case")?.perSeed, [0.006, 0.008, null], "read from the report's worstCase");
    assert.match(c.verdict[0] as string, /RA-E < RA-R \(worst case\) in 2 of 2 seeds run, beyond the 95% intervals in 2/);
    assert.match(c.verdict.join("\n"), /RA-E 2\.5%, RA-R 58\.0%: met/);
    // The third seed shows RA-E above RA-R: no longer every seed.
    put(seedPaths(o.out, 2, ALPHA).eval("standard"), evalReport({ n: 500, sa: 400, ra: { pgd50: 5 }, raE: 60, raR: 50 }));
    sum = summarizeClaims(o);
    c = claim(sum, 1);
    assert.equal(c.status, "mixed");
    assert.deepEqual(c.missing, []);
    assert.match(c.verdict.join("\n"), /not met/);
  });

  it("claim 2: RT-ER against each baseline under PGD and AutoAttack, with the SA gap", () => {
    const o = options("c2", [2], [0, 1]);
    const models: ModelName[] = ["rt-er", "pgd-at", "trades", "advmoe"];
    const sa = { "rt-er": 300, "pgd-at": 310, trades: 290, advmoe: 200 } as Record<ModelName, number>;
    const ra = { "rt-er": 150, "pgd-at": 120, trades: 130, advmoe: 100 } as Record<ModelName, number>;
    for (const seed of [0, 1])
      for (const m of models) {
        const p = seedPaths(o.out, seed, ALPHA);
        put(
          p.eval(m),
          evalReport({ n: 500, sa: sa[m] + seed, ra: { pgd50: ra[m] + seed }, worst: ra[m] - 10, raE: 100, raR: 100 }),
        );
        put(p.evalAa(m), evalReport({ n: 200, sa: 120, ra: { aa: Math.round((ra[m] * 2) / 5) } }));
      }
    let c = claim(summarizeClaims(o), 2);
    assert.equal(c.status, "holds");
    assert.equal(c.verdict.length, 3);
    assert.match(
      c.verdict[0] as string,
      /RT-ER vs PGD-AT MoE: SA: −2\.0 ± 0\.0 points .*\(comparable SA\); RA pgd50: \+6\.0 ± 0\.0 points \(RT-ER higher in 2 of 2 seeds/,
    );
    assert.match(c.verdict[2] as string, /AdvMoE: SA: \+20\.0 ± 0\.0 points .*SA NOT comparable/);
    const table = c.tables[0];
    const column = (label: string) => table?.columns.findIndex((x) => x.label === label) ?? -1;
    assert.deepEqual(
      table?.rows.map((r) => r.cells[column("RA aa")]?.mean),
      models.map((m) => Math.round((ra[m] * 2) / 5) / 200),
    );
    assert.deepEqual(
      table?.rows.map((r) => r.cells[column("RA worst case")]?.mean),
      models.map((m) => (ra[m] - 10) / 500),
    );
    // The adaptive attack breaks RT-ER more than PGD-50 does: below PGD-AT's worst case in both
    // seeds, although above it under PGD-50 and AutoAttack, so the claim does not hold.
    for (const seed of [0, 1])
      put(
        seedPaths(o.out, seed, ALPHA).eval("rt-er"),
        evalReport({ n: 500, sa: 300 + seed, ra: { pgd50: 150 + seed }, worst: 60, raE: 100, raR: 100 }),
      );
    c = claim(summarizeClaims(o), 2);
    assert.equal(c.status, "does not hold");
    assert.match(c.verdict[0] as string, /RA worst case: −10\.0 ± 0\.0 points \(RT-ER lower in 2 of 2 seeds/);
    for (const seed of [0, 1])
      put(
        seedPaths(o.out, seed, ALPHA).eval("rt-er"),
        evalReport({ n: 500, sa: 300 + seed, ra: { pgd50: 150 + seed }, worst: 140, raE: 100, raR: 100 }),
      );
    assert.equal(claim(summarizeClaims(o), 2).status, "holds");
    // AutoAttack puts TRADES above RT-ER in both seeds: the claim does not hold.
    for (const seed of [0, 1])
      put(seedPaths(o.out, seed, ALPHA).evalAa("trades"), evalReport({ n: 200, sa: 120, ra: { aa: 90 } }));
    c = claim(summarizeClaims(o), 2);
    assert.equal(c.status, "does not hold");
    assert.match(c.verdict[1] as string, /RA aa: −15\.0 ± 0\.0 points \(RT-ER lower in 2 of 2 seeds/);
  });

  it("monotonicity: a clear violation, one inside the intervals, and a flat curve", () => {
    const n = 500;
    const clean = [
      { alpha: 0, accuracy: 0.8, n },
      { alpha: 0.5, accuracy: 0.6, n },
      { alpha: 1, accuracy: 0.4, n },
    ];
    assert.deepEqual(monotone(clean, -1).reversals, []);
    assert.ok(monotone(clean, -1).netBeyondNoise);
    // 0.60 -> 0.61 at n = 500: the wrong way, far inside the intervals.
    const noisy = [...clean.slice(0, 2), { alpha: 0.75, accuracy: 0.61, n }, { alpha: 1, accuracy: 0.4, n }];
    const m = monotone(noisy, -1);
    assert.equal(m.reversals.length, 1);
    assert.equal(m.violations.length, 0);
    // 0.60 -> 0.75: beyond the intervals.
    const bad = monotone([...clean.slice(0, 2), { alpha: 0.75, accuracy: 0.75, n }, { alpha: 1, accuracy: 0.4, n }], -1);
    assert.equal(bad.violations.length, 1);
    assert.deepEqual([bad.violations[0]?.from, bad.violations[0]?.to], [0.5, 0.75]);
    // Any pair counts, not only neighbours: a slow drift upwards over three steps.
    const drift = monotone(
      [0.5, 0.53, 0.56, 0.59].map((a, i) => ({ alpha: i / 3, accuracy: a, n: 1000 })),
      -1,
    );
    assert.equal(drift.violations.length, 1, "0 -> 1 rose by 9 points: beyond noise although no step is");
    assert.equal(
      sweepVerdict(
        [
          { alpha: 0, sa: 0.5, ra: 0.1 },
          { alpha: 1, sa: 0.49, ra: 0.11 },
        ],
        500,
      ).status,
      "partly",
    );
  });

  it("claims 3 and 4 from the sweep: holds, a violation, a reversal within noise, and JTDMoE at its own alpha", () => {
    const o = options("c34", [3, 4], [0, 1, 2]);
    const n = 500;
    const p = (seed: number) => seedPaths(o.out, seed, ALPHA).sweep;
    // seed 0: clean monotone; seed 1: SA 0.5 -> 0.75 goes up by 3 images (within noise).
    put(
      p(0),
      sweepFile(
        n,
        [
          [0, 400, 50],
          [0.25, 350, 100],
          [0.5, 300, 150],
          [0.75, 250, 200],
          [1, 200, 250],
        ],
        { alpha: 0.5, sa: 320, ra: 160 },
      ),
    );
    put(
      p(1),
      sweepFile(
        n,
        [
          [0, 410, 40],
          [0.25, 360, 90],
          [0.5, 300, 140],
          [0.75, 303, 190],
          [1, 210, 260],
        ],
        { alpha: 0.5, sa: 310, ra: 150 },
      ),
    );
    let sum = summarizeClaims(o);
    let c3 = claim(sum, 3);
    assert.equal(c3.status, "holds");
    assert.match(c3.verdict[1] as string, /^seed 1: holds: SA −40\.0 points .* 1 pair the wrong way, all within the intervals/);
    assert.deepEqual(c3.missing, ["seed 2: seed-2/sweep.json: not run yet"]);
    const t = c3.tables[0];
    assert.deepEqual(
      t?.rows.map((r) => r.label),
      ["alpha 0", "alpha 0.25", "alpha 0.5", "alpha 0.75", "alpha 1"],
    );
    close(t?.rows[0]?.cells[0]?.mean ?? null, 0.81, "SA at alpha 0, mean of 0.80 and 0.82");
    close(t?.rows[0]?.cells[0]?.std ?? null, Math.sqrt(2 * 0.01 ** 2), "its sample std");
    const c4 = claim(sum, 4);
    assert.equal(c4.status, "holds");
    assert.match(c4.verdict[0] as string, /SA: \+3\.0 ± 1\.4 points \(JTDMoE higher in 2 of 2 seeds/);
    assert.match(c4.tables[0]?.title ?? "", /alpha 0\.5/);
    // seed 2: RA falls from 0.5 to 0.75 by 20 points: a violation.
    put(
      p(2),
      sweepFile(
        n,
        [
          [0, 400, 50],
          [0.25, 350, 100],
          [0.5, 300, 250],
          [0.75, 250, 150],
          [1, 200, 260],
        ],
        { alpha: 0.5, sa: 280, ra: 240 },
      ),
    );
    sum = summarizeClaims(o);
    c3 = claim(sum, 3);
    assert.equal(c3.status, "does not hold");
    assert.match(c3.verdict[2] as string, /^seed 2: does not hold: .*RA .*beyond the intervals: 0\.5→0\.75 −20\.0/);
    assert.equal(claim(sum, 4).status, "mixed");
  });

  it("claim 4: a sweep without the marker, or without a point at JTDMoE's alpha, is reported", () => {
    const o = options("c4", [4], [0, 1]);
    put(
      seedPaths(o.out, 0, ALPHA).sweep,
      sweepFile(100, [
        [0, 80, 5],
        [1, 40, 30],
      ]),
    );
    put(
      seedPaths(o.out, 1, ALPHA).sweep,
      sweepFile(
        100,
        [
          [0, 80, 5],
          [1, 40, 30],
        ],
        { alpha: 0.5, sa: 60, ra: 20 },
      ),
    );
    const c = claim(summarizeClaims(o), 4);
    assert.equal(c.status, "not run yet");
    assert.deepEqual(c.missing, [
      "seed 0: seed-0/sweep.json: has no JTDMoE marker",
      "seed 1: the sweep has no point at JTDMoE's alpha 0.5: add it to --alphas",
    ]);
  });

  it("claim 5: certified accuracy per kind, model and radius", () => {
    const o = options("c5", [5], [0]);
    const p = seedPaths(o.out, 0, ALPHA);
    const linf: [number, number][] = [
      [1 / 255, 40],
      [8 / 255, 5],
    ];
    put(p.certify("ibp", "rt-er"), certifyFile("ibp", "linf", 100, linf));
    put(
      p.certify("ibp", "dual"),
      certifyFile("ibp", "linf", 100, [
        [1 / 255, 50],
        [8 / 255, 4],
      ]),
    );
    put(
      p.certify("ibp", "jtdmoe"),
      certifyFile("ibp", "linf", 100, [
        [1 / 255, 30],
        [8 / 255, 2],
      ]),
    );
    const c = claim(summarizeClaims(o), 5);
    assert.equal(c.status, "measured");
    assert.equal(c.tables.length, 4);
    const ibp = c.tables[0];
    assert.deepEqual(
      ibp?.columns.map((x) => x.label),
      ["L-inf 1/255", "L-inf 8/255"],
    );
    assert.deepEqual(
      ibp?.rows.map((r) => r.cells.map((x) => x?.mean)),
      [
        [0.4, 0.05],
        [0.5, 0.04],
        [0.3, 0.02],
      ],
    );
    assert.match(
      c.verdict[0] as string,
      /post-hoc dual model vs RT-ER MoE: higher in every seed at 1 of 2 radii, lower in every seed at 1/,
    );
    assert.match(
      c.verdict[0] as string,
      /JTDMoE dual model vs RT-ER MoE: higher in every seed at 0 of 2 radii, lower in every seed at 2/,
    );
    assert.equal(c.missing.length, 9, "three kinds x three models not run yet");
    assert.deepEqual(
      c.tables[1]?.rows.map((r) => r.cells.length),
      [0, 0, 0],
    );
  });

  it("claim 6: routers compared on SA and RA, and usage balance with and without load balancing", () => {
    const o = options("c6", [6], [0]);
    const p = seedPaths(o.out, 0, ALPHA);
    put(p.eval("standard"), evalReport({ n: 400, sa: 200, ra: { pgd50: 20 }, raE: 5, raR: 150, usage: [100, 100, 100, 100] }));
    put(p.eval("standard-nolb"), evalReport({ n: 400, sa: 190, ra: { pgd50: 15 }, raE: 5, raR: 150, usage: [400, 0, 0, 0] }));
    put(p.eval("standard-hard"), evalReport({ n: 400, sa: 150, ra: { pgd50: 10 }, raE: 5, raR: 150, usage: [200, 200, 0, 0] }));
    const c = claim(summarizeClaims(o), 6);
    assert.equal(c.status, "holds");
    const column = (label: string) => c.tables[0]?.columns.findIndex((x) => x.label === label) ?? -1;
    const balance = c.tables[0]?.rows.map((r) => r.cells[column("usage balance (0-1)")]?.mean);
    assert.deepEqual(balance, [1, 0, 0.5]);
    assert.match(c.verdict[2] as string, /usage balance higher with it in 1 of 1 seeds/);
    // Under the worst case of its evaluation the hard router holds more than one trainable router: mixed.
    put(
      p.eval("standard"),
      evalReport({ n: 400, sa: 200, ra: { pgd50: 20 }, worst: 4, raE: 5, raR: 150, usage: [100, 100, 100, 100] }),
    );
    put(
      p.eval("standard-hard"),
      evalReport({ n: 400, sa: 150, ra: { pgd50: 10 }, worst: 8, raE: 5, raR: 150, usage: [200, 200, 0, 0] }),
    );
    const mixed = claim(summarizeClaims(o), 6);
    assert.equal(mixed.status, "mixed");
    assert.match(mixed.verdict[0] as string, /RA worst case: −1\.0 points \(trainable lower in 1 of 1 seed,/);
    assert.deepEqual(
      mixed.tables[0]?.rows.map((r) => r.cells[column("RA worst case")]?.mean),
      [0.01, null, 0.02],
    );
  });

  it("nothing run: every claim 'not run yet', every cell too; an unreadable file names its problem", () => {
    const o = options("empty", [1, 2, 3, 4, 5, 6], [0, 1]);
    const sum = summarizeClaims(o);
    assert.deepEqual(
      sum.claims.map((c) => c.status),
      Array(6).fill("not run yet"),
    );
    const md = formatResultsTables(sum);
    assert.ok(!/\d+\.\d \(n=/.test(md), "no number is invented");
    assert.match(md, /\| standard MoE \| not run yet \| not run yet/);
    put(seedPaths(o.out, 0, ALPHA).eval("standard"), { schema: "robust-moe.robustness-report", version: 2 });
    const c1 = claim(summarizeClaims(o), 1);
    assert.match(c1.missing[0] as string, /^seed 0: seed-0\/eval-standard\.json: unreadable: .*model/);
  });

  it("writes claims.json and results-tables.md with the commands, and points out outputs made by another plan", () => {
    const o = options("write", [1], [0, 1]);
    const p = seedPaths(o.out, 0, ALPHA);
    put(p.eval("standard"), evalReport({ n: 500, sa: 400, ra: { pgd50: 5 }, raE: 10, raR: 300 }));
    const evalStage = claimsStages(o).find((s) => s.kind === "eval");
    put(join(o.out, "commands.json"), {
      version: 1,
      stages: { "seed-0/eval-standard.json": { command: "rmoe eval --n 100", lastRun: "rmoe eval --n 100", at: "t" } },
    });
    const sum = summarizeClaims(o);
    const files = writeClaimsSummary(sum);
    assert.ok(existsSync(files.json) && existsSync(files.tables));
    const json = JSON.parse(readFileSync(files.json, "utf8")) as { schema: string; claims: ClaimSummary[] };
    assert.equal(json.schema, "robust-moe.claims");
    const c = json.claims[0] as ClaimSummary;
    assert.equal(c.reproduce, `rmoe claims --out ${o.out} --rows 1 --seeds 0,1`);
    assert.ok(c.commands.some((k) => k.command === "rmoe eval --n 100" && k.ran));
    // Seed 0's training has no checkpoint, but its only reader is done: it counts as run (the
    // committed claims results keep the JSON, not the models). Seed 1's has not run.
    const trainOf = (seed: number) =>
      c.commands.find((k) => k.command.startsWith(`rmoe train --preset claims-cifar10 --method standard --set seed=${seed}`));
    assert.equal(trainOf(0)?.ran, true);
    assert.equal(trainOf(1)?.ran, false);
    // No .data-ready marker (it is not kept with the results), but a finished stage shows the
    // data was prepared where it ran.
    assert.equal(c.commands.find((k) => k.seed === null)?.ran, true);
    assert.match(c.notes.join("\n"), /eval-standard\.json was made by `rmoe eval --n 100`, not by this plan's `rmoe eval --ckpt/);
    const md = readFileSync(files.tables, "utf8");
    assert.match(md, /## Claim 1: A standard MoE: RA-E far below RA-R/);
    assert.match(md, /\*\*Verdict: holds\*\* \(1 of 2 seeds complete; one seed, no spread: indicative only\)\./);
    assert.match(md, /\| standard MoE \| 80\.0 \(n=1\) \[80\.0 \/ –\] \|/);
    assert.match(md, /# not run yet/);
    // The code block shows what made the file (the recorded command), not the plan's.
    assert.match(md, /\nrmoe eval --n 100\n/);
    assert.ok(evalStage !== undefined && !md.includes(`\n${stageCommand(evalStage)}\n`));
  });
});
