// JPEG decoding through sharp (libvips over libjpeg-turbo), the decoder PIL and
// torchvision users get, so pixels match theirs exactly. sharp is loaded on first use:
// only preparing TinyImageNet needs it.
import type { Sharp, SharpOptions } from "sharp";

type SharpFactory = (input: Buffer, options?: SharpOptions) => Sharp;

let factory: SharpFactory | null = null;

async function loadSharp(): Promise<SharpFactory> {
  if (factory === null) {
    let mod: { default: SharpFactory & { cache(on: boolean): unknown; versions: Record<string, string | undefined> } };
    try {
      mod = (await import("sharp")) as unknown as typeof mod;
    } catch (e) {
      throw new Error(
        `decoding JPEGs needs the sharp package (npm install sharp): ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    mod.default.cache(false);
    factory = mod.default;
  }
  return factory;
}

/** "sharp X (libvips Y)", for manifests. */
export async function jpegDecoderName(): Promise<string> {
  const s = (await loadSharp()) as unknown as { versions: Record<string, string | undefined> };
  return `sharp ${s.versions.sharp ?? "?"} (libvips ${s.versions.vips ?? "?"}, libjpeg-turbo)`;
}

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, height * width * 3 bytes. */
  data: Buffer;
  /** The file was greyscale; its channel was copied to R, G and B (as PIL's convert("RGB")). */
  grey: boolean;
}

/** Number of colour components in a JPEG's frame header, or null when bytes are not a readable JPEG. */
export function jpegComponents(bytes: Uint8Array): number | null {
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  let p = 2;
  while (p + 4 <= bytes.length) {
    if (bytes[p] !== 0xff) return null;
    const m = bytes[p + 1] as number;
    if (m === 0xff) {
      p++;
      continue;
    }
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      p += 2;
      continue;
    }
    const len = ((bytes[p + 2] as number) << 8) | (bytes[p + 3] as number);
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): length, precision, height, width, components.
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc)
      return p + 9 < bytes.length ? (bytes[p + 9] as number) : null;
    if (m === 0xda || m === 0xd9) return null;
    p += 2 + len;
  }
  return null;
}

/** Decodes a JPEG (or any format sharp reads) to 8-bit RGB; `where` names the file in errors. */
export async function decodeRgb(bytes: Buffer, where: string): Promise<RgbImage> {
  const sharp = await loadSharp();
  let out: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    // failOn 'warning': a truncated or damaged file is an error, not silently grey blocks.
    // ignoreIcc: raw decoder output, no colour-profile transform (as PIL and torchvision).
    // A one-component JPEG is decoded as one channel and copied to R, G and B here.
    let pipeline = sharp(bytes, { failOn: "warning", ignoreIcc: true });
    if (jpegComponents(bytes) === 1) pipeline = pipeline.toColourspace("b-w");
    out = await pipeline.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new Error(`${where}: cannot decode image (${e instanceof Error ? e.message.trim() : String(e)})`);
  }
  const { width, height, channels } = out.info;
  if (channels === 3) return { width, height, data: out.data, grey: false };
  if (channels === 1) {
    const rgb = Buffer.allocUnsafe(width * height * 3);
    for (let i = 0; i < width * height; i++) {
      const v = out.data[i] as number;
      rgb[3 * i] = v;
      rgb[3 * i + 1] = v;
      rgb[3 * i + 2] = v;
    }
    return { width, height, data: rgb, grey: true };
  }
  throw new Error(`${where}: unsupported image with ${channels} channels (expected RGB or greyscale)`);
}
