// Preparing TinyImageNet from the official tiny-imagenet-200.zip, a .tar.gz of the same
// tree, or the unpacked folder: JPEGs decoded by libjpeg-turbo (through sharp), greyscale
// files converted to RGB, labels in wnids.txt order (val labels from val_annotations.txt),
// written as NCHW uint8 with a manifest of counts and sha256 checksums.
import { createHash } from "node:crypto";
import { closeSync, openSync, writeFileSync, writeSync } from "node:fs";
import { resolve } from "node:path";
import { dataRoot, datasetDir, MANIFEST, readManifest, type Staging, staged } from "./cache.js";
import { type FileTree, openTree, subTree } from "./file-tree.js";
import { IntegrityError, verifyFile } from "./integrity.js";
import { decodeRgb, jpegDecoderName } from "./jpeg.js";
import { type Progress, silentProgress } from "./progress.js";
import {
  readTinyImageNetManifest,
  TINY_IMAGENET_DIR,
  TINY_IMAGENET_TARGZ_SHA256,
  type TinyImageNetManifest,
  type TinyImageNetSplitInfo,
} from "./tiny-imagenet.js";

/** The counts a prepared TinyImageNet must have. */
export interface TinyImageNetExpect {
  classes: number;
  trainPerClass: number;
  valPerClass: number;
  /** Image side in pixels. */
  size: number;
}

export const TINY_IMAGENET_OFFICIAL: TinyImageNetExpect = { classes: 200, trainPerClass: 500, valPerClass: 50, size: 64 };

export interface PrepareTinyImageNetOptions {
  /** tiny-imagenet-200.zip, a .tar.gz of the same tree, or the folder (or its parent). */
  from?: string;
  root?: string;
  force?: boolean;
  /** Expected counts (default: the official ones; tests use small synthetic sets). */
  expect?: TinyImageNetExpect;
  /** JPEGs decoded at once (default 16). */
  concurrency?: number;
  progress?: Progress;
  signal?: AbortSignal;
}

export interface TinyImageNetPrepareResult {
  dataset: string;
  dir: string;
  skipped: boolean;
  source: string;
  seconds: number;
  greyscale: { train: number; val: number };
  counts: { train: number; val: number; classes: number };
}

const KEEP = /(^|\/)(wnids\.txt|words\.txt|val\/val_annotations\.txt|val\/images\/[^/]+|train\/[^/]+\/images\/[^/]+)$/;
const IMAGE = /\.(jpe?g|png)$/i;

/** Orders "x_2.JPEG" before "x_10.JPEG". */
export function naturalCompare(a: string, b: string): number {
  const ra = a.split(/(\d+)/);
  const rb = b.split(/(\d+)/);
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i] as string;
    const y = rb[i] as string;
    if (x === y) continue;
    if (i % 2 === 1) return Number(x) - Number(y) || (x < y ? -1 : 1);
    return x < y ? -1 : 1;
  }
  return ra.length - rb.length;
}

interface Item {
  path: string;
  label: number;
}

function lines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
}

