// Child processes for the test/dist tests: every rank is its own process, started here and
// killed in after() if a test left it running.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../src/dist/launch.js";
import { repoRoot } from "../helpers/paths.js";
import type { Task } from "./fixtures/rank.js";

export const RANK_JS = join(repoRoot, "dist", "test", "dist", "fixtures", "rank.js");
export const TORCH_RANK_PY = join(repoRoot, "test", "dist", "fixtures", "torch_rank.py");
export const MAIN_JS = join(repoRoot, "dist", "src", "cli", "main.js");

const live = new Set<ChildProcess>();

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  exit: Promise<Exit>;
}

export function start(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Running {
  const child = spawn(cmd, [...args], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let stderr = "";
  child.stdout?.resume();
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const exit = new Promise<Exit>((resolve) => {
    child.on("close", (code, signal) => {
      live.delete(child);
      resolve({ code, signal, stderr });
    });
  });
  return { child, exit };
}

export function startRank(task: Task): Running {
  return start(process.execPath, [RANK_JS, JSON.stringify(task)]);
}

export function startTorchRank(task: Omit<Task, "scenario"> & { scenario: "mixed" }): Running {
  return start("/usr/bin/python3", [TORCH_RANK_PY, JSON.stringify(task)]);
}

/** Kills every child a test left running (a failed assertion must not leave ranks behind). */
export function killAll(): void {
  for (const c of live) c.kill("SIGKILL");
  live.clear();
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function tcpStore(): Promise<{ tcp: string }> {
  return { tcp: `127.0.0.1:${await freePort()}` };
}

/** Waits until a file exists (a rank's "ready" line), at most timeoutMs. */
export async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!existsSync(path)) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Whether Debian's PyTorch (the reference) can be imported. */
export function torchAvailable(): boolean {
  return existsSync("/usr/bin/python3") && existsSync("/usr/lib/python3/dist-packages/torch/distributed/__init__.py");
}
