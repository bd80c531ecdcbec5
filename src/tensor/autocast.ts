// Automatic mixed precision, shaped like torch.autocast and backed by LibTorch's own autocast:
// the native side only flips LibTorch's thread-local switches (native/autocast.cc); every op
// then goes through the Autocast dispatch key exactly as it does from Python, so which ops run
// in bfloat16 (convolutions, matrix products, linear) and which stay in float32 (losses,
// reductions LibTorch lists) is LibTorch's decision, not ours. Parameters stay float32 (the
// master weights) and so do their gradients and the optimizer state: autocast only inserts
// differentiable casts in front of the ops it lowers.
import { type DType, dtypeCode, dtypeFromCode } from "./dtype.js";
import { native } from "./native.js";

export type AutocastDeviceType = "cpu" | "cuda";

export interface AutocastOptions {
  /** The lower precision (default bfloat16; on the CPU LibTorch 1.13 supports only bfloat16). */
  dtype?: "bfloat16" | "float16";
  /** false runs fn with autocast off (e.g. an fp32 region inside a bf16 one). Default true. */
  enabled?: boolean;
  /**
   * Cast each float32 weight once per outermost region instead of once per use (default true,
   * as PyTorch). Hazard: LibTorch 1.13 also caches a cast made with grad mode off, without its
   * gradient path, and later uses in the same region get that copy: a weight first used there
   * (e.g. a router queried before the training forward) then gets no gradient. Our noGrad()
   * bypasses the cache for that reason; code that turns grad mode off by other means inside a
   * cached region must do the same.
   */
  cacheEnabled?: boolean;
  /** Default "cpu". */
  deviceType?: AutocastDeviceType;
}

export interface AutocastState {
  enabled: boolean;
  dtype: DType;
  cacheEnabled: boolean;
}

/** This thread's autocast state for a device type (what autocast() sets and restores). */
export function autocastState(deviceType: AutocastDeviceType = "cpu"): AutocastState {
  const s = native.autocastState(deviceType);
  return { enabled: s.enabled, dtype: dtypeFromCode(s.dtype), cacheEnabled: s.cacheEnabled };
}

/** Whether ops on this device type are autocast right now (torch.is_autocast_cpu_enabled). */
export function isAutocastEnabled(deviceType: AutocastDeviceType = "cpu"): boolean {
  return native.autocastState(deviceType).enabled;
}

/**
 * Runs fn with autocast set as given, like `with torch.autocast(device_type, dtype=...)`:
 * the previous state comes back afterwards, also when fn throws, and the cast cache is
 * dropped when the outermost region ends (so updated weights are cast again next time).
 * fn must be synchronous: the state belongs to the thread, not to a promise. Run backward()
 * after the region, as PyTorch recommends: the backward ops then use the dtypes their
 * forward ops chose. The concurrent expert backward's threads get the caller's state.
 */
export function autocast<T>(options: AutocastOptions, fn: () => T): T {
  const deviceType = options.deviceType ?? "cpu";
  const dtype = options.dtype ?? "bfloat16";
  const enabled = options.enabled ?? true;
  if (deviceType === "cpu" && dtype !== "bfloat16" && enabled) {
    // torch.autocast warns and disables itself here; a silent fp32 run is worse than an error.
    throw new TypeError(`autocast: on the CPU LibTorch 1.13 supports only bfloat16, got ${dtype}`);
  }
  const prev = native.autocastState(deviceType);
  native.autocastSetState(deviceType, enabled, dtypeCode(dtype), options.cacheEnabled ?? prev.cacheEnabled);
  native.autocastEnter();
  try {
    const result = fn();
    if (result instanceof Promise) {
      throw new TypeError("autocast takes a synchronous function (autocast state is per thread, not per promise)");
    }
    return result;
  } finally {
    native.autocastExit();
    native.autocastSetState(deviceType, prev.enabled, prev.dtype, prev.cacheEnabled);
  }
}

/** Training and benchmark precision: fp32 everywhere, or bf16 autocast with fp32 master weights. */
export type Precision = "fp32" | "bf16";

/**
 * Runs fn in the given precision (bf16: autocast to bfloat16 on the CPU; fp32: autocast off),
 * with the cast cache, as torch.autocast: each weight is cast once per step, not once per
 * forward of the training attacks. That is safe because noGrad() bypasses the cache (a
 * step's router queries run under noGrad before its training forward; a cast cached there
 * would carry no gradient path, see AutocastOptions.cacheEnabled).
 */
export function withPrecision<T>(precision: Precision, fn: () => T): T {
  return autocast({ dtype: "bfloat16", enabled: precision === "bf16", cacheEnabled: true }, fn);
}
