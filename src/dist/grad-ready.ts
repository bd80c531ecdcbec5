// Notifications that a parameter's gradient is final for the running backward pass
// (native/grad_ready.cc: post hooks on the gradient accumulators), so communication can start
// while backward goes on. Indices refer to the parameter list given at registration.
import { type NativeBinding, native, type TensorHandle } from "../tensor/native.js";
import type { Tensor } from "../tensor/tensor.js";

interface HooksHandle {
  readonly __gradHooksHandle: unique symbol;
}

interface GradReadyNative {
  gradReadyHooks(params: TensorHandle[], callback: (index: number) => void): HooksHandle;
  gradReadyDrain(h: HooksHandle): number[];
  gradReadyRemove(h: HooksHandle): void;
}

function binding(): GradReadyNative {
  const b = native as NativeBinding & Partial<GradReadyNative>;
  if (b.gradReadyHooks === undefined)
    throw new Error("robust-moe: the addon has no gradient hooks; rebuild it (npm run build:native)");
  return b as NativeBinding & GradReadyNative;
}

export class GradReadyHooks {
  #handle: HooksHandle | null;

  /**
   * Calls onReady(i) when params[i]'s gradient is final during a backward pass: at once when
   * LibTorch accumulates it on this thread, else (another thread's backward, e.g. the MoE's
   * concurrent experts) at the next notification on this thread or at drain().
   */
  constructor(params: readonly Tensor[], onReady: (index: number) => void) {
    this.#handle = binding().gradReadyHooks(
      params.map((p) => p.handle),
      onReady,
    );
  }

  /** The notifications still held (from other threads), in the order they happened. */
  drain(): number[] {
    return this.#handle === null ? [] : binding().gradReadyDrain(this.#handle);
  }

  remove(): void {
    if (this.#handle === null) return;
    binding().gradReadyRemove(this.#handle);
    this.#handle = null;
  }
}
