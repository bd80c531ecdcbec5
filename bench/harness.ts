// Shared benchmark machinery: timing our step in a fresh worker process, running the
// PyTorch reference (../shared/reference/bench.py) beside it, alternating the two for
// several rounds, detecting other processes competing for the CPU, and printing JSON.
//
// Both sides run as child processes of this one, one process per measurement, so each
// starts from the same state (fresh heap, fresh oneDNN primitive cache), its peak RSS is
// its own, and this process stays idle while it measures: any CPU time on the machine
// that is not ours or our children's belongs to someone else (see measureContention).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { engineInfo, memoryStats, type Precision, setNumThreads, withPrecision } from "../src/index.js";
import { type ChannelsLastModel, resolveMemoryFormat } from "../src/nn/channels-last.js";
import type { Module } from "../src/nn/module.js";
import { native } from "../src/tensor/native.js";
import type { MemoryFormat } from "../src/tensor/tensor.js";

// ---- benchmark definitions ------------------------------------------------------------

export interface BenchOptions {
  batch: number;
  width: number;
  /** Intra-op threads of both sides. */
  threads: number;
  /** Alternating ours/reference rounds; the reported number is the median per side. */
  rounds: number;
  /** Timed steps per measurement (undefined: the benchmark's default for the mode). */
  steps: number | undefined;
  /** Untimed steps before them (undefined: the benchmark's default for the mode). */
  warmup: number | undefined;
  /** Modes to run (undefined: all of the benchmark's modes). */
  modes: string[] | undefined;
  /** PGD iterations of a training attack (undefined: the benchmark's default; only `train` reads it). */
  pgdSteps: number | undefined;
  /** Images to evaluate (undefined: the benchmark's default; only `autoattack` reads it). */
  n?: number | undefined;
  /** Directory holding the official code's package (only `autoattack` reads it). */
  official?: string | undefined;
  /** A model checkpoint (only `attack-precision` reads it). */
  ckpt?: string | undefined;
  quick: boolean;
  /** Seconds to wait for an idle machine before each measurement. */
  maxWait: number;
  /** Other processes' average CPU use (in cores) above which a measurement is contended. */
  idleThreshold: number;
  /** Re-measurements of a measurement that was contended although the machine was idle before it. */
  retries: number;
  /** Run the PyTorch reference (false: ours only, no ratio). */
  reference: boolean;
  /** Give the reference the glibc malloc settings our addon applies with mallopt at load. */
  matchMalloc: boolean;
  /** Count native calls per step and the time spent outside them (our side only). */
  profile: boolean;
  /**
   * Our side's arithmetic: fp32, or bf16 autocast (fp32 master weights). With bf16 or
   * channelsLast the reference runs twice: in its default fp32 NCHW (`ratio`) and with the
   * same settings (`ratioSameSettings`).
   */
  precision: Precision;
  /** Our model and batch channels-last (where nn/channels-last.ts allows it; else NCHW with a notice). */
  channelsLast: boolean;
}

/** One mode's step, built in the worker process that times it. */
export interface StepSetup {
  /** One step; it must free every tensor it creates (use scope()). */
  step(): void;
  /** Images (or samples) processed per step: throughput = itemsPerStep / step time. */
  itemsPerStep: number;
  /** Extra facts for the JSON line (parameter count, ...). */
  info?: Record<string, unknown>;
  /** Frees the model and optimizer state. */
  dispose?(): void;
  /**
   * The step applies opts.precision itself (e.g. through trainStep, as the Trainer does);
   * otherwise the harness runs the whole step under it, as bench.py does.
   */
  handlesPrecision?: boolean;
}

/**
 * A benchmark that times our step for each mode against a PyTorch script doing the same
 * work, alternating the two (compare() below does everything else).
 */
