// Data benchmark: augmented CIFAR-10 training batches of 128 per second, as float tensors
// (random crop with padding 4, horizontal flip, cutout 8; workers as the loader defaults).
// Prints a human line and then, last, the JSON line {"bench":"data","ours":<img/s>}.
// Run: npm run bench -- data (through bench/main.ts), or node dist/bench/data.js.
import { pathToFileURL } from "node:url";
import { Cifar10 } from "../src/data/cifar10.js";
import { ArrayDataset, type ImageDataset } from "../src/data/dataset.js";
import { DataLoader, defaultWorkerCount } from "../src/data/loader.js";
import { Rng } from "../src/data/rng.js";
import { dispose } from "../src/tensor/index.js";

export interface DataBenchOptions {
  batchSize?: number;
  /** Timed seconds after warm-up (default 5; stops early after one full epoch). */
  seconds?: number;
  /** Loader workers (default: the loader's default). */
  workers?: number;
  /** Cache root of the prepared CIFAR-10 (default: $RMOE_DATA, else ~/.cache/robust-moe). */
  root?: string;
  /** Where the human-readable line goes (default stderr). */
  log?: (line: string) => void;
}

export interface DataBenchResult {
  bench: "data";
  /** Images per second. */
  ours: number;
}

function synthetic(): ImageDataset {
  const n = 50000;
  const images = new Uint8Array(n * 3072);
  const r = new Rng(0);
  for (let i = 0; i < images.length; i += 4) {
    const v = r.u32();
    images[i] = v & 0xff;
    images[i + 1] = (v >>> 8) & 0xff;
    images[i + 2] = (v >>> 16) & 0xff;
    images[i + 3] = v >>> 24;
  }
  const labels = Array.from({ length: n }, (_, i) => i % 10);
  return ArrayDataset.fromArrays(images, labels, [3, 32, 32], ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
}

export async function runDataBench(options: DataBenchOptions = {}): Promise<DataBenchResult> {
  const log = options.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const batchSize = options.batchSize ?? 128;
  const seconds = options.seconds ?? 5;
  let dataset: ImageDataset;
  let what = "CIFAR-10 train";
  try {
    dataset = new Cifar10({ root: options.root, split: "train" });
  } catch (e) {
    log(`data bench: ${e instanceof Error ? e.message : String(e)}; timing random images of the same shape instead`);
    dataset = synthetic();
    what = "synthetic 3x32x32";
  }
  const workers = options.workers ?? defaultWorkerCount();
  const loader = new DataLoader(dataset, {
    batchSize,
    seed: 0,
    dropLast: true,
    augment: { crop: { size: 32, padding: 4 }, flip: true, cutout: 8 },
    workers,
  });
  let images = 0;
  let timed = 0;
  try {
    const warmup = 5;
    let b = 0;
    let t0 = 0;
    for (const batch of loader.epoch(0)) {
      dispose(batch);
      b++;
      if (b === warmup) t0 = performance.now();
      else if (b > warmup) {
        images += batchSize;
        timed = (performance.now() - t0) / 1000;
        if (timed >= seconds) break;
      }
    }
  } finally {
    loader.close();
  }
  const rate = images / timed;
  log(
    `data: ${what}, batches of ${batchSize} (crop pad 4 + flip + cutout 8 -> float32 NCHW), ${workers} worker(s): ` +
      `${Math.round(rate).toLocaleString("en-US")} img/s over ${images.toLocaleString("en-US")} images`,
  );
  const result: DataBenchResult = { bench: "data", ours: Math.round(rate) };
  console.log(JSON.stringify(result));
  return result;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runDataBench();
}
