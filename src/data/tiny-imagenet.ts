// Tiny ImageNet (Stanford CS231n): 200 classes of 64x64 images, 500 train and 50 val each,
// prepared by `rmoe data prepare tinyimagenet --from ...` into <root>/tinyimagenet/ as
// uint8 NCHW image files, uint8 label files and manifest.json (counts, checksums, classes).
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { dataRoot, datasetDir, readManifest } from "./cache.js";
import { ArrayDataset, type ImageStorage, sharedBytes } from "./dataset.js";
import { digestBytes, IntegrityError } from "./integrity.js";

export const TINY_IMAGENET_DIR = "tinyimagenet";

/** sha256 of the tiny-imagenet-200.tar.gz this project ships in shared/data. */
export const TINY_IMAGENET_TARGZ_SHA256 = "c5b9028e99143cbe47c0eb99509daeb4bcb183ed3fe512a8c7c356d70969fe5b";

export interface TinyImageNetSplitInfo {
  count: number;
  perClass: number;
  /** Greyscale files converted to RGB. */
  greyscale: number;
  /** Per-channel mean of the pixels on the [0, 1] scale. */
  channelMean: [number, number, number];
  images: { file: string; bytes: number; sha256: string };
  labels: { file: string; bytes: number; sha256: string };
}

export interface TinyImageNetManifest {
  format: "rmoe-tinyimagenet/1";
  /** True for 200 classes x 500 train and 50 val at 64x64. */
  official: boolean;
  layout: "NCHW uint8";
  imageShape: [number, number, number];
  /** wnids in wnids.txt order: label k is classes[k]. */
  classes: string[];
  /** Human-readable names from words.txt ("" when absent). */
  classNames: string[];
  splits: { train: TinyImageNetSplitInfo; val: TinyImageNetSplitInfo };
  source: { kind: "folder" | "archive" | "zip"; path: string; sha256: string | null; knownArchive: boolean };
  decoder: string;
  preparedAt: string;
  seconds: number;
}

export interface TinyImageNetOptions {
  split?: "train" | "val";
  /** Cache root (default: $RMOE_DATA, else ~/.cache/robust-moe). */
  root?: string;
  /** Recompute the sha256 of the split's files against the manifest while loading (a few seconds for train). */
  verify?: boolean;
}

/** Reads a whole file into shared memory (files above 2 GiB need several reads). */
function readShared(path: string, bytes: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    throw new IntegrityError(path, "missing (prepare again with `rmoe data prepare tinyimagenet --force --from ...`)");
  }
  try {
    const size = fstatSync(fd).size;
    if (size !== bytes) throw new IntegrityError(path, `${size} bytes, expected ${bytes}${size < bytes ? " (truncated?)" : ""}`);
    const out = sharedBytes(bytes);
    let got = 0;
    while (got < bytes) {
      const r = readSync(fd, out, got, Math.min(1 << 30, bytes - got), got);
      if (r === 0) throw new IntegrityError(path, `ends after ${got} bytes, expected ${bytes}`);
      got += r;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

export function readTinyImageNetManifest(dir: string): TinyImageNetManifest {
  const m = readManifest<TinyImageNetManifest>(dir);
  if (m === null) {
    throw new Error(
      `TinyImageNet is not prepared under ${dir}: run \`rmoe data prepare tinyimagenet --from PATH\` (see docs/DATA.md)`,
    );
  }
  return m;
}

function load(dir: string, split: "train" | "val", verify: boolean): { storage: ImageStorage; manifest: TinyImageNetManifest } {
  const manifest = readTinyImageNetManifest(dir);
  const info = manifest.splits[split];
  const images = readShared(join(dir, info.images.file), info.images.bytes);
  const labelBytes = readFileSync(join(dir, info.labels.file));
  if (labelBytes.length !== info.count)
    throw new IntegrityError(join(dir, info.labels.file), `${labelBytes.length} bytes, expected ${info.count}`);
  if (verify) {
    if (digestBytes(images, "sha256") !== info.images.sha256)
      throw new IntegrityError(join(dir, info.images.file), "sha256 does not match the manifest");
    if (digestBytes(labelBytes, "sha256") !== info.labels.sha256)
      throw new IntegrityError(join(dir, info.labels.file), "sha256 does not match the manifest");
  }
  const labels = Int32Array.from(labelBytes);
  return { storage: { images, labels, shape: manifest.imageShape }, manifest };
}

/** TinyImageNet train (100,000) or val (10,000) images, 3 x 64 x 64 uint8, labels in wnids.txt order. */
export class TinyImageNet extends ArrayDataset {
  readonly split: "train" | "val";
  readonly dir: string;
  /** words.txt names of the classes (classes holds the wnids). */
  readonly classNames: readonly string[];
  readonly manifest: TinyImageNetManifest;

  constructor(options: TinyImageNetOptions = {}) {
    const split = options.split ?? "train";
    if (split !== "train" && split !== "val")
      throw new TypeError(`TinyImageNet: split must be 'train' or 'val', got '${String(split)}'`);
    const dir = datasetDir(dataRoot(options.root), TINY_IMAGENET_DIR);
    const { storage, manifest } = load(dir, split, options.verify ?? false);
    super(storage, manifest.classes);
    this.split = split;
    this.dir = dir;
    this.classNames = manifest.classNames;
    this.manifest = manifest;
  }
}