export interface ComparedBenchmark {
  readonly name: string;
  readonly description: string;
  readonly modes: readonly string[];
  /**
   * The Python script run as the reference, absolute path (default: ../shared/reference/bench.py).
   * It must print one JSON line with imgs_per_s, step_s, peak_rss_mb and threads, as bench.py.
   */
  readonly referenceScript?: string;
  /** Options this benchmark sets differently from the CLI defaults (quick: smoke-test size). */
  defaults(quick: boolean): Partial<BenchOptions>;
  /** Per-mode default timed steps and warmup (for modes whose step is much longer). */
  stepsFor(mode: string, opts: BenchOptions): { steps: number; warmup: number };
  /** Builds our step; runs in the worker process. */
  setup(mode: string, opts: BenchOptions): StepSetup;
  /** Arguments to the reference script (after its path) for the same work, or null: no reference. */
  referenceArgs(mode: string, opts: BenchOptions, steps: number, warmup: number): string[] | null;
  /** Extra fields for the per-mode result line. */
  describe?(mode: string, opts: BenchOptions): Record<string, unknown>;
}

/** A benchmark with its own runner (e.g. no per-step reference); it prints its own JSON lines. */
export interface CustomBenchmark {
  readonly name: string;
  readonly description: string;
  defaults?(quick: boolean): Partial<BenchOptions>;
  run(opts: BenchOptions): Promise<void>;
}

export type Benchmark = ComparedBenchmark | CustomBenchmark;

export function isCompared(b: Benchmark): b is ComparedBenchmark {
  return !("run" in b);
}

/** An error with a message meant for the user (no stack trace needed). */
export class BenchError extends Error {
  override name = "BenchError";
}

// ---- paths ---------------------------------------------------------------------------------

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = resolve(dir, "..");
    if (up === dir) throw new Error("bench: cannot find the repository root (no package.json above dist/bench)");
    dir = up;
  }
  return dir;
}

export const repoRoot = findRepoRoot();
/** ../shared beside the checkout: the reference scripts live there. */
export const sharedRoot = resolve(repoRoot, "..", "shared");
export const referenceScript = join(sharedRoot, "reference", "bench.py");
export const referencePython = "/usr/bin/python3";
const mainScript = join(dirname(fileURLToPath(import.meta.url)), "main.js");

// ---- logging and output --------------------------------------------------------------------

/** Progress goes to stderr; stdout carries only the JSON result lines. */
export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export function printJson(value: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

// ---- environment shared by both sides -------------------------------------------------------

/** The addon's load-time mallopt calls (native/runtime.cc), as glibc tunables for another process. */
const MATCHED_MALLOC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2000000000";

/**
 * The arguments every reference script takes for how it runs: intra-op threads, timed
 * steps and untimed warmup steps (bench.py and bench/reference/*.py alike).
 */
export function timingArgs(threads: number, steps: number, warmup: number): string[] {
  return ["--threads", `${threads}`, "--steps", `${steps}`, "--warmup", `${warmup}`];
}

/**
 * The environment knobs that change LibTorch's speed. Our addon sets OMP_WAIT_POLICY and
 * (on AVX-512 CPUs) ATEN_CPU_CAPABILITY in process.env before loading; this process has
 * loaded it, so its values are the ones our workers get, and the reference gets the same.
 */
export function benchEnv(opts: BenchOptions): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of [
    "OMP_WAIT_POLICY",
    "ATEN_CPU_CAPABILITY",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "GLIBC_TUNABLES",
    "MALLOC_CONF",
  ]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  if (opts.matchMalloc) env.GLIBC_TUNABLES = MATCHED_MALLOC;
  return env;
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  node: string;
  libtorch: string;
  parallel: string;
  loadavg: string;
}

export function machineInfo(): MachineInfo {
  let cpu = "unknown";
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m?.[1] !== undefined) cpu = m[1].trim();
  } catch {
    // not Linux
  }
  const info = engineInfo();
  const parallel = /ATen parallel backend: (\S+)/.exec(info.parallelInfo)?.[1] ?? "unknown";
  return {
    cpu,
    cores: availableParallelism(),
    node: process.version,
    libtorch: info.torchVersion,
    parallel,
    loadavg: readLoadavg(),
  };
}

