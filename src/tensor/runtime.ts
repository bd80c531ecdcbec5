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
