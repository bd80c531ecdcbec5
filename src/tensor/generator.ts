// Random-number generators as objects, shaped like torch.Generator. A Generator is its
// own stream: drawing from it never advances the global one, so e.g. an attack's random
// starts can be reproduced without disturbing the training loop's dropout and shuffling.
// States are LibTorch's own bytes, the same as Python's torch.Generator.get_state().
import { type GeneratorHandle, native } from "./native.js";
import type { Device } from "./tensor.js";

export interface GeneratorOptions {
  /** Seeds the new generator (manualSeed). Without it the seed is LibTorch's default, 67280421310721. */
  seed?: number | bigint;
  /** Only "cpu": a new CUDA generator needs libtorch_cuda, which the addon does not link. */
  device?: Device;
}

// Set only while the module builds `defaultGenerator`, so that the public constructor
// can wrap the existing global generator without exposing a handle-taking signature.
let wrapping: GeneratorHandle | undefined;

function checkSeed(seed: number | bigint, what: string): void {
  const ok = typeof seed === "bigint" ? seed >= 0n && seed < 1n << 64n : Number.isSafeInteger(seed) && (seed as number) >= 0;
  if (!ok) throw new TypeError(`${what}: seed must be a non-negative safe integer or a BigInt below 2^64, got ${String(seed)}`);
}

export class Generator {
  readonly #handle: GeneratorHandle;
  readonly #isDefault: boolean;
  #disposed = false;

  constructor(options: GeneratorOptions = {}) {
    if (wrapping !== undefined) {
      this.#handle = wrapping;
      this.#isDefault = true;
      wrapping = undefined;
      return;
    }
    const device = options.device ?? "cpu";
    if (device !== "cpu") {
      throw new Error(`Generator: only CPU generators are supported, got device '${device}'`);
    }
    if (options.seed !== undefined) checkSeed(options.seed, "Generator");
    this.#handle = native.generatorNew(device, options.seed);
    this.#isDefault = false;
  }

  /** The native handle, for the op call (lowered like a tensor's handle). */
  get handle(): GeneratorHandle {
    if (this.#disposed) throw new Error("Generator: generator was already disposed");
    return this.#handle;
  }

  get device(): Device {
    return "cpu";
  }

  get isDisposed(): boolean {
    return this.#disposed;
  }

  /** Restarts the stream from `seed` (a BigInt for seeds beyond 2^53). */
  manualSeed(seed: number | bigint): this {
    checkSeed(seed, "Generator.manualSeed");
    native.generatorManualSeed(this.handle, seed);
    return this;
  }

  /** Seeds from a non-deterministic source and returns that seed. */
  seed(): bigint {
    return native.generatorSeed(this.handle);
  }

  /** The seed the stream started from (a BigInt: LibTorch seeds are 64-bit). */
  initialSeed(): bigint {
    return native.generatorInitialSeed(this.handle);
  }

  /**
   * The complete state as bytes (5056 for a CPU generator): the Mersenne Twister plus the
   * cached normal samples, byte for byte what torch.Generator.get_state() returns.
   */
  getState(): Uint8Array {
    return native.generatorGetState(this.handle);
  }

  /** Continues from a state given by getState() here or torch.Generator.get_state() in PyTorch. */
  setState(state: Uint8Array): this {
    if (!(state instanceof Uint8Array)) {
      const got = state === null ? "null" : typeof state === "object" ? (state as object).constructor.name : typeof state;
      throw new TypeError(`Generator.setState: expected a Uint8Array from getState() or torch.Generator.get_state(), got ${got}`);
    }
    native.generatorSetState(this.handle, state);
    return this;
  }

  /**
   * Releases the native generator; later use throws. A no-op on `defaultGenerator`, which
   * belongs to LibTorch and must keep working for every op that is not given a generator.
   */
  dispose(): void {
    if (this.#isDefault || this.#disposed) return;
    native.generatorDispose(this.#handle);
    this.#disposed = true;
  }
}

/**
 * The global CPU generator: the one manualSeed() seeds and every random op without a
 * `generator` draws from. Its getState()/setState() snapshot and restore the global stream.
 */
export const defaultGenerator: Generator = (() => {
  wrapping = native.generatorDefault();
  return new Generator();
})();