function readLoadavg(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

// ---- contention detection ---------------------------------------------------------------------

interface CpuSample {
  /** Busy jiffies of all CPUs (user, nice, system, irq, softirq). */
  busy: number;
  /** All jiffies of all CPUs. */
  total: number;
  steal: number;
  /** This process's and its reaped children's CPU jiffies. */
  own: number;
  /** Minor page faults of this process's reaped children (a measurement's child, after it exits). */
  childFaults: number;
}

function sampleCpu(): CpuSample | null {
  try {
    const first = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    const v = first.trim().split(/\s+/).slice(1, 9).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
    const self = readFileSync("/proc/self/stat", "utf8");
    // Fields after "(comm)": state is field 3, cminflt 11, utime 14, stime 15, cutime 16, cstime 17.
    const f = self
      .slice(self.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    const own = (f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0);
    return {
      busy: user + nice + system + irq + softirq,
      total: user + nice + system + idle + iowait + irq + softirq + steal,
      steal,
      own,
      childFaults: f[8] ?? 0,
    };
  } catch {
    return null;
  }
}

/** Average cores used by other processes (and stolen by the hypervisor) between two samples. */
function otherCores(a: CpuSample | null, b: CpuSample | null): number {
  if (a === null || b === null) return 0;
  const elapsedPerCpu = (b.total - a.total) / availableParallelism();
  if (elapsedPerCpu <= 0) return 0;
  const others = b.busy - a.busy - (b.own - a.own) + (b.steal - a.steal);
  return Math.max(0, others / elapsedPerCpu);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Waits until other processes use less than `threshold` cores over a 2 s window, for at
 * most maxWait seconds. Returns whether the machine became idle, and how long it waited.
 */
export async function waitForIdle(maxWait: number, threshold: number): Promise<{ idle: boolean; waitedS: number; busy: number }> {
  const start = Date.now();
  let lastLog = 0;
  let busy = 0;
  for (;;) {
    const a = sampleCpu();
    await sleep(2000);
    busy = otherCores(a, sampleCpu());
    if (a === null || busy < threshold) return { idle: true, waitedS: (Date.now() - start) / 1000, busy };
    const waited = (Date.now() - start) / 1000;
    if (waited >= maxWait) return { idle: false, waitedS: waited, busy };
    if (Date.now() - lastLog > 30000) {
      log(
        `machine busy: other processes use ${busy.toFixed(2)} cores (loadavg ${readLoadavg()}); ` +
          `waiting for idle (${Math.round(waited)}/${maxWait} s)`,
      );
      lastLog = Date.now();
    }
  }
}

// ---- one measurement ------------------------------------------------------------------------------

/** What one side reports for one measurement (bench.py's field names). */
export interface SideResult {
  imgs_per_s: number;
  step_s: number[];
  peak_rss_mb: number;
  threads: number;
  [key: string]: unknown;
}

type Side = "ours" | "reference" | "referenceSame";

export interface Measurement extends SideResult {
  side: Side;
  contended: boolean;
  /** Average cores other processes used during the measurement. */
  other_cores: number;
  /** Minor page faults of the measuring process, start-up included (allocator behaviour). */
  page_faults: number | null;
  waited_s: number;
}

function runChild(command: string, args: string[], env: Record<string, string>, what: string): Promise<SideResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", (e) => reject(new BenchError(`${what}: cannot start ${command}: ${e.message}`)));
    child.on("close", (code, signal) => {
      const last = out.trim().split("\n").pop() ?? "";
      if (code !== 0 || !last.startsWith("{")) {
        reject(new BenchError(`${what} failed (exit ${code ?? signal}):\n${err.trim()}\n${out.trim()}`.trim()));
        return;
      }
      try {
        resolvePromise(JSON.parse(last) as SideResult);
      } catch (e) {
        reject(new BenchError(`${what}: cannot parse its result line ${JSON.stringify(last)}: ${(e as Error).message}`));
      }
    });
  });
}

/** Command-line options that reproduce opts in a worker. */
function workerArgs(opts: BenchOptions, steps: number, warmup: number): string[] {
  const args = ["--batch", `${opts.batch}`, "--width", `${opts.width}`, "--threads", `${opts.threads}`];
  args.push("--steps", `${steps}`, "--warmup", `${warmup}`);
  if (opts.pgdSteps !== undefined) args.push("--pgd-steps", `${opts.pgdSteps}`);
  if (opts.profile) args.push("--profile");
  if (opts.precision !== "fp32") args.push("--precision", opts.precision);
  if (opts.channelsLast) args.push("--channels-last");
  return args;
}