async function listSplits(tree: FileTree, expect: TinyImageNetExpect) {
  if (!tree.has("wnids.txt")) throw new Error(`${tree.where("wnids.txt")}: missing`);
  const wnids = lines((await tree.read("wnids.txt")).toString("utf8"));
  if (new Set(wnids).size !== wnids.length) throw new Error(`${tree.where("wnids.txt")}: repeated class ids`);
  if (wnids.length > 256)
    throw new Error(`${tree.where("wnids.txt")}: ${wnids.length} classes; labels are stored as uint8 (at most 256)`);
  if (wnids.length !== expect.classes)
    throw new Error(`${tree.where("wnids.txt")}: ${wnids.length} classes, expected ${expect.classes}`);
  const index = new Map(wnids.map((w, i) => [w, i]));

  const words = new Map<string, string>();
  if (tree.has("words.txt")) {
    for (const l of lines((await tree.read("words.txt")).toString("utf8"))) {
      const tab = l.indexOf("\t");
      if (tab > 0) words.set(l.slice(0, tab), l.slice(tab + 1).trim());
    }
  }

  const byClass = new Map<string, string[]>();
  const valFiles = new Set<string>();
  for (const p of tree.paths) {
    const m = /^train\/([^/]+)\/images\/([^/]+)$/.exec(p);
    if (m !== null && IMAGE.test(m[2] as string)) {
      const list = byClass.get(m[1] as string) ?? [];
      list.push(p);
      byClass.set(m[1] as string, list);
    } else if (/^val\/images\/[^/]+$/.test(p) && IMAGE.test(p)) valFiles.add(p.slice("val/images/".length));
  }
  for (const w of byClass.keys()) {
    if (!index.has(w)) throw new Error(`${tree.where(`train/${w}`)}: class folder not listed in wnids.txt`);
  }
  const train: Item[] = [];
  for (const [k, w] of wnids.entries()) {
    const list = byClass.get(w);
    if (list === undefined) throw new Error(`${tree.where(`train/${w}/images`)}: missing class folder`);
    if (list.length !== expect.trainPerClass) {
      throw new Error(`${tree.where(`train/${w}/images`)}: ${list.length} images, expected ${expect.trainPerClass}`);
    }
    list.sort(naturalCompare);
    for (const p of list) train.push({ path: p, label: k });
  }

  const annPath = "val/val_annotations.txt";
  if (!tree.has(annPath)) throw new Error(`${tree.where(annPath)}: missing`);
  const val: Item[] = [];
  const seen = new Set<string>();
  for (const [ln, l] of lines((await tree.read(annPath)).toString("utf8")).entries()) {
    const [file, wnid] = l.split(/\s+/);
    const label = index.get(wnid ?? "");
    if (file === undefined || label === undefined) {
      throw new Error(`${tree.where(annPath)}: line ${ln + 1} names class '${wnid ?? ""}', which is not in wnids.txt`);
    }
    if (seen.has(file)) throw new Error(`${tree.where(annPath)}: line ${ln + 1} repeats ${file}`);
    seen.add(file);
    if (!valFiles.has(file))
      throw new Error(`${tree.where(`val/images/${file}`)}: missing (listed in val_annotations.txt line ${ln + 1})`);
    val.push({ path: `val/images/${file}`, label });
  }
  val.sort((a, b) => naturalCompare(a.path, b.path));
  if (val.length !== expect.classes * expect.valPerClass) {
    throw new Error(`${tree.where(annPath)}: ${val.length} val images, expected ${expect.classes * expect.valPerClass}`);
  }
  const perClass = new Array<number>(wnids.length).fill(0);
  for (const v of val) perClass[v.label] = (perClass[v.label] as number) + 1;
  const bad = perClass.findIndex((c) => c !== expect.valPerClass);
  if (bad >= 0)
    throw new Error(
      `${tree.where(annPath)}: class ${wnids[bad]} has ${perClass[bad]} val images, expected ${expect.valPerClass}`,
    );
  return { wnids, classNames: wnids.map((w) => words.get(w) ?? ""), train, val };
}

async function writeSplit(
  name: "train" | "val",
  items: readonly Item[],
  tree: FileTree,
  s: Staging,
  o: { expect: TinyImageNetExpect; concurrency: number; progress: Progress; signal?: AbortSignal },
): Promise<TinyImageNetSplitInfo> {
  const side = o.expect.size;
  const plane = side * side;
  const imageBytes = 3 * plane;
  const imagesFile = `${name}-images.u8`;
  const labelsFile = `${name}-labels.u8`;
  const fd = openSync(s.path(imagesFile), "w");
  const hash = createHash("sha256");
  const sums = [0, 0, 0];
  let grey = 0;
  o.progress.start(`decoding ${name} images`, items.length, "images");
  try {
    const chunk = Buffer.allocUnsafe(o.concurrency * imageBytes);
    for (let start = 0; start < items.length; start += o.concurrency) {
      o.signal?.throwIfAborted();
      const part = items.slice(start, start + o.concurrency);
      const decoded = await Promise.all(part.map(async (it) => decodeRgb(await tree.read(it.path), tree.where(it.path))));
      for (const [k, img] of decoded.entries()) {
        const where = tree.where((part[k] as Item).path);
        if (img.width !== side || img.height !== side)
          throw new Error(`${where}: ${img.width}x${img.height}, expected ${side}x${side}`);
        if (img.grey) grey++;
        const base = k * imageBytes;
        const d = img.data;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        for (let p = 0; p < plane; p++) {
          const r = d[3 * p] as number;
          const g = d[3 * p + 1] as number;
          const b = d[3 * p + 2] as number;
          chunk[base + p] = r;
          chunk[base + plane + p] = g;
          chunk[base + 2 * plane + p] = b;
          s0 += r;
          s1 += g;
          s2 += b;
        }
        sums[0] = (sums[0] as number) + s0;
        sums[1] = (sums[1] as number) + s1;
        sums[2] = (sums[2] as number) + s2;
      }
      const bytes = chunk.subarray(0, decoded.length * imageBytes);
      writeSync(fd, bytes);
      hash.update(bytes);
      o.progress.update(start + part.length);
    }
  } finally {
    closeSync(fd);
  }
  o.progress.end();
  const labels = Uint8Array.from(items, (it) => it.label);
  writeFileSync(s.path(labelsFile), labels);
  const n = items.length;
  const mean = sums.map((v) => Math.round((v / (n * plane * 255)) * 1e6) / 1e6) as [number, number, number];
  return {
    count: n,
    perClass: n / o.expect.classes,
    greyscale: grey,
    channelMean: mean,
    images: { file: imagesFile, bytes: n * imageBytes, sha256: hash.digest("hex") },
    labels: { file: labelsFile, bytes: n, sha256: createHash("sha256").update(labels).digest("hex") },
  };
}

