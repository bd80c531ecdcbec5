// `--nproc N`: starts N local processes of the same command the way torchrun does (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT in their environment)
// and supervises them: when one fails, the others get a grace period to report their own
// error (a peer gone is an error in their next collective), then SIGTERM, then SIGKILL.
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { availableParallelism } from "node:os";

export interface LaunchOptions {
  /** The command line of one process (without the launch flags): node runs args[0] with the rest. */
  args: readonly string[];
  nproc: number;
  /** The whole world (default nproc: this machine alone). */
  worldSize?: number;
  /** The rank of this machine's first process (default 0). */
  firstRank?: number;
  masterAddr?: string;
  /** Default: a free port on this machine (only when this machine holds rank 0). */
  masterPort?: number;
  /** Intra-op threads per process (default: the cores divided among the local processes). */
  threadsPerProcess?: number;
  /** Milliseconds a failed run's other processes get to exit on their own (default 10000). */
  graceMs?: number;
  /** Where the children's output goes (default: inherited). */
  stdio?: "inherit" | "pipe";
  env?: NodeJS.ProcessEnv;
}

export interface LaunchResult {
  /** 0 when every process exited 0; else the first failure's code (1 for a signal). */
  code: number;
  /** Each process's exit code or signal, by local index. */
  exits: { rank: number; code: number | null; signal: NodeJS.Signals | null }[];
}

/** A port nothing listens on right now (the OS's choice); torchrun does the same. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const a = srv.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts the processes and resolves when all have exited. */
export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  const nproc = o.nproc;
  if (!Number.isInteger(nproc) || nproc < 1) throw new RangeError(`--nproc must be a positive integer, got ${nproc}`);
  const worldSize = o.worldSize ?? nproc;
  const firstRank = o.firstRank ?? 0;
  if (!Number.isInteger(worldSize) || worldSize < nproc)
    throw new RangeError(`--world-size (${worldSize}) must be at least --nproc (${nproc})`);
  if (!Number.isInteger(firstRank) || firstRank < 0 || firstRank + nproc > worldSize)
    throw new RangeError(`ranks ${firstRank}..${firstRank + nproc - 1} do not fit a world of ${worldSize}`);
  const masterAddr = o.masterAddr ?? "127.0.0.1";
  let masterPort = o.masterPort;
  if (masterPort === undefined) {
    if (firstRank !== 0) throw new RangeError("--master-port is needed when this machine does not hold rank 0");
    masterPort = await freePort(masterAddr);
  }
  const threads = o.threadsPerProcess ?? Math.max(1, Math.floor(availableParallelism() / nproc));
  const base = o.env ?? process.env;
  const children: ChildProcess[] = [];
  const exits: LaunchResult["exits"] = [];
  let firstFailure: number | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  const graceMs = o.graceMs ?? 10_000;

  const stopAll = (): void => {
    if (killTimer !== null) return;
    killTimer = setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
      killTimer = setTimeout(() => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
      }, 5000);
      killTimer.unref();
    }, graceMs);
    killTimer.unref();
  };
  const forward = (sig: NodeJS.Signals) => () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(sig);
  };
  const onInt = forward("SIGINT");
  const onTerm = forward("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  try {
    const done = Array.from({ length: nproc }, (_, i) => {
      const rank = firstRank + i;
      const env: NodeJS.ProcessEnv = {
        ...base,
        RANK: String(rank),
        WORLD_SIZE: String(worldSize),
        LOCAL_RANK: String(i),
        LOCAL_WORLD_SIZE: String(nproc),
        MASTER_ADDR: masterAddr,
        MASTER_PORT: String(masterPort),
        RMOE_NUM_THREADS: base.RMOE_NUM_THREADS ?? String(threads),
      };
      const child = spawn(process.execPath, [...o.args], { env, stdio: o.stdio ?? "inherit" });
      children.push(child);
      return new Promise<void>((resolve) => {
        child.on("exit", (code, signal) => {
          exits[i] = { rank, code, signal };
          if ((code !== 0 || signal !== null) && firstFailure === null) {
            firstFailure = code !== null && code !== 0 ? code : 1;
            stopAll();
          }
          resolve();
        });
        child.on("error", (e) => {
          exits[i] = { rank, code: null, signal: null };
          if (firstFailure === null) firstFailure = 1;
          process.stderr.write(`rmoe: rank ${rank}: cannot start: ${e.message}\n`);
          stopAll();
          resolve();
        });
      });
    });
    await Promise.all(done);
  } finally {
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
    if (killTimer !== null) clearTimeout(killTimer);
  }
  return { code: firstFailure ?? 0, exits };
}
