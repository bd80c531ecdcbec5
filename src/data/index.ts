// The data layer: verified, offline-capable datasets and fast augmented loaders (docs/DATA.md).
export { type AugmentOptions, type AugmentPlan, assembleBatch, makePlan } from "./augment.js";
export { dataRoot, datasetDir, removeStaleStaging } from "./cache.js";
export {
  CIFAR10_CLASSES,
  CIFAR10_FILES,
  CIFAR10_OFFICIAL,
  Cifar10,
  type Cifar10Manifest,
  type Cifar10Options,
  type Cifar10Spec,
} from "./cifar10.js";
export {
  CIFAR10_NPM_PACKAGE,
  CIFAR10_URL,
  type PrepareCifar10Options,
  type PrepareResult,
  prepareCifar10,
  verifyCifar10,
} from "./cifar10-prepare.js";
export {
  ArrayDataset,
  ImageDataset,
  type ImageShape,
  type ImageStorage,
  type Sample,
  type StorageView,
  Subset,
} from "./dataset.js";
export { IntegrityError } from "./integrity.js";
export { type Batch, type ByteBatch, DataLoader, defaultWorkerCount, type LoaderOptions } from "./loader.js";
export { type DecodedImage, decodePng, PngError } from "./png.js";
export { type Progress, silentProgress, streamProgress } from "./progress.js";
export { ArchiveError } from "./tar.js";
export {
  TinyImageNet,
  type TinyImageNetManifest,
  type TinyImageNetOptions,
  type TinyImageNetSplitInfo,
} from "./tiny-imagenet.js";
export {
  type PrepareTinyImageNetOptions,
  prepareTinyImageNet,
  TINY_IMAGENET_OFFICIAL,
  type TinyImageNetExpect,
  type TinyImageNetPrepareResult,
  verifyTinyImageNet,
} from "./tiny-imagenet-prepare.js";
