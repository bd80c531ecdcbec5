// Process-wide engine settings and introspection.
import { native } from "./native.js";

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`setNumThreads: expected a positive integer, got ${n}`);
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Seeds every LibTorch generator: same seed, bit-identical runs on CPU. */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new TypeError(`manualSeed: expected a non-negative integer, got ${seed}`);
  native.manualSeed(seed);
}

export interface MemoryStats {
  /** Tensor handles alive in JS (not yet disposed or collected). */
  liveTensors: number;
  /** Sum of their element bytes (views count their own extent). */
  liveBytes: number;
}

export function memoryStats(): MemoryStats {
  return native.memoryStats();
}

export const cuda = {
  isAvailable(): boolean {
    return native.cudaIsAvailable();
  },
  deviceCount(): number {
    return native.cudaDeviceCount();
  },
};

export function engineInfo(): { torchVersion: string; threads: number; parallelInfo: string; cudaAvailable: boolean } {
  const c = native.config();
  return {
    torchVersion: c.torchVersion,
    threads: native.getNumThreads(),
    parallelInfo: c.parallelInfo,
    cudaAvailable: native.cudaIsAvailable(),
  };
}

/**
 * The CPU allocator's state. Blocks of 1 MiB and more come from robust-moe's caching
 * allocator (unless RMOE_CPU_ALLOCATOR=system): sizes are rounded up to 2 MiB, and freed
 * blocks are kept for later allocations that fit them (at most 1.5x the request), so a
 * training loop stops paying page faults after its first step.
 */
export interface AllocatorStats {
  /** False when RMOE_CPU_ALLOCATOR=system: LibTorch's default allocator is in use. */
  caching: boolean;
  /** Bytes of large blocks held by live tensors. */
  allocatedBytes: number;
  peakAllocatedBytes: number;
  /** Bytes of freed large blocks kept for reuse (at most cacheLimitBytes, RMOE_CPU_CACHE_MB). */
  cachedBytes: number;
  /** allocatedBytes + cachedBytes: what the allocator holds from the OS. */
  mappedBytes: number;
  cacheLimitBytes: number;
  /** Blocks obtained from the OS, and allocations served from the cache instead. */
  maps: number;
  cacheHits: number;
}

export function allocatorStats(): AllocatorStats {
  return native.allocatorStats();
}

/**
 * Returns the cached blocks to the OS (as torch.cuda.empty_cache does for CUDA) and the
 * number of bytes released. Useful after a phase with different tensor sizes, e.g. a large
 * evaluation batch, when the memory should go back to other processes.
 */
export function emptyCache(): number {
  return native.emptyCache();
}
