// Loads the LibTorch addon. Process-level settings that OpenMP, ATen and glibc read at
// load time must be in the environment before the shared libraries are opened.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import type { AllocatorStats, MemoryStats } from "./runtime.js";

/** An opaque reference to a native at::Tensor. */
export interface TensorHandle {
  readonly __tensorHandle: unique symbol;
}

/** An opaque reference to a native at::Generator. */
export interface GeneratorHandle {
  readonly __generatorHandle: unique symbol;
}

export type NativeValue = TensorHandle | GeneratorHandle | number | boolean | string | null | undefined | NativeValue[];

export interface NativeBinding {
  op(name: string, overload: string): { id: number; schema: string };
  call(id: number, args: NativeValue[], named?: Record<string, NativeValue>): NativeValue;
  dispose(h: TensorHandle): void;
  isDisposed(h: TensorHandle): boolean;
  memoryStats(): MemoryStats;
  fromBuffer(data: ArrayBufferView, shape: readonly number[], dtypeCode: number, device?: string): TensorHandle;
  toBuffer(h: TensorHandle): ArrayBuffer;
  shape(h: TensorHandle): number[];
  dtype(h: TensorHandle): number;
  item(h: TensorHandle): number | boolean;
  meta(h: TensorHandle): {
    dtype: number;
    device: string;
    requiresGrad: boolean;
    isLeaf: boolean;
    isContiguous: boolean;
    gradFn: string | null;
  };
  layout(h: TensorHandle): { strides: number[]; isContiguous: boolean; isChannelsLast: boolean };
  setRequiresGrad(h: TensorHandle, on: boolean): void;
  getGrad(h: TensorHandle): TensorHandle | null;
  setGrad(h: TensorHandle, g: TensorHandle | null): void;
  backward(outputs: TensorHandle[], grads: (TensorHandle | null)[] | null, retain: boolean | undefined, create: boolean): void;
  grad(
    outputs: TensorHandle[],
    inputs: TensorHandle[],
    grads: (TensorHandle | null)[] | null,
    retain: boolean | undefined,
    create: boolean,
    allowUnused: boolean,
  ): (TensorHandle | null)[];
  setData(h: TensorHandle, src: TensorHandle): void;
  concurrentBranches(roots: TensorHandle[]): TensorHandle[];
  isGradEnabled(): boolean;
  setGradEnabled(on: boolean): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  generatorNew(device: string, seed?: number | bigint): GeneratorHandle;
  generatorDefault(): GeneratorHandle;
  generatorManualSeed(h: GeneratorHandle, seed: number | bigint): void;
  generatorSeed(h: GeneratorHandle): bigint;
  generatorInitialSeed(h: GeneratorHandle): bigint;
  generatorGetState(h: GeneratorHandle): Uint8Array;
  generatorSetState(h: GeneratorHandle, state: Uint8Array): void;
  generatorDispose(h: GeneratorHandle): void;
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  config(): { torchVersion: string; parallelInfo: string; cxx11Abi: boolean };
  allocatorStats(): AllocatorStats;
  emptyCache(): number;
  autocastState(deviceType: string): { enabled: boolean; dtype: number; cacheEnabled: boolean };
  autocastSetState(deviceType: string, enabled: boolean, dtypeCode: number, cacheEnabled: boolean): void;
  autocastEnter(): number;
  autocastExit(): number;
  autocastClearCache(): void;
}

function hasAvx512(): boolean {
  try {
    const flags = readFileSync("/proc/cpuinfo", "utf8");
    return ["avx512f", "avx512bw", "avx512vl", "avx512dq"].every((f) => new RegExp(`\\b${f}\\b`).test(flags));
  } catch {
    return false;
  }
}

function prepareEnvironment(): void {
  // libgomp spins while waiting; with every core in use and any other process busy,
  // throughput collapses 10-20x. Passive waiting costs nothing measurable when idle.
  process.env.OMP_WAIT_POLICY ??= "PASSIVE";
  // ATen defaults to its AVX2 kernels even where AVX-512 ones are compiled in and the
  // CPU has them; forcing avx512 on a CPU without it would crash, hence the check.
  if (process.env.ATEN_CPU_CAPABILITY === undefined && hasAvx512()) process.env.ATEN_CPU_CAPABILITY = "avx512";
  // Read by the addon when it loads (native/cpu_allocator.cc); a typo must not silently
  // fall back to the default.
  const alloc = process.env.RMOE_CPU_ALLOCATOR;
  if (alloc !== undefined && alloc !== "" && alloc !== "caching" && alloc !== "system") {
    throw new Error(`RMOE_CPU_ALLOCATOR must be 'caching' (the default) or 'system', got '${alloc}'`);
  }
  const cacheMb = process.env.RMOE_CPU_CACHE_MB;
  if (cacheMb !== undefined && cacheMb !== "" && !/^[0-9]+$/.test(cacheMb)) {
    throw new Error(`RMOE_CPU_CACHE_MB must be a whole number of MiB, got '${cacheMb}'`);
  }
}

function load(): NativeBinding {
  prepareEnvironment();
  const require = createRequire(import.meta.url);
  const candidates = [
    new URL("../../../build/Release/robust_moe.node", import.meta.url),
    new URL("../../build/Release/robust_moe.node", import.meta.url),
  ];
  let lastError: unknown;
  for (const url of candidates) {
    try {
      const binding = require(url.pathname) as NativeBinding;
      const fromEnv = Number(process.env.RMOE_NUM_THREADS);
      // Debian's LibTorch starts with 1 intra-op thread; use the machine unless told otherwise.
      binding.setNumThreads(Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : availableParallelism());
      return binding;
    } catch (e) {
      lastError = e;
      if ((e as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND") break;
    }
  }
  const reason = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(
    `robust-moe: cannot load the LibTorch addon (${reason}). Build it with \`npm run build:native\` ` +
      "after installing LibTorch (see README: apt-get install libtorch-dev libopenblas0-openmp).",
  );
}

export const native: NativeBinding = load();
