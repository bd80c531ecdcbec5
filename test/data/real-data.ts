// Where the real datasets are, and why a real-data test is skipped when they are not.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { dataRoot } from "../../src/data/cache.js";
import { sharedRoot } from "../helpers/paths.js";

export const root = dataRoot();

function reason(dir: string, command: string): string | false {
  return existsSync(join(root, dir, "manifest.json"))
    ? false
    : `not prepared under ${join(root, dir)} (run \`${command}\` or scripts/prepare-data.sh; CI prepares it)`;
}

export const cifarSkip = reason("cifar10", "rmoe data prepare cifar10");
export const tinySkip = reason("tinyimagenet", "rmoe data prepare tinyimagenet --from ../shared/data/tiny-imagenet-200.tar.gz");
export const tinyArchive = join(sharedRoot, "data", "tiny-imagenet-200.tar.gz");

/** Per-channel means on the [0, 1] scale of NCHW uint8 images. */
export function channelMeans(images: Uint8Array, channels: number, plane: number): number[] {
  const sums = new Array<number>(channels).fill(0);
  const n = images.length / (channels * plane);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      let s = 0;
      const base = (i * channels + c) * plane;
      for (let p = 0; p < plane; p++) s += images[base + p] as number;
      sums[c] = (sums[c] as number) + s;
    }
  }
  return sums.map((s) => s / (n * plane * 255));
}

/** Per-channel population standard deviations on the [0, 1] scale. */
export function channelStds(images: Uint8Array, channels: number, plane: number, means: readonly number[]): number[] {
  const sq = new Array<number>(channels).fill(0);
  const n = images.length / (channels * plane);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      let s = 0;
      const base = (i * channels + c) * plane;
      for (let p = 0; p < plane; p++) s += (images[base + p] as number) ** 2;
      sq[c] = (sq[c] as number) + s;
    }
  }
  return sq.map((s, c) => Math.sqrt(s / (n * plane * 255 * 255) - (means[c] as number) ** 2));
}
