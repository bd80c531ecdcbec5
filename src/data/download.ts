// Getting files from the network: an HTTP download with short connect and idle timeouts
// (fails fast without internet), and `npm pack` of a registry package (no install, no scripts).
import { spawn } from "node:child_process";
import { open, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Progress } from "./progress.js";

export interface DownloadOptions {
  /** Milliseconds to wait for the response headers, and at most between two chunks (default 15000). */
  timeoutMs?: number;
  signal?: AbortSignal;
  progress?: Progress;
}

/** Downloads url to dest. Throws on HTTP errors, timeouts and aborts. */
export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<number> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const ctrl = new AbortController();
  const outer = options.signal;
  const onAbort = (): void => ctrl.abort(outer?.reason);
  outer?.addEventListener("abort", onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => ctrl.abort(new Error(`no data from ${url} in ${timeoutMs / 1000} s`)), timeoutMs);
  };
  try {
    arm();
    const res = await fetch(url, { signal: ctrl.signal });
    if (!res.ok || res.body === null) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
    const total = Number(res.headers.get("content-length") ?? Number.NaN);
    options.progress?.start(`downloading ${url}`, Number.isFinite(total) ? total : undefined, "B");
    const fh = await open(dest, "w");
    let got = 0;
    try {
      for await (const chunk of res.body) {
        arm();
        await fh.write(chunk);
        got += chunk.length;
        options.progress?.update(got);
      }
    } finally {
      await fh.close();
    }
    options.progress?.end();
    if (Number.isFinite(total) && got !== total) throw new Error(`${url}: got ${got} bytes, expected ${total}`);
    return got;
  } catch (e) {
    if (ctrl.signal.aborted && !(outer?.aborted ?? false)) throw ctrl.signal.reason instanceof Error ? ctrl.signal.reason : e;
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    if (cause !== undefined && !(outer?.aborted ?? false)) {
      throw new Error(`${url}: ${cause.code ?? cause.message ?? String(e)}`);
    }
    throw e;
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onAbort);
  }
}

/** `npm pack spec` into dir (the tarball only: nothing is installed, no scripts run); returns its path. */
export async function npmPack(
  spec: string,
  dir: string,
  options: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<string> {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const stderr: string[] = [];
  await new Promise<void>((resolvePack, reject) => {
    const child = spawn(npm, ["pack", spec, "--pack-destination", dir, "--ignore-scripts", "--loglevel=error"], {
      cwd: dir,
      stdio: ["ignore", "ignore", "pipe"],
      signal: options.signal,
      timeout: options.timeoutMs ?? 600_000,
    });
    child.stderr.on("data", (d: Buffer) => stderr.push(d.toString()));
    child.on("error", (e) => reject(new Error(`npm pack ${spec}: ${e.message}`)));
    child.on("close", (code, sig) => {
      if (code === 0) resolvePack();
      else
        reject(
          new Error(
            `npm pack ${spec} failed (${sig ?? `exit ${code}`}): ${stderr.join("").trim().split("\n").slice(-3).join(" ")}`,
          ),
        );
    });
  });
  const tgz = (await readdir(dir)).filter((f) => f.endsWith(".tgz"));
  if (tgz.length !== 1) throw new Error(`npm pack ${spec}: expected one .tgz in ${dir}, found ${tgz.length}`);
  return join(dir, tgz[0] as string);
}