/** Whether the run compares against the reference's default fp32 NCHW and against its same settings. */
export function hasSameSettings(opts: BenchOptions): boolean {
  return opts.precision !== "fp32" || opts.channelsLast;
}

/** bench.py's flags for our precision and layout. */
export function sameSettingsArgs(opts: BenchOptions): string[] {
  return [
    ...(opts.precision !== "fp32" ? ["--precision", opts.precision] : []),
    ...(opts.channelsLast ? ["--channels-last"] : []),
  ];
}

/**
 * Our side's layout for a benchmark model: channels-last when asked for and allowed by the
 * crash table, else NCHW with the table's one-line notice (on stderr). Converts the model.
 */
export function applyLayout(model: Module, kind: ChannelsLastModel, opts: BenchOptions): MemoryFormat {
  const { format, notice } = resolveMemoryFormat(opts.channelsLast ? "channelsLast" : "contiguous", {
    model: kind,
    width: opts.width,
    precision: opts.precision,
  });
  if (notice !== null) log(notice);
  if (format === "channelsLast") model.to({ memoryFormat: "channelsLast" });
  return format;
}

/**
 * Runs one side once: waits for an idle machine, measures, and re-measures (up to
 * opts.retries times) when another process became busy during the measurement.
 */
async function measure(side: Side, run: () => Promise<SideResult>, opts: BenchOptions): Promise<Measurement> {
  for (let attempt = 0; ; attempt++) {
    const idle = await waitForIdle(opts.maxWait, opts.idleThreshold);
    const before = sampleCpu();
    const result = await run();
    const after = sampleCpu();
    const during = otherCores(before, after);
    const faults = before === null || after === null ? null : after.childFaults - before.childFaults;
    const contended = !idle.idle || during >= opts.idleThreshold;
    if (!contended || !idle.idle || attempt >= opts.retries) {
      return {
        ...result,
        side,
        contended,
        other_cores: round2(during),
        page_faults: faults,
        waited_s: Math.round(idle.waitedS),
      };
    }
    log(`${side}: other processes used ${during.toFixed(2)} cores during the measurement; measuring again`);
  }
}

// ---- the reference -------------------------------------------------------------------------------

let torchVersion: string | null = null;

/** Checks that the script exists and (once) that /usr/bin/python3 has torch; returns torch's version. */
export function checkReference(script: string = referenceScript): string {
  if (!existsSync(script)) {
    throw new BenchError(
      `bench: the PyTorch reference ${script} is missing` +
        (script === referenceScript ? ` (expected ../shared/reference beside the checkout ${repoRoot})` : "") +
        "; run with --no-reference to measure our side only",
    );
  }
  if (torchVersion !== null) return torchVersion;
  if (!existsSync(referencePython)) {
    throw new BenchError(`bench: ${referencePython} not found; the reference needs Debian's python3 with python3-torch`);
  }
  const r = spawnSync(referencePython, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new BenchError(
      `bench: ${referencePython} cannot import torch (apt-get install python3-torch libopenblas0-openmp; ` +
        `a python3 earlier on PATH does not count). Or run with --no-reference.\n${(r.stderr ?? "").trim()}`,
    );
  }
  torchVersion = r.stdout.trim();
  return torchVersion;
}

// ---- the comparison ------------------------------------------------------------------------------

export interface ModeResult {
  mode: string;
  ours: number;
  reference: number | null;
  ratio: number | null;
  /** ours / the reference with our precision and layout (null: the same as `ratio`'s run). */
  ratioSameSettings: number | null;
  contended: boolean;
}

/**
 * For each round and mode, measures ours and the reference back to back, alternating
 * which goes first, then prints one JSON line per mode and, last, the minimum ratio.
 */
