// A minimal PNG encoder (8-bit greyscale or RGB, no filter) for the report's image gallery.
// The gallery's images are tiny (32x32 CIFAR-10), so compression hardly matters; writing them
// here keeps the report synchronous and byte-for-byte reproducible, and src/data/png.ts's
// decoder reads them back in the tests.
import { crc32, deflateSync } from "node:zlib";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes row-major interleaved 8-bit samples (channels 1: grey, 3: RGB) as a PNG file. */
export function encodePng(width: number, height: number, channels: 1 | 3, data: Uint8Array): Buffer {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new RangeError(`encodePng: bad size ${width}x${height}`);
  const row = width * channels;
  if (data.length !== row * height)
    throw new RangeError(`encodePng: ${data.length} samples for ${width}x${height}x${channels} (${row * height})`);
  // Each scanline starts with its filter type byte (0: none).
  const raw = Buffer.alloc((row + 1) * height);
  for (let y = 0; y < height; y++) raw.set(data.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = channels === 1 ? 0 : 2; // colour type: grey or RGB
  // bytes 10-12: deflate compression, adaptive filtering, no interlace (all 0)
  return Buffer.concat([SIGNATURE, chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

/** A data: URI for an image, for a page that must open without a network. */
export function pngDataUri(png: Buffer): string {
  return `data:image/png;base64,${png.toString("base64")}`;
}

/**
 * One image of an NCHW float tensor's values (in [0, 1]) as interleaved 8-bit samples:
 * round(v * 255), clamped, the rounding torchvision's ToPILImage uses.
 */
export function chwToBytes(
  values: ArrayLike<number>,
  offset: number,
  channels: number,
  height: number,
  width: number,
): Uint8Array {
  const plane = height * width;
  const out = new Uint8Array(plane * channels);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < plane; p++) {
      const v = Math.round((values[offset + c * plane + p] as number) * 255);
      out[p * channels + c] = Math.min(255, Math.max(0, v));
    }
  }
  return out;
}
