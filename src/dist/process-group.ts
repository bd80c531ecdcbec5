// A process group: c10d's ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA) and its
// collectives. initProcessGroup does what torch.distributed.init_process_group does, in the
// same order and with the same store keys, so Node and Python ranks can share one group.
import { Tensor } from "../tensor/tensor.js";
import { type GroupHandle, type NativeReduceOp, nativeDist } from "./binding.js";
import { DEFAULT_TIMEOUT_MS, Store } from "./store.js";
import { Work } from "./work.js";

export type Backend = "gloo" | "nccl";
export type ReduceOp = NativeReduceOp | "avg";

export type StoreSpec = { tcp: string } | { file: string };

export interface InitOptions {
  backend?: Backend;
  /** Where the ranks meet: `{ tcp: "host:port" }` (rank 0 serves it) or `{ file: path }`. */
  store: StoreSpec;
  rank: number;
  worldSize: number;
  /** Rendezvous and every collective (default 30 min, as PyTorch). */
  timeoutMs?: number;
}

export interface CollectiveOptions {
  /** This collective's timeout (default: the group's). */
  timeoutMs?: number;
}

/** Parses "host:port" (IPv6 as "[::1]:port"). */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (m === null) throw new TypeError(`dist: store address must be 'host:port', got '${text}'`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`dist: port must be in 1..65535, got '${m[2]}'`);
  return { host: m[1] as string, port };
}

// torch.distributed's key names: the default group lives under "default_pg", its c10d
// group under "default_pg/0", and init ends with a barrier on "store_based_barrier_key:1".
const DEFAULT_PG_PREFIX = "default_pg";
const DEFAULT_GROUP_NAME = "0";
const STORE_BARRIER_KEY = "store_based_barrier_key:1";

export class ProcessGroup {
  #handle: GroupHandle | null;
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: Backend;
  readonly timeoutMs: number;
  readonly #stores: Store[];

  private constructor(handle: GroupHandle, o: Required<Omit<InitOptions, "store">>, stores: Store[]) {
    this.#handle = handle;
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.backend = o.backend;
    this.timeoutMs = o.timeoutMs;
    this.#stores = stores;
  }

