// CIFAR-10 (Krizhevsky 2009) from the official binary files, prepared by
// `rmoe data prepare cifar10` into <root>/cifar10/: data_batch_1..5.bin and test_batch.bin,
// each record one label byte then 1024 R, 1024 G and 1024 B bytes (32x32, row-major).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dataRoot, datasetDir, readManifest } from "./cache.js";
import { ArrayDataset, type ImageStorage, sharedBytes } from "./dataset.js";
import { digestBytes, IntegrityError } from "./integrity.js";

export const CIFAR10_CLASSES: readonly string[] = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];

export const CIFAR10_TRAIN_FILES = [
  "data_batch_1.bin",
  "data_batch_2.bin",
  "data_batch_3.bin",
  "data_batch_4.bin",
  "data_batch_5.bin",
];
export const CIFAR10_TEST_FILES = ["test_batch.bin"];
export const CIFAR10_FILES: readonly string[] = [...CIFAR10_TRAIN_FILES, ...CIFAR10_TEST_FILES];

/** Bytes per record: a label, then 3 x 32 x 32 pixels. */
export const CIFAR10_RECORD = 1 + 3 * 32 * 32;

/** What a prepared CIFAR-10 must be: the six files' MD5s and records per file. */
export interface Cifar10Spec {
  readonly md5: Readonly<Record<string, string>>;
  readonly imagesPerFile: number;
}

/** The official files (the same MD5s as torchvision's CIFAR10 list). */
export const CIFAR10_OFFICIAL: Cifar10Spec = {
  md5: {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
  },
  imagesPerFile: 10000,
};

export const CIFAR10_DIR = "cifar10";

export interface Cifar10Manifest {
  format: "rmoe-cifar10/1";
  /** True when the files carry the official MD5s. */
  official: boolean;
  imagesPerFile: number;
  files: Record<string, { bytes: number; md5: string }>;
  classes: string[];
  source: { kind: "folder" | "archive" | "download" | "npm"; detail: string; decoded: boolean };
  preparedAt: string;
  seconds: number;
}

export interface Cifar10Options {
  split?: "train" | "test";
  /** Cache root (default: $RMOE_DATA, else ~/.cache/robust-moe). */
  root?: string;
  /** Recompute the files' MD5s against the manifest while loading (about 0.3 s). */
  verify?: boolean;
}

function load(dir: string, split: "train" | "test", verify: boolean): ImageStorage {
  const manifest = readManifest<Cifar10Manifest>(dir);
  if (manifest === null) {
    throw new Error(`CIFAR-10 is not prepared under ${dir}: run \`rmoe data prepare cifar10\` (see docs/DATA.md)`);
  }
  const files = split === "train" ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES;
  const per = manifest.imagesPerFile;
  const n = per * files.length;
  const images = sharedBytes(n * 3072);
  const labels = new Int32Array(n);
  for (const [k, name] of files.entries()) {
    const path = join(dir, name);
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      throw new IntegrityError(path, "missing (prepare again with `rmoe data prepare cifar10 --force`)");
    }
    if (bytes.length !== per * CIFAR10_RECORD) {
      throw new IntegrityError(path, `${bytes.length} bytes, expected ${per * CIFAR10_RECORD}`);
    }
    const want = manifest.files[name]?.md5;
    if (verify && digestBytes(bytes, "md5") !== want) throw new IntegrityError(path, `MD5 does not match the manifest (${want})`);
    for (let r = 0; r < per; r++) {
      const i = k * per + r;
      const label = bytes[r * CIFAR10_RECORD] as number;
      if (label > 9) throw new IntegrityError(path, `record ${r} has label ${label}, outside 0..9`);
      labels[i] = label;
      images.set(bytes.subarray(r * CIFAR10_RECORD + 1, (r + 1) * CIFAR10_RECORD), i * 3072);
    }
  }
  return { images, labels, shape: [3, 32, 32] };
}

/** CIFAR-10 train (50,000) or test (10,000) images, 3 x 32 x 32 uint8, labels 0..9. */
export class Cifar10 extends ArrayDataset {
  readonly split: "train" | "test";
  readonly dir: string;

  constructor(options: Cifar10Options = {}) {
    const split = options.split ?? "train";
    if (split !== "train" && split !== "test")
      throw new TypeError(`Cifar10: split must be 'train' or 'test', got '${String(split)}'`);
    const dir = datasetDir(dataRoot(options.root), CIFAR10_DIR);
    super(load(dir, split, options.verify ?? false), CIFAR10_CLASSES);
    this.split = split;
    this.dir = dir;
  }
}
