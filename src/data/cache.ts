// The data cache: where prepared datasets live, and how they get there atomically.
// A dataset is built in a staging folder beside its final place and renamed into place
// only once complete and verified, so an interrupted prepare never leaves a half dataset;
// the next prepare removes staging folders whose process is gone.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** --root, else $RMOE_DATA, else ~/.cache/robust-moe. */
export function dataRoot(root?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (root !== undefined && root !== "") return resolve(root);
  const fromEnv = env.RMOE_DATA;
  if (fromEnv !== undefined && fromEnv !== "") return resolve(fromEnv);
  return join(homedir(), ".cache", "robust-moe");
}

/** The folder of a prepared dataset. */
export function datasetDir(root: string, name: string): string {
  return join(root, name);
}

export const MANIFEST = "manifest.json";

/** The manifest of a prepared dataset, or null when the dataset is not there. */
export function readManifest<T>(dir: string): T | null {
  const p = join(dir, MANIFEST);
  if (!existsSync(p)) return null;
  return JSON.parse(readFileSync(p, "utf8")) as T;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const STAGING = /^\.(?:partial|old)-(.+)-(\d+)-[0-9a-f]+$/;

/** Removes staging folders of `name` left by processes that no longer run; returns them. */
export function removeStaleStaging(root: string, name: string): string[] {
  if (!existsSync(root)) return [];
  const removed: string[] = [];
  for (const e of readdirSync(root)) {
    const m = STAGING.exec(e);
    if (m === null || m[1] !== name) continue;
    const pid = Number(m[2]);
    if (pid !== process.pid && alive(pid)) continue;
    rmSync(join(root, e), { recursive: true, force: true });
    removed.push(e);
  }
  return removed;
}

export class Staging {
  readonly dir: string;
  readonly finalDir: string;
  private done = false;

  private constructor(dir: string, finalDir: string) {
    this.dir = dir;
    this.finalDir = finalDir;
  }

  /** A fresh staging folder for dataset `name` under root (stale ones are removed first). */
  static begin(root: string, name: string): Staging {
    mkdirSync(root, { recursive: true });
    removeStaleStaging(root, name);
    const tag = Math.floor(Math.random() * 0xffffffff)
      .toString(16)
      .padStart(8, "0");
    const dir = join(root, `.partial-${name}-${process.pid}-${tag}`);
    mkdirSync(dir);
    return new Staging(dir, datasetDir(root, name));
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** Moves the complete dataset into place, replacing an older copy. */
  publish(): string {
    if (this.done) throw new Error("Staging: already published or discarded");
    if (existsSync(this.finalDir)) {
      const old = this.dir.replace(/\.partial-([^/\\]+)$/, ".old-$1");
      renameSync(this.finalDir, old);
      renameSync(this.dir, this.finalDir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(this.dir, this.finalDir);
    }
    this.done = true;
    return this.finalDir;
  }

  /** Deletes the staging folder (after an error or an interruption). */
  discard(): void {
    if (this.done) return;
    this.done = true;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs build in a staging folder, publishing on success and discarding on any error. */
export async function staged<T>(root: string, name: string, build: (s: Staging) => Promise<T>): Promise<T> {
  const s = Staging.begin(root, name);
  try {
    const r = await build(s);
    s.publish();
    return r;
  } catch (e) {
    s.discard();
    throw e;
  }
}