export async function compare(bench: ComparedBenchmark, opts: BenchOptions): Promise<ModeResult[]> {
  const modes = opts.modes ?? [...bench.modes];
  for (const m of modes) {
    if (!bench.modes.includes(m))
      throw new BenchError(`bench ${bench.name}: unknown mode '${m}' (modes: ${bench.modes.join(", ")})`);
  }
  const script = bench.referenceScript ?? referenceScript;
  const torchPy = opts.reference ? checkReference(script) : null;
  const env = benchEnv(opts);
  // Ours gets the knobs our addon sets itself plus the thread count; the reference the same
  // knobs (without our malloc tunables unless --match-malloc) and --threads.
  const oursEnv: Record<string, string> = { ...env, RMOE_NUM_THREADS: `${opts.threads}` };
  if (opts.matchMalloc) delete oursEnv.GLIBC_TUNABLES;
  const machine = machineInfo();
  log(
    `${bench.name}: modes ${modes.join(", ")}; width ${opts.width}, batch ${opts.batch}, threads ${opts.threads}, ` +
      `${opts.rounds} round(s); ${machine.cpu}, ${machine.cores} cores, LibTorch ${machine.libtorch}` +
      (torchPy === null ? "" : `, reference torch ${torchPy}`) +
      `; env ${JSON.stringify(env)}`,
  );
  const results = new Map<string, Record<Side, Measurement[]>>();
  for (const m of modes) results.set(m, { ours: [], reference: [], referenceSame: [] });
  const same = hasSameSettings(opts);

  for (let round = 0; round < opts.rounds; round++) {
    for (const mode of modes) {
      const { steps, warmup } = resolveSteps(bench, mode, opts);
      const refArgs = opts.reference ? bench.referenceArgs(mode, opts, steps, warmup) : null;
      const runOurs = () =>
        measure(
          "ours",
          () =>
            runChild(
              process.execPath,
              [mainScript, bench.name, "--worker", mode, ...workerArgs(opts, steps, warmup)],
              oursEnv,
              `our ${bench.name}/${mode} worker`,
            ),
          opts,
        );
      const runRef = (side: "reference" | "referenceSame") => {
        const args = [script, ...(refArgs ?? []), ...(side === "referenceSame" ? sameSettingsArgs(opts) : [])];
        const label = `reference ${basename(script)} ${mode}${side === "referenceSame" ? ` ${sameSettingsArgs(opts).join(" ")}` : ""}`;
        return measure(side, () => runChild(referencePython, args, env, label), opts);
      };
      // Alternating order: each side goes first in some rounds, so a drifting machine does not
      // favour one of them.
      const all: Side[] = refArgs === null ? ["ours"] : same ? ["ours", "reference", "referenceSame"] : ["ours", "reference"];
      const sides = all.map((_, i) => all[(i + round) % all.length] as Side);
      for (const side of sides) {
        const r = side === "ours" ? await runOurs() : await runRef(side);
        results.get(mode)?.[side].push(r);
        log(
          `round ${round + 1}/${opts.rounds} ${mode} ${side}: ${r.imgs_per_s} img/s ` +
            `(steps ${r.step_s.join(", ")} s; peak RSS ${r.peak_rss_mb} MB; ${r.page_faults ?? "?"} page faults; threads ${r.threads}` +
            (r.contended ? `; CONTENDED, others used ${r.other_cores} cores` : "") +
            (typeof r.js_overhead_ms === "number"
              ? `; ${r.ops_per_step} native calls/step, ${r.js_overhead_ms} ms outside them`
              : "") +
            ")",
        );
      }
    }
  }

  const summary: ModeResult[] = [];
  for (const mode of modes) {
    const r = results.get(mode)!;
    const { steps, warmup } = resolveSteps(bench, mode, opts);
    const oursUsed = usable(r.ours);
    const refUsed = usable(r.reference);
    const sameUsed = usable(r.referenceSame);
    const ours = median(oursUsed.map((m) => m.imgs_per_s));
    const reference = refUsed.length > 0 ? median(refUsed.map((m) => m.imgs_per_s)) : null;
    const ratio = reference === null ? null : Math.round((ours / reference) * 1000) / 1000;
    const referenceSame = sameUsed.length > 0 ? median(sameUsed.map((m) => m.imgs_per_s)) : null;
    const ratioSameSettings = referenceSame === null ? null : Math.round((ours / referenceSame) * 1000) / 1000;
    const all = [...r.ours, ...r.reference, ...r.referenceSame];
    // Contended: the number of a side had to include a measurement disturbed by other processes.
    const contended = [...oursUsed, ...refUsed, ...sameUsed].some((m) => m.contended);
    const perRound = (refs: readonly Measurement[]) =>
      r.ours.flatMap((m, i) => {
        const ref = refs[i];
        return ref === undefined ? [] : [Math.round((m.imgs_per_s / ref.imgs_per_s) * 1000) / 1000];
      });
    const lastOurs = r.ours[r.ours.length - 1];
    printJson({
      bench: bench.name,
      mode,
      ours: round2(ours),
      reference: reference === null ? null : round2(reference),
      ratio,
      ...(same
        ? {
            referenceSameSettings: referenceSame === null ? null : round2(referenceSame),
            ratioSameSettings,
            sameSettings: sameSettingsArgs(opts).join(" "),
            referenceSameRounds: r.referenceSame.map((m) => m.imgs_per_s),
            ratioSameSettingsPerRound: perRound(r.referenceSame),
            referenceSameContendedRounds: r.referenceSame.flatMap((m, i) => (m.contended ? [i + 1] : [])),
          }
        : {}),
      precision: opts.precision,
      channelsLast: opts.channelsLast,
      oursLayout: lastOurs?.layout ?? null,
      ...(bench.describe?.(mode, opts) ?? {}),
      width: opts.width,
      batch: opts.batch,
      threads: opts.threads,
      rounds: opts.rounds,
      steps,
      warmup,
      oursRounds: r.ours.map((m) => m.imgs_per_s),
      referenceRounds: r.reference.map((m) => m.imgs_per_s),
      // ours/reference of each round's back-to-back pair: the spread shows the machine's noise.
      ratioPerRound: perRound(r.reference),
      oursContendedRounds: r.ours.flatMap((m, i) => (m.contended ? [i + 1] : [])),
      referenceContendedRounds: r.reference.flatMap((m, i) => (m.contended ? [i + 1] : [])),
      oursPeakRssMb: Math.max(...r.ours.map((m) => m.peak_rss_mb)),
      referencePeakRssMb: r.reference.length > 0 ? Math.max(...r.reference.map((m) => m.peak_rss_mb)) : null,
      // Minor page faults per measured process (start-up, warmup and timed steps): how often
      // the allocator hands out fresh pages instead of reusing warm ones.
      oursPageFaults: medianOrNull(r.ours.map((m) => m.page_faults)),
      referencePageFaults: medianOrNull(r.reference.map((m) => m.page_faults)),
      oursThreads: lastOurs?.threads ?? null,
      referenceThreads: r.reference[0]?.threads ?? null,
      leakedTensors: lastOurs?.leaked_tensors ?? null,
      ...(opts.profile && lastOurs !== undefined
        ? { opsPerStep: lastOurs.ops_per_step, jsOverheadMs: lastOurs.js_overhead_ms, nativeMs: lastOurs.native_ms }
        : {}),
      contended,
      otherCoresMax: Math.max(...all.map((m) => m.other_cores)),
      env,
      torch: torchPy,
      machine,
      date: new Date().toISOString(),
    });
    summary.push({ mode, ours, reference, ratio, ratioSameSettings: same ? ratioSameSettings : null, contended });
  }
  const ratios = summary.flatMap((s) => (s.ratio === null ? [] : [s.ratio]));
  const sameRatios = summary.flatMap((s) => (s.ratioSameSettings === null ? [] : [s.ratioSameSettings]));
  printJson({
    bench: bench.name,
    minRatio: ratios.length > 0 ? Math.min(...ratios) : null,
    ...(same ? { minRatioSameSettings: sameRatios.length > 0 ? Math.min(...sameRatios) : null } : {}),
    contended: summary.some((s) => s.contended),
    loadavg: readLoadavg(),
  });
  return summary;
}