  /** @internal */
  static async create(o: InitOptions): Promise<ProcessGroup> {
    const backend = o.backend ?? "gloo";
    if (backend !== "gloo" && backend !== "nccl") throw new TypeError(`dist: backend must be 'gloo' or 'nccl', got '${backend}'`);
    const { rank, worldSize } = o;
    if (!Number.isInteger(worldSize) || worldSize < 1)
      throw new RangeError(`dist: worldSize must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
      throw new RangeError(`dist: rank must be an integer in [0, ${worldSize - 1}], got ${rank}`);
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(timeoutMs > 0)) throw new RangeError(`dist: timeoutMs must be positive, got ${timeoutMs}`);
    const who = `dist rank ${rank}/${worldSize} (${backend})`;
    let root: Store;
    if ("tcp" in o.store) {
      const { host, port } = parseHostPort(o.store.tcp);
      root = await Store.tcp({ host, port, isServer: rank === 0, worldSize, timeoutMs });
    } else if ("file" in o.store) {
      root = await Store.file(o.store.file, worldSize);
    } else {
      throw new TypeError(`${who}: store must be { tcp: "host:port" } or { file: path }`);
    }
    root.setTimeout(timeoutMs);
    const store = root.prefixed(DEFAULT_PG_PREFIX);
    const groupStore = store.prefixed(DEFAULT_GROUP_NAME);
    const handle = await nativeDist().groupCreate(backend, groupStore.handle, rank, worldSize, timeoutMs);
    const pg = new ProcessGroup(handle, { backend, rank, worldSize, timeoutMs }, [groupStore, store, root]);
    // torch.distributed's store-based barrier: every rank adds 1, then polls with add(0).
    await store.add(STORE_BARRIER_KEY, 1);
    const t0 = performance.now();
    for (;;) {
      const n = await store.add(STORE_BARRIER_KEY, 0);
      if (n === worldSize) break;
      if (performance.now() - t0 > timeoutMs)
        throw new Error(`${who}: initProcessGroup: timed out in the store barrier (${n} of ${worldSize} ranks arrived)`);
      await new Promise((r) => setTimeout(r, 10));
    }
    await nativeDist().groupSetSequenceNumber(handle);
    return pg;
  }

  get handle(): GroupHandle {
    if (this.#handle === null) throw new Error(`dist rank ${this.rank}/${this.worldSize}: the process group was destroyed`);
    return this.#handle;
  }

  /**
   * Reduces the tensors over the ranks in place ('avg' is 'sum' divided by the world size,
   * once the sum is complete: gloo has no average). Tensors must be contiguous and must not
   * be touched until the work completes.
   */
  allreduce(tensors: Tensor | readonly Tensor[], options: CollectiveOptions & { op?: ReduceOp } = {}): Work {
    const list = Array.isArray(tensors) ? (tensors as readonly Tensor[]) : [tensors as Tensor];
    const op = options.op ?? "sum";
    const nativeOp: NativeReduceOp = op === "avg" ? "sum" : op;
    const started = nativeDist().allreduce(
      this.handle,
      list.map((t) => t.handle),
      nativeOp,
      options.timeoutMs,
    );
    const world = this.worldSize;
    const after = op === "avg" ? () => list.forEach((t) => void t.div_(world)) : null;
    return new Work(started, options.timeoutMs ?? this.timeoutMs, after);
  }

  /** Copies rank src's tensors into every rank's, in place. */
  broadcast(tensors: Tensor | readonly Tensor[], options: CollectiveOptions & { src?: number } = {}): Work {
    const list = Array.isArray(tensors) ? (tensors as readonly Tensor[]) : [tensors as Tensor];
    const started = nativeDist().broadcast(
      this.handle,
      list.map((t) => t.handle),
      options.src ?? 0,
      options.timeoutMs,
    );
    return new Work(started, options.timeoutMs ?? this.timeoutMs);
  }

  /** outputs[r] receives rank r's input (one output per rank, each shaped as the input). */
  allgather(outputs: readonly Tensor[], input: Tensor, options: CollectiveOptions = {}): Work {
    const started = nativeDist().allgather(
      this.handle,
      outputs.map((t) => t.handle),
      input.handle,
      options.timeoutMs,
    );
    return new Work(started, options.timeoutMs ?? this.timeoutMs);
  }

  /**
   * The sum over the ranks as a new tensor that autograd differentiates (its gradient is the
   * sum over the ranks of the result's gradient: torch.distributed.nn.functional.all_reduce).
   * Blocks in forward and in backward, at most the timeout; every rank must call it in the
   * same order, in both passes.
   */
  allreduceWithGrad(t: Tensor, options: CollectiveOptions = {}): Tensor {
    return Tensor.fromHandle(nativeDist().allreduceAutograd(this.handle, t.handle, options.timeoutMs ?? this.timeoutMs));
  }

  barrier(options: CollectiveOptions = {}): Work {
    return new Work(nativeDist().barrier(this.handle, options.timeoutMs), options.timeoutMs ?? this.timeoutMs);
  }

  /**
   * Ends the group (joins c10d's threads) once its collectives are done: it waits for those
   * still in flight (and for the completions of those waited for with waitSync, which arrive
   * when the event loop turns), at most the group's timeout.
   */
  async destroy(): Promise<void> {
    if (this.#handle === null) return;
    const h = this.#handle;
    const deadline = performance.now() + this.timeoutMs;
    while (nativeDist().groupInFlight(h) > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1));
    }
    await nativeDist().groupDestroy(h);
    this.#handle = null;
    for (const s of this.#stores) s.dispose();
  }
}

/** torch.distributed.init_process_group: rendezvous through the store, then a group of all ranks. */
export function initProcessGroup(options: InitOptions): Promise<ProcessGroup> {
  return ProcessGroup.create(options);
}

/** Which backends this build of the addon has. */
export function availableBackends(): Backend[] {
  const f = nativeDist().features();
  return [...(f.gloo ? (["gloo"] as const) : []), ...(f.nccl ? (["nccl"] as const) : [])];
}
