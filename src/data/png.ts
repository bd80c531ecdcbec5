// A PNG decoder over node:zlib for the plain files datasets ship: 8-bit greyscale, RGB,
// grey+alpha or RGBA, no interlace, all five row filters, CRC-checked chunks. Anything
// else (palette, 16-bit, Adam7) is rejected with an error naming the file.
import { crc32, inflateSync } from "node:zlib";

export interface DecodedImage {
  width: number;
  height: number;
  /** Samples per pixel: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA. */
  channels: number;
  /** Row-major interleaved samples, height * width * channels bytes. */
  data: Uint8Array;
}

export class PngError extends Error {
  constructor(what: string, message: string) {
    super(`${what}: ${message}`);
    this.name = "PngError";
  }
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** Decodes a PNG; `what` (usually the file name) prefixes every error. */
export function decodePng(bytes: Uint8Array, what = "PNG"): DecodedImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8 || SIGNATURE.some((v, i) => buf[i] !== v)) throw new PngError(what, "not a PNG file (bad signature)");
  let p = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  let sawHeader = false;
  let sawEnd = false;
  const idat: Buffer[] = [];
  while (p < buf.length) {
    if (p + 12 > buf.length) throw new PngError(what, `truncated (chunk header at byte ${p} cut off)`);
    const len = buf.readUInt32BE(p);
    const type = buf.toString("latin1", p + 4, p + 8);
    if (p + 12 + len > buf.length) throw new PngError(what, `truncated (chunk ${type} at byte ${p} needs ${len} bytes)`);
    const crc = buf.readUInt32BE(p + 8 + len);
    if (crc32(buf.subarray(p + 4, p + 8 + len)) !== crc)
      throw new PngError(what, `corrupt chunk ${type} at byte ${p} (CRC mismatch)`);
    const body = buf.subarray(p + 8, p + 8 + len);
    p += 12 + len;
    if (type === "IHDR") {
      if (len !== 13) throw new PngError(what, "bad IHDR length");
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const depth = body[8] as number;
      const colour = body[9] as number;
      const compression = body[10] as number;
      const filter = body[11] as number;
      const interlace = body[12] as number;
      if (depth !== 8) throw new PngError(what, `unsupported bit depth ${depth} (only 8-bit)`);
      const ch = CHANNELS[colour];
      if (ch === undefined) throw new PngError(what, `unsupported colour type ${colour} (palette images are not supported)`);
      if (compression !== 0 || filter !== 0) throw new PngError(what, "unknown compression or filter method");
      if (interlace !== 0) throw new PngError(what, "interlaced (Adam7) PNGs are not supported");
      if (width === 0 || height === 0) throw new PngError(what, `empty image ${width}x${height}`);
      channels = ch;
      sawHeader = true;
    } else if (type === "IDAT") {
      if (!sawHeader) throw new PngError(what, "IDAT before IHDR");
      idat.push(body);
    } else if (type === "IEND") {
      sawEnd = true;
      break;
    } else if (((type.charCodeAt(0) as number) & 0x20) === 0) {
      throw new PngError(what, `unsupported critical chunk ${type}`);
    }
  }
  if (!sawHeader) throw new PngError(what, "no IHDR chunk");
  if (!sawEnd) throw new PngError(what, "truncated (no IEND chunk)");
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat));
  } catch (e) {
    throw new PngError(what, `corrupt image data (${e instanceof Error ? e.message : String(e)})`);
  }
  const stride = width * channels;
  if (raw.length !== height * (stride + 1)) {
    throw new PngError(what, `image data is ${raw.length} bytes, expected ${height * (stride + 1)} for ${width}x${height}`);
  }
  const out = new Uint8Array(height * stride);
  unfilter(raw, out, width, height, channels, what);
  return { width, height, channels, data: out };
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

function unfilter(raw: Uint8Array, out: Uint8Array, width: number, height: number, bpp: number, what: string): void {
  const stride = width * bpp;
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)] as number;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    switch (filter) {
      case 0:
        out.set(raw.subarray(src, src + stride), row);
        break;
      case 1:
        for (let i = 0; i < stride; i++) {
          const left = i >= bpp ? (out[row + i - bpp] as number) : 0;
          out[row + i] = ((raw[src + i] as number) + left) & 0xff;
        }
        break;
      case 2:
        for (let i = 0; i < stride; i++) {
          const up = y > 0 ? (out[prev + i] as number) : 0;
          out[row + i] = ((raw[src + i] as number) + up) & 0xff;
        }
        break;
      case 3:
        for (let i = 0; i < stride; i++) {
          const left = i >= bpp ? (out[row + i - bpp] as number) : 0;
          const up = y > 0 ? (out[prev + i] as number) : 0;
          out[row + i] = ((raw[src + i] as number) + ((left + up) >> 1)) & 0xff;
        }
        break;
      case 4:
        for (let i = 0; i < stride; i++) {
          const left = i >= bpp ? (out[row + i - bpp] as number) : 0;
          const up = y > 0 ? (out[prev + i] as number) : 0;
          const ul = y > 0 && i >= bpp ? (out[prev + i - bpp] as number) : 0;
          out[row + i] = ((raw[src + i] as number) + paeth(left, up, ul)) & 0xff;
        }
        break;
      default:
        throw new PngError(what, `corrupt image data (unknown filter type ${filter} on row ${y})`);
    }
  }
}
