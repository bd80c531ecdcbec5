// Batch assembly with augmentation on uint8 CHW images. Pure JS with no LibTorch
// dependency: it runs in loader workers and on the main thread alike, and a batch's
// bytes depend only on (seed, epoch, batch index, the images), so the worker count
// never changes what a batch holds.
import { mixSeed, Rng } from "./rng.js";

export interface AugmentOptions {
  /**
   * Random crop of size [h, w] (or h = w) from the image zero-padded by `padding` on every
   * side, like torchvision RandomCrop(size, padding). The offset is uniform over all
   * positions of the padded image.
   */
  crop?: { size: number | readonly [number, number]; padding?: number };
  /** Random translate: pad by this many pixels (zeros), then crop back to the original size. */
  translate?: number;
  /** Horizontal flip with probability 1/2. */
  flip?: boolean;
  /**
   * Cutout (DeVries & Taylor 2017): a square of this side, centred at a uniform random pixel
   * and clipped at the borders, is set to 0 in every channel. As in their code the square is
   * [cy - side/2, cy + side/2) with integer halving, so an even side is exact.
   */
  cutout?: number;
}

/** The validated form of AugmentOptions for one image shape. */
export interface AugmentPlan {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly outHeight: number;
  readonly outWidth: number;
  /** Zero padding on every side before cropping (0: no crop or translate). */
  readonly padding: number;
  /** Whether a random crop offset is drawn. */
  readonly crop: boolean;
  readonly flip: boolean;
  /** Cutout side, 0 for none. */
  readonly cutout: number;
}

function nonNegInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0) throw new TypeError(`augment: ${what} must be a non-negative integer, got ${v}`);
  return v;
}

export function makePlan(options: AugmentOptions, shape: readonly [number, number, number]): AugmentPlan {
  const [channels, height, width] = shape;
  if (options.crop !== undefined && options.translate !== undefined) {
    throw new TypeError("augment: give crop or translate, not both (translate is a crop back to the original size)");
  }
  let outHeight = height;
  let outWidth = width;
  let padding = 0;
  let crop = false;
  if (options.crop !== undefined) {
    const s = options.crop.size;
    [outHeight, outWidth] = typeof s === "number" ? [s, s] : [s[0], s[1]];
    nonNegInt(outHeight, "crop height");
    nonNegInt(outWidth, "crop width");
    padding = nonNegInt(options.crop.padding ?? 0, "crop padding");
    if (outHeight < 1 || outWidth < 1 || outHeight > height + 2 * padding || outWidth > width + 2 * padding) {
      throw new RangeError(`augment: crop ${outHeight}x${outWidth} does not fit a ${height}x${width} image padded by ${padding}`);
    }
    crop = true;
  } else if (options.translate !== undefined) {
    padding = nonNegInt(options.translate, "translate");
    crop = padding > 0;
  }
  const cutout = nonNegInt(options.cutout ?? 0, "cutout");
  return { channels, height, width, outHeight, outWidth, padding, crop, flip: options.flip === true, cutout };
}

/** Per-image random choices. */
export interface SampleDraw {
  /** Top-left of the crop in padded coordinates (0..H+2p-outH). */
  top: number;
  left: number;
  flip: boolean;
  /** Cutout centre in output coordinates, or -1. */
  cy: number;
  cx: number;
}

/** Draws one image's choices; the order of draws is fixed: crop, flip, cutout. */
export function drawSample(plan: AugmentPlan, rng: Rng): SampleDraw {
  let top = plan.padding;
  let left = plan.padding;
  if (plan.crop) {
    top = rng.int(plan.height + 2 * plan.padding - plan.outHeight + 1);
    left = rng.int(plan.width + 2 * plan.padding - plan.outWidth + 1);
  } else {
    // No crop: centre (for the identity plan, padding is 0 and sizes match).
    top = plan.padding + ((plan.height - plan.outHeight) >> 1);
    left = plan.padding + ((plan.width - plan.outWidth) >> 1);
  }
  const flip = plan.flip ? rng.float() < 0.5 : false;
  let cy = -1;
  let cx = -1;
  if (plan.cutout > 0) {
    cy = rng.int(plan.outHeight);
    cx = rng.int(plan.outWidth);
  }
  return { top, left, flip, cy, cx };
}