function medianOrNull(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length > 0 ? median(known) : null;
}

/**
 * The measurements a side's number is the median of: the undisturbed ones when there are
 * any (a contended measurement is only slower, never faster, so it would bias the side it
 * happened to), else all of them (and the result is marked contended).
 */
function usable(ms: readonly Measurement[]): Measurement[] {
  const clean = ms.filter((m) => !m.contended);
  return clean.length > 0 ? clean : [...ms];
}

function resolveSteps(bench: ComparedBenchmark, mode: string, opts: BenchOptions): { steps: number; warmup: number } {
  const d = bench.stepsFor(mode, opts);
  return { steps: opts.steps ?? d.steps, warmup: opts.warmup ?? d.warmup };
}

// ---- the worker: times our step in this process ------------------------------------------------

interface CallProfile {
  calls: number;
  nativeNs: bigint;
}

/** Wraps every native entry point to count calls and the time spent inside them. */
function instrumentNative(): { profile: CallProfile; restore(): void } {
  const profile: CallProfile = { calls: 0, nativeNs: 0n };
  const binding = native as unknown as Record<string, unknown>;
  const saved = new Map<string, (...args: unknown[]) => unknown>();
  for (const [name, fn] of Object.entries(binding)) {
    if (typeof fn !== "function") continue;
    const original = fn as (...args: unknown[]) => unknown;
    saved.set(name, original);
    binding[name] = (...args: unknown[]) => {
      const t = process.hrtime.bigint();
      try {
        return original.apply(native, args);
      } finally {
        profile.nativeNs += process.hrtime.bigint() - t;
        profile.calls++;
      }
    };
  }
  return {
    profile,
    restore() {
      for (const [name, fn] of saved) binding[name] = fn;
    },
  };
}

