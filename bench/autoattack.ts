// The AutoAttack benchmark: `aa` (our Ensemble.autoattack, standard version, as
// `rmoe eval --attacks aa` builds it) against the official AutoAttack (fra31/auto-attack,
// run_standard_evaluation, device 'cpu') on the same model, images, eps and thread count.
// The model is the PyTorch-trained reference CNN of test/fixtures/pgd_reference.safetensors
// (1x8x8 images, its own L-inf eps): both sides load the same weights and images.
//
// Each side is one child process (fresh state; this process stays idle while it runs, so
// the load printed beside the result is other people's). `ratio` = official seconds / ours.
// The official code is not part of this repository and the benchmark cannot download it:
// --official names the directory that holds its `autoattack` package.
//
// This file is also the worker for our side: `node dist/bench/autoattack.js --worker N T B`.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Ensemble } from "../src/attacks/ensemble.js";
import { buildAttack, parseAttackSpec } from "../src/eval/attack-spec.js";
import { loadSafetensors } from "../src/io/safetensors.js";
import { Conv2d, Flatten, Linear, ReLU, Sequential } from "../src/nn/index.js";
import { noGrad, scope, setNumThreads } from "../src/tensor/index.js";
import {
  BenchError,
  type BenchOptions,
  benchEnv,
  type CustomBenchmark,
  checkReference,
  log,
  machineInfo,
  median,
  printJson,
  referencePython,
  repoRoot,
  waitForIdle,
} from "./harness.js";

const FIXTURE = join(repoRoot, "test", "fixtures", "pgd_reference.safetensors");
const OFFICIAL_SCRIPT = join(repoRoot, "bench", "reference", "autoattack.py");
const DEFAULT_OFFICIAL = "/tmp/aa_official";
/** AutoAttack's run_standard_evaluation batch size (its default, and ours per run). */
const BATCH = 250;

/** One side's result line. */
interface SideRun {
  seconds: number;
  cleanAccuracy: number;
  robustAccuracy: number;
  threads: number;
  stages: { attack: string; robustAccuracy: number }[];
}

// ---- our side (worker) -------------------------------------------------------------------

/** test/fixtures/pgd_reference.py's CNN (same layer order, so the same state-dict names). */
function referenceCnn(): Sequential {
  return new Sequential(
    new Conv2d(1, 16, 3, { padding: 1 }),
    new ReLU(),
    new Conv2d(16, 32, 3, { stride: 2, padding: 1 }),
    new ReLU(),
    new Flatten(),
    new Linear(32 * 4 * 4, 10),
  );
}

/** Runs `aa` on the first n images in batches, as AutoAttack's bs; prints one JSON line. */
function worker(n: number, threads: number, batch: number): void {
  setNumThreads(threads);
  const { tensors, metadata } = loadSafetensors(FIXTURE);
  const xAll = tensors.get("x");
  const yAll = tensors.get("y");
  if (xAll === undefined || yAll === undefined) throw new BenchError(`${FIXTURE} lacks x or y`);
  tensors.delete("x");
  tensors.delete("y");
  const net = referenceCnn();
  net.loadStateDict(tensors);
  for (const t of tensors.values()) t.dispose();
  net.eval();
  const eps = Number(metadata.eps_linf);
  const total = Math.min(n, xAll.shape[0] as number);
  const attack = buildAttack(parseAttackSpec("aa"), net, { eps, norm: "linf", numClasses: 10 });
  let clean = 0;
  let robust = 0;
  // Robust samples after each stage, summed over the batches (each batch is one Ensemble run).
  const stageRobust = new Map<string, number>();
  const start = performance.now();
  for (let b = 0; b < total; b += batch) {
    const m = Math.min(batch, total - b);
    scope(() => {
      const x = xAll.narrow(0, b, m);
      const y = yAll.narrow(0, b, m);
      const adv = attack.run(x, y);
      noGrad(() => {
        clean += net.forward(x).argmax(1).eq(y).sum().item();
        robust += net.forward(adv).argmax(1).eq(y).sum().item();
      });
      if (attack instanceof Ensemble) {
        for (const st of attack.lastReport?.stages ?? []) {
          const name = st.attack.split(" ")[0] ?? st.attack;
          stageRobust.set(name, (stageRobust.get(name) ?? 0) + Math.round(st.robustAccuracy * m));
        }
      }
    });
  }
  const seconds = (performance.now() - start) / 1000;
  process.stdout.write(
    `${JSON.stringify({ seconds, cleanAccuracy: clean / total, robustAccuracy: robust / total, threads, stages: [...stageRobust].map(([a, r]) => ({ attack: a, robustAccuracy: r / total })) })}\n`,
  );
  xAll.dispose();
  yAll.dispose();
  net.dispose();
}