/**
 * Writes one augmented image (CHW, outHeight x outWidth) to dst at dstOffset from the CHW
 * image at srcOffset of src. Every output byte is written.
 */
export function applySample(
  src: Uint8Array,
  srcOffset: number,
  dst: Uint8Array,
  dstOffset: number,
  plan: AugmentPlan,
  d: SampleDraw,
): void {
  const { channels: C, height: H, width: W, outHeight: OH, outWidth: OW, padding: P } = plan;
  // Output (y, x) reads source (d.top + y - P, d.left + x' - P) with x' = flip ? OW-1-x : x.
  const sx0 = d.left - P; // source x of x' = 0
  const xa = Math.max(0, -sx0); // first x' inside the source
  const xb = Math.min(OW, W - sx0); // end of x' inside the source
  for (let c = 0; c < C; c++) {
    const srcPlane = srcOffset + c * H * W;
    const dstPlane = dstOffset + c * OH * OW;
    for (let y = 0; y < OH; y++) {
      const sy = d.top + y - P;
      const row = dstPlane + y * OW;
      if (sy < 0 || sy >= H || xb <= xa) {
        dst.fill(0, row, row + OW);
        continue;
      }
      const srow = srcPlane + sy * W + sx0;
      if (!d.flip) {
        if (xa > 0) dst.fill(0, row, row + xa);
        dst.set(src.subarray(srow + xa, srow + xb), row + xa);
        if (xb < OW) dst.fill(0, row + xb, row + OW);
      } else {
        for (let x = 0; x < OW; x++) {
          const xp = OW - 1 - x;
          dst[row + x] = xp >= xa && xp < xb ? (src[srow + xp] as number) : 0;
        }
      }
    }
  }
  if (d.cy >= 0) {
    const half = plan.cutout >> 1;
    const y1 = Math.min(Math.max(d.cy - half, 0), OH);
    const y2 = Math.min(Math.max(d.cy + half, 0), OH);
    const x1 = Math.min(Math.max(d.cx - half, 0), OW);
    const x2 = Math.min(Math.max(d.cx + half, 0), OW);
    for (let c = 0; c < C; c++) {
      const dstPlane = dstOffset + c * OH * OW;
      for (let y = y1; y < y2; y++) dst.fill(0, dstPlane + y * OW + x1, dstPlane + y * OW + x2);
    }
  }
}

/** The seed of batch b of epoch e: the only source of a batch's augmentation randomness. */
export function batchSeed(seed: number, epoch: number, batch: number): number {
  return mixSeed(seed, 0x41554721, epoch, batch);
}

/** Which positions of a batch one data-parallel rank keeps: offset, offset + stride, ... */
export interface BatchSelection {
  offset: number;
  stride: number;
}

/** How many of n positions a selection keeps. */
export function selectedCount(n: number, select: BatchSelection | null): number {
  return select === null ? n : Math.max(0, Math.ceil((n - select.offset) / select.stride));
}

/**
 * Assembles a batch: images at storage positions `indices` (each C*H*W bytes in `images`),
 * augmented by plan with randomness from (seed, epoch, batch), into out (NCHW uint8).
 * With `select`, `indices` is the whole batch and only the selected positions are written
 * (packed): every image is still drawn for, so a rank's images get exactly the augmentation
 * they get in the whole batch.
 */
export function assembleBatch(
  images: Uint8Array,
  indices: ArrayLike<number>,
  plan: AugmentPlan,
  seed: number,
  epoch: number,
  batch: number,
  out: Uint8Array,
  select: BatchSelection | null = null,
): void {
  const inSize = plan.channels * plan.height * plan.width;
  const outSize = plan.channels * plan.outHeight * plan.outWidth;
  const count = selectedCount(indices.length, select);
  if (out.length < count * outSize) throw new RangeError(`assembleBatch: output of ${out.length} bytes is too small`);
  const rng = new Rng(batchSeed(seed, epoch, batch));
  let j = 0;
  for (let k = 0; k < indices.length; k++) {
    const d = drawSample(plan, rng);
    if (select !== null && (k < select.offset || (k - select.offset) % select.stride !== 0)) continue;
    applySample(images, (indices[k] as number) * inSize, out, j * outSize, plan, d);
    j++;
  }
}