/**
 * Times a benchmark mode in this process: warmup steps, then `steps` timed steps, and
 * prints one JSON line (bench.py's fields): median throughput, step times, peak RSS,
 * the tensors left alive by the steps (should be 0), and with --profile the native
 * calls per step and the wall time spent outside them (the binding's JS-side cost).
 */
export function runWorker(bench: ComparedBenchmark, mode: string, opts: BenchOptions): void {
  if (!bench.modes.includes(mode)) throw new Error(`bench ${bench.name}: unknown mode '${mode}'`);
  setNumThreads(opts.threads);
  const { steps, warmup } = resolveSteps(bench, mode, opts);
  const setup = bench.setup(mode, opts);
  // The whole step under the precision, as bench.py's `with precision(): step()`.
  const step = setup.handlesPrecision === true ? () => setup.step() : () => withPrecision(opts.precision, () => setup.step());
  // Tensors alive after the first step (warmup or timed) include state created once, such
  // as optimizer buffers; any growth after it is a leak.
  let liveAfterFirst: number | null = null;
  for (let i = 0; i < warmup; i++) {
    step();
    liveAfterFirst ??= memoryStats().liveTensors;
  }
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t = process.hrtime.bigint();
    step();
    times.push(Number(process.hrtime.bigint() - t) / 1e9);
    liveAfterFirst ??= memoryStats().liveTensors;
  }
  const leaked = memoryStats().liveTensors - (liveAfterFirst ?? 0);
  let profileFields: Record<string, number> = {};
  if (opts.profile) {
    const { profile, restore } = instrumentNative();
    const t = process.hrtime.bigint();
    step();
    const wallNs = process.hrtime.bigint() - t;
    restore();
    profileFields = {
      ops_per_step: profile.calls,
      native_ms: Math.round(Number(profile.nativeNs) / 1e4) / 100,
      js_overhead_ms: Math.round(Number(wallNs - profile.nativeNs) / 1e4) / 100,
    };
  }
  const med = median(times);
  const result: SideResult = {
    impl: "robust-moe",
    mode,
    batch: opts.batch,
    width: opts.width,
    ...(setup.info ?? {}),
    threads: engineInfo().threads,
    imgs_per_s: round2(setup.itemsPerStep / med),
    step_s: times.map((t) => Math.round(t * 1e4) / 1e4),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    leaked_tensors: leaked,
    ...profileFields,
  };
  setup.dispose?.();
  printJson(result);
}
