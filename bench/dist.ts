// `npm run bench -- dist`: c10d from Node against torch.distributed on the same machine.
//   allreduce  throughput of float32 allreduces of 10 to 100 MB between two local processes,
//              ours (src/dist over the addon's ProcessGroupGloo) against torch.distributed
//              (gloo), alternating sides for --rounds rounds; ratio = our throughput over
//              theirs (median of each side's per-size medians), target >= 0.9
//   overhead   the cost of data parallelism: a width-16 ResNet18 training step on a global
//              batch of --batch, 2 processes x 1 thread (DataParallel, allreduces started during
//              backward; also without that overlap) against 1 process x 2 threads (no
//              reference: both sides are ours)
// Both use the machine's cores; the load average is printed with every result.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../src/dist/launch.js";
import {
  type BenchOptions,
  benchEnv,
  type CustomBenchmark,
  log,
  machineInfo,
  median,
  printJson,
  referencePython,
  repoRoot,
} from "./harness.js";

const WORKER = join(repoRoot, "dist", "bench", "dist-worker.js");
const REFERENCE = join(repoRoot, "bench", "reference", "dist_allreduce.py");
const SIZES_MB = [10, 25, 50, 100];

function loadavg(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

/** Runs the commands together; resolves with rank 0's (the first command's) last stdout line as JSON. */
function runTogether(commands: { cmd: string; args: string[] }[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let out = "";
    let failed: string | null = null;
    let left = commands.length;
    for (const [i, c] of commands.entries()) {
      const child = spawn(c.cmd, c.args, { env, stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        if (i === 0) out += d;
      });
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        err += d;
      });
      child.on("close", (code) => {
        if (code !== 0 && failed === null) failed = `${c.cmd} ${c.args.slice(0, 2).join(" ")} exited ${code}: ${err.trim()}`;
        if (--left === 0) {
          if (failed !== null) reject(new Error(failed));
          else resolve(JSON.parse(out.trim().split("\n").pop() as string) as Record<string, unknown>);
        }
      });
    }
  });
}

async function oursAllreduce(opts: BenchOptions, reps: number, warmup: number, threads: number) {
  const store = `127.0.0.1:${await freePort()}`;
  const task = (rank: number) =>
    JSON.stringify({ kind: "allreduce", rank, worldSize: 2, store, threads, mb: SIZES_MB, reps, warmup });
  return runTogether(
    [0, 1].map((r) => ({ cmd: process.execPath, args: [WORKER, task(r)] })),
    { ...process.env, ...benchEnv(opts) },
  );
}

async function refAllreduce(opts: BenchOptions, reps: number, warmup: number, threads: number) {
  const store = `127.0.0.1:${await freePort()}`;
  const args = (rank: number) => [
    REFERENCE,
    "--rank",
    `${rank}`,
    "--world-size",
    "2",
    "--store",
    store,
    "--mb",
    SIZES_MB.join(","),
    "--reps",
    `${reps}`,
    "--warmup",
    `${warmup}`,
    "--threads",
    `${threads}`,
  ];
  return runTogether(
    [0, 1].map((r) => ({ cmd: referencePython, args: args(r) })),
    { ...process.env, ...benchEnv(opts) },
  );
}

/** MB/s per size: size over the median allreduce time. */
function throughput(r: Record<string, unknown>): Record<string, number> {
  const s = r.seconds as Record<string, number[]>;
  return Object.fromEntries(SIZES_MB.map((mb) => [String(mb), mb / median(s[String(mb)] ?? [])]));
}

async function stepTime(opts: BenchOptions, world: number, threads: number, steps: number, warmup: number, overlap = true) {
  const store = `127.0.0.1:${await freePort()}`;
  const task = (rank: number) =>
    JSON.stringify({
      kind: "step",
      rank,
      worldSize: world,
      store,
      threads,
      warmup,
      steps,
      batch: opts.batch,
      width: opts.width,
      overlap,
    });
  return runTogether(
    Array.from({ length: world }, (_, r) => ({ cmd: process.execPath, args: [WORKER, task(r)] })),
    { ...process.env, ...benchEnv(opts) },
  );
}