// ---- the comparison ---------------------------------------------------------------------------

function runSide(command: string, args: string[], env: Record<string, string>, what: string): Promise<SideRun> {
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
        reject(new BenchError(`${what} failed (exit ${code ?? signal}):\n${err.trim().slice(-4000)}\n${out.trim()}`.trim()));
        return;
      }
      resolvePromise(JSON.parse(last) as SideRun);
    });
  });
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

async function run(opts: BenchOptions): Promise<void> {
  const official = opts.official ?? DEFAULT_OFFICIAL;
  if (!existsSync(join(official, "autoattack", "autoattack.py"))) {
    throw new BenchError(
      `autoattack: the official AutoAttack code is not at ${official} (expected ${join(official, "autoattack", "autoattack.py")}). ` +
        "This benchmark cannot download it: get fra31/auto-attack yourself " +
        "(git clone https://github.com/fra31/auto-attack, or copy its autoattack/ folder) and pass " +
        "--official DIR, DIR being the folder that holds autoattack/. Keep it outside this repository.",
    );
  }
  const torchPy = checkReference(OFFICIAL_SCRIPT);
  const n = opts.n ?? (opts.quick ? 100 : 1000);
  const env = benchEnv(opts);
  const machine = machineInfo();
  log(
    `autoattack: ${n} images, threads ${opts.threads}, ${opts.rounds} round(s); ${machine.cpu}, ${machine.cores} cores, ` +
      `LibTorch ${machine.libtorch}, reference torch ${torchPy}; official code ${official}; env ${JSON.stringify(env)}`,
  );
  const self = fileURLToPath(import.meta.url);
  const ours: SideRun[] = [];
  const theirs: SideRun[] = [];
  let contended = false;
  for (let round = 0; round < opts.rounds; round++) {
    // Alternate which side goes first, so that a slow drift in the machine's load is shared.
    const order = round % 2 === 0 ? (["ours", "official"] as const) : (["official", "ours"] as const);
    for (const side of order) {
      const idle = await waitForIdle(opts.maxWait, opts.idleThreshold);
      if (!idle.idle) contended = true;
      const r =
        side === "ours"
          ? await runSide(
              process.execPath,
              [self, "--worker", `${n}`, `${opts.threads}`, `${BATCH}`],
              { ...env, RMOE_NUM_THREADS: `${opts.threads}` },
              "our aa",
            )
          : await runSide(
              referencePython,
              [OFFICIAL_SCRIPT, "--official", official, "--n", `${n}`, "--bs", `${BATCH}`, "--threads", `${opts.threads}`],
              env,
              "official AutoAttack",
            );
      (side === "ours" ? ours : theirs).push(r);
      log(
        `round ${round + 1}/${opts.rounds} ${side}: ${r.seconds.toFixed(1)} s, robust accuracy ${(100 * r.robustAccuracy).toFixed(1)}% ` +
          `(clean ${(100 * r.cleanAccuracy).toFixed(1)}%; loadavg ${machineInfo().loadavg})`,
      );
    }
  }
  const oursS = median(ours.map((r) => r.seconds));
  const theirsS = median(theirs.map((r) => r.seconds));
  printJson({
    bench: "autoattack",
    model: "reference-cnn-1x8x8",
    n,
    batch: BATCH,
    threads: opts.threads,
    rounds: opts.rounds,
    ours_s: round3(oursS),
    official_s: round3(theirsS),
    ratio: round3(theirsS / oursS),
    ours_robust_accuracy: ours[0]?.robustAccuracy,
    official_robust_accuracy: theirs[0]?.robustAccuracy,
    ours_stages: ours[0]?.stages,
    official_stages: theirs[0]?.stages,
    contended,
    loadavg: machineInfo().loadavg,
    cpu: machine.cpu,
    cores: machine.cores,
  });
}

export const autoattack: CustomBenchmark = {
  name: "autoattack",
  description: "`aa` (AutoAttack standard) vs the official fra31/auto-attack on the reference CNN: ratio = their time / ours",
  defaults(quick) {
    return { rounds: 1, ...(quick ? { n: 100 } : {}) };
  },
  run,
};

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1] && process.argv[2] === "--worker") {
  worker(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
}
