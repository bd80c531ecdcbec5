// Distributed: c10d process groups, stores and work handles; data parallelism; launching.
export { assignBuckets, type Bucket, type BucketItem } from "./buckets.js";
export { DataParallel, type DataParallelOptions, type DataParallelStats } from "./data-parallel.js";
export { type DistFlags, type DistPlacement, distPlacement } from "./env.js";
export { allgatherBytes } from "./gather.js";
export { freePort, type LaunchOptions, type LaunchResult, launch } from "./launch.js";
export {
  availableBackends,
  type Backend,
  type CollectiveOptions,
  type InitOptions,
  initProcessGroup,
  ProcessGroup,
  parseHostPort,
  type ReduceOp,
  type StoreSpec,
} from "./process-group.js";
export { DEFAULT_TIMEOUT_MS, Store, type TcpStoreOptions } from "./store.js";
export { syncBatchNorm } from "./sync-batch-norm.js";
export { Work } from "./work.js";