/** Checks a prepared TinyImageNet (sizes and sha256s of its four files); throws naming the first bad file. */
export async function verifyTinyImageNet(options: { root?: string; progress?: Progress } = {}): Promise<TinyImageNetManifest> {
  const dir = datasetDir(dataRoot(options.root), TINY_IMAGENET_DIR);
  const m = readTinyImageNetManifest(dir);
  const files = [m.splits.train.images, m.splits.train.labels, m.splits.val.images, m.splits.val.labels];
  options.progress?.start("verifying the cached TinyImageNet", files.length, "files");
  for (const [k, f] of files.entries()) {
    await verifyFile(`${dir}/${f.file}`, { bytes: f.bytes, digest: f.sha256, algorithm: "sha256" });
    options.progress?.update(k + 1);
  }
  options.progress?.end();
  return m;
}

function summary(m: TinyImageNetManifest, dir: string, skipped: boolean, seconds: number): TinyImageNetPrepareResult {
  return {
    dataset: "tinyimagenet",
    dir,
    skipped,
    source: `${m.source.kind} ${m.source.path}${m.source.knownArchive ? " (sha256 matches the known archive)" : ""}`,
    seconds,
    greyscale: { train: m.splits.train.greyscale, val: m.splits.val.greyscale },
    counts: { train: m.splits.train.count, val: m.splits.val.count, classes: m.classes.length },
  };
}

export async function prepareTinyImageNet(options: PrepareTinyImageNetOptions = {}): Promise<TinyImageNetPrepareResult> {
  const t0 = performance.now();
  const seconds = (): number => Math.round((performance.now() - t0) / 100) / 10;
  const expect = options.expect ?? TINY_IMAGENET_OFFICIAL;
  const progress = options.progress ?? silentProgress;
  const signal = options.signal;
  const root = dataRoot(options.root);
  const dir = datasetDir(root, TINY_IMAGENET_DIR);

  if (options.force !== true && readManifest<TinyImageNetManifest>(dir) !== null) {
    try {
      const m = await verifyTinyImageNet({ root, progress });
      return summary(m, dir, true, seconds());
    } catch (e) {
      progress.log(
        `the cached TinyImageNet fails verification (${e instanceof Error ? e.message : String(e)}); preparing it again`,
      );
    }
  }
  const from = options.from;
  if (from === undefined) {
    throw new Error(
      "TinyImageNet needs --from PATH: the official tiny-imagenet-200.zip, a .tar.gz of the same tree, or the unpacked folder",
    );
  }

  const manifest = await staged(root, TINY_IMAGENET_DIR, async (s) => {
    const whole = await openTree(from, { keep: (p) => KEEP.test(p), progress, signal });
    try {
      const roots = whole.paths.filter((p) => /(^|\/)wnids\.txt$/.test(p)).map((p) => p.slice(0, p.length - "wnids.txt".length));
      if (roots.length === 0) throw new Error(`${from}: no wnids.txt inside (is this Tiny ImageNet?)`);
      roots.sort((a, b) => a.length - b.length);
      const tree = subTree(whole, roots[0] as string);
      const { wnids, classNames, train, val } = await listSplits(tree, expect);
      const concurrency = options.concurrency ?? 16;
      const o = { expect, concurrency, progress, signal };
      const trainInfo = await writeSplit("train", train, tree, s, o);
      const valInfo = await writeSplit("val", val, tree, s, o);
      signal?.throwIfAborted();
      const m: TinyImageNetManifest = {
        format: "rmoe-tinyimagenet/1",
        official:
          expect.classes === TINY_IMAGENET_OFFICIAL.classes &&
          expect.trainPerClass === TINY_IMAGENET_OFFICIAL.trainPerClass &&
          expect.valPerClass === TINY_IMAGENET_OFFICIAL.valPerClass &&
          expect.size === TINY_IMAGENET_OFFICIAL.size,
        layout: "NCHW uint8",
        imageShape: [3, expect.size, expect.size],
        classes: wnids,
        classNames,
        splits: { train: trainInfo, val: valInfo },
        source: {
          kind: tree.kind,
          path: resolve(from),
          sha256: tree.sha256,
          knownArchive: tree.sha256 === TINY_IMAGENET_TARGZ_SHA256,
        },
        decoder: await jpegDecoderName(),
        preparedAt: new Date().toISOString(),
        seconds: seconds(),
      };
      writeFileSync(s.path(MANIFEST), `${JSON.stringify(m, null, 2)}\n`);
      // Read back what was written, so a bad disk cannot publish a dataset that fails later.
      const written = [trainInfo.images, trainInfo.labels, valInfo.images, valInfo.labels];
      progress.start("verifying the written files", written.length, "files");
      for (const [k, f] of written.entries()) {
        progress.update(k);
        try {
          await verifyFile(s.path(f.file), { bytes: f.bytes, digest: f.sha256, algorithm: "sha256" });
        } catch (e) {
          if (e instanceof IntegrityError) throw new IntegrityError(f.file, `written file fails its check: ${e.reason}`);
          throw e;
        }
      }
      progress.end();
      return m;
    } finally {
      whole.close();
    }
  });
  return summary(manifest, dir, false, seconds());
}
