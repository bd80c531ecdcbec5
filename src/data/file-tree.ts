// One view over the three ways a dataset arrives: an unpacked folder, a .tar(.gz) or a .zip.
// Paths are relative, with forward slashes; errors name the archive and the member.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Progress } from "./progress.js";
import { readTarFile } from "./tar.js";
import { ZipReader } from "./zip.js";

export interface FileTree {
  /** The folder or archive, for messages. */
  readonly origin: string;
  readonly kind: "folder" | "archive" | "zip";
  /** sha256 of the archive file when it was read whole (tar and zip), else null. */
  readonly sha256: string | null;
  /** Every kept file, as a relative path. */
  readonly paths: readonly string[];
  has(path: string): boolean;
  read(path: string): Promise<Buffer>;
  /** How to name a member in messages. */
  where(path: string): string;
  close(): void;
}

export interface OpenTreeOptions {
  /** Keep only paths for which this is true (the others are never read into memory). */
  keep?: (path: string) => boolean;
  progress?: Progress;
  signal?: AbortSignal;
}

function walk(dir: string, rel: string, keep: (p: string) => boolean, out: string[]): void {
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) walk(dir, r, keep, out);
    else if (e.isFile() && keep(r)) out.push(r);
  }
}

/** Opens a folder, a .tar/.tar.gz/.tgz or a .zip as a FileTree. */
export async function openTree(path: string, options: OpenTreeOptions = {}): Promise<FileTree> {
  const keep = options.keep ?? (() => true);
  if (!existsSync(path)) throw new Error(`${path}: no such file or folder`);
  if (statSync(path).isDirectory()) {
    const paths: string[] = [];
    walk(path, "", keep, paths);
    const set = new Set(paths);
    return {
      origin: path,
      kind: "folder",
      sha256: null,
      paths,
      has: (p) => set.has(p),
      read: (p) => readFile(join(path, p)),
      where: (p) => join(path, p),
      close() {},
    };
  }
  if (/\.zip$/i.test(path)) {
    const zip = ZipReader.open(path);
    const byName = new Map(zip.entries.filter((e) => !e.name.endsWith("/") && keep(e.name)).map((e) => [e.name, e]));
    const hash = createHash("sha256");
    options.progress?.start(`checksumming ${path}`, statSync(path).size, "B");
    let n = 0;
    for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) {
      hash.update(c as Buffer);
      n += (c as Buffer).length;
      options.progress?.update(n);
    }
    options.progress?.end();
    return {
      origin: path,
      kind: "zip",
      sha256: hash.digest("hex"),
      paths: [...byName.keys()],
      has: (p) => byName.has(p),
      read: async (p) => {
        const e = byName.get(p);
        if (e === undefined) throw new Error(`${path}: no member ${p}`);
        return zip.read(e);
      },
      where: (p) => `${path}:${p}`,
      close: () => zip.close(),
    };
  }
  if (!/\.(tar|tar\.gz|tgz)$/i.test(path)) throw new Error(`${path}: expected a folder, a .zip, a .tar or a .tar.gz`);
  const files = new Map<string, Buffer>();
  const hash = createHash("sha256");
  options.progress?.start(`reading ${path}`, statSync(path).size, "B");
  for await (const e of readTarFile(path, { onRead: (r) => options.progress?.update(r), onRaw: (c) => hash.update(c) })) {
    options.signal?.throwIfAborted();
    if (e.type === "file" && keep(e.name)) files.set(e.name, e.data);
  }
  options.progress?.end();
  return {
    origin: path,
    kind: "archive",
    sha256: hash.digest("hex"),
    paths: [...files.keys()],
    has: (p) => files.has(p),
    read: async (p) => {
      const b = files.get(p);
      if (b === undefined) throw new Error(`${path}: no member ${p}`);
      return b;
    },
    where: (p) => `${path}:${p}`,
    close: () => files.clear(),
  };
}

/** The tree seen from a sub-folder (prefix ending in "/", or "" for the root). */
export function subTree(tree: FileTree, prefix: string): FileTree {
  if (prefix === "") return tree;
  const paths = tree.paths.filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length));
  return {
    origin: tree.origin,
    kind: tree.kind,
    sha256: tree.sha256,
    paths,
    has: (p) => tree.has(prefix + p),
    read: (p) => tree.read(prefix + p),
    where: (p) => tree.where(prefix + p),
    close: () => tree.close(),
  };
}
