// The datasets an evaluation can name ('cifar10', 'tinyimagenet') and their splits, loaded
// from the prepared cache with an error that says how to prepare a missing one.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { dataRoot, datasetDir, MANIFEST } from "../data/cache.js";
import { CIFAR10_DIR, Cifar10 } from "../data/cifar10.js";
import type { ImageDataset } from "../data/dataset.js";
import { TINY_IMAGENET_DIR, TinyImageNet } from "../data/tiny-imagenet.js";

export const EVAL_DATASETS = ["cifar10", "tinyimagenet"] as const;
export type EvalDatasetName = (typeof EVAL_DATASETS)[number];

const SPLITS: Record<EvalDatasetName, { splits: readonly string[]; test: string }> = {
  cifar10: { splits: ["test", "train"], test: "test" },
  tinyimagenet: { splits: ["val", "train"], test: "val" },
};

export class DatasetError extends Error {
  override name = "DatasetError";
}

export function isEvalDataset(name: string): name is EvalDatasetName {
  return (EVAL_DATASETS as readonly string[]).includes(name);
}

/** The held-out split of a dataset ('test' for CIFAR-10, 'val' for TinyImageNet). */
export function defaultSplit(name: EvalDatasetName): string {
  return SPLITS[name].test;
}

/** Throws DatasetError unless split is one of the dataset's splits. */
export function checkSplit(name: EvalDatasetName, split: string): void {
  const s = SPLITS[name].splits;
  if (!s.includes(split)) throw new DatasetError(`${name} has no split '${split}' (splits: ${s.join(", ")})`);
}

/**
 * Loads a prepared dataset split from the cache (root: --data-root, else $RMOE_DATA, else
 * ~/.cache/robust-moe). A dataset that is not prepared is a DatasetError that gives the
 * command preparing it.
 */
export function loadEvalDataset(name: EvalDatasetName, split: string, root?: string): ImageDataset {
  checkSplit(name, split);
  const base = dataRoot(root);
  const dir = datasetDir(base, name === "cifar10" ? CIFAR10_DIR : TINY_IMAGENET_DIR);
  if (!existsSync(join(dir, MANIFEST))) {
    const rootArg = root === undefined || root === "" ? "" : ` --root ${root}`;
    const how =
      name === "cifar10"
        ? `rmoe data prepare cifar10${rootArg}`
        : `rmoe data prepare tinyimagenet --from tiny-imagenet-200.zip${rootArg}`;
    throw new DatasetError(`${name} is not prepared under ${dir}: prepare it with \`${how}\` (docs/DATA.md)`);
  }
  return name === "cifar10"
    ? new Cifar10({ split: split as "train" | "test", root: base })
    : new TinyImageNet({ split: split as "train" | "val", root: base });
}