export const dist: CustomBenchmark = {
  name: "dist",
  description: "allreduce throughput (10-100 MB, 2 local processes) vs torch.distributed gloo; data-parallel step overhead",
  defaults(quick) {
    return quick ? { width: 16, batch: 32, rounds: 1, modes: ["allreduce", "overhead"] } : { width: 16, batch: 128, rounds: 3 };
  },
  async run(opts) {
    const modes = opts.modes ?? ["allreduce", "overhead"];
    printJson({ type: "machine", ...machineInfo() });
    if (modes.includes("allreduce")) {
      const reps = opts.steps ?? (opts.quick ? 2 : 5);
      const warmup = opts.warmup ?? 1;
      const ours: Record<string, number>[] = [];
      const ref: Record<string, number>[] = [];
      for (let round = 0; round < opts.rounds; round++) {
        const la = loadavg();
        log(`allreduce round ${round + 1}/${opts.rounds}: ours (load ${la})`);
        ours.push(throughput(await oursAllreduce(opts, reps, warmup, 1)));
        if (opts.reference) {
          log(`allreduce round ${round + 1}/${opts.rounds}: torch.distributed`);
          ref.push(throughput(await refAllreduce(opts, reps, warmup, 1)));
        }
      }
      const per: Record<string, unknown> = {};
      const ratios: number[] = [];
      for (const mb of SIZES_MB.map(String)) {
        const o = median(ours.map((r) => r[mb] as number));
        const t = opts.reference ? median(ref.map((r) => r[mb] as number)) : Number.NaN;
        per[mb] = { oursMBps: Math.round(o), torchMBps: Math.round(t), ratio: Math.round((o / t) * 1000) / 1000 };
        ratios.push(o / t);
      }
      printJson({
        type: "result",
        benchmark: "dist",
        mode: "allreduce",
        sizesMB: per,
        ratio: Math.round(median(ratios) * 1000) / 1000,
        rounds: opts.rounds,
        reps,
        loadavg: loadavg(),
      });
    }
    if (modes.includes("overhead")) {
      const steps = opts.steps ?? (opts.quick ? 2 : 5);
      const warmup = opts.warmup ?? 2;
      const single: number[] = [];
      const dp: number[] = [];
      const waits: number[] = [];
      const dpAfter: number[] = [];
      const waitsAfter: number[] = [];
      for (let round = 0; round < opts.rounds; round++) {
        log(`overhead round ${round + 1}/${opts.rounds}: 1 process x 2 threads (load ${loadavg()})`);
        single.push((await stepTime(opts, 1, 2, steps, warmup)).stepSeconds as number);
        log(`overhead round ${round + 1}/${opts.rounds}: 2 processes x 1 thread`);
        const r = await stepTime(opts, 2, 1, steps, warmup);
        dp.push(r.stepSeconds as number);
        waits.push(r.waitSeconds as number);
        log(`overhead round ${round + 1}/${opts.rounds}: 2 processes x 1 thread, allreduce after backward`);
        const a = await stepTime(opts, 2, 1, steps, warmup, false);
        dpAfter.push(a.stepSeconds as number);
        waitsAfter.push(a.waitSeconds as number);
      }
      const s = median(single);
      const d = median(dp);
      printJson({
        type: "result",
        benchmark: "dist",
        mode: "overhead",
        model: `resnet18 width ${opts.width}`,
        globalBatch: opts.batch,
        singleStepSeconds: Math.round(s * 10000) / 10000,
        dataParallelStepSeconds: Math.round(d * 10000) / 10000,
        overhead: Math.round((d / s - 1) * 1000) / 1000,
        gradientWaitSeconds: Math.round(median(waits) * 10000) / 10000,
        noOverlapStepSeconds: Math.round(median(dpAfter) * 10000) / 10000,
        noOverlapGradientWaitSeconds: Math.round(median(waitsAfter) * 10000) / 10000,
        rounds: opts.rounds,
        steps,
        loadavg: loadavg(),
      });
    }
  },
};
