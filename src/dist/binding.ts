// The addon's c10d part (native/dist.cc) as typed functions over opaque handles. Nothing
// here has meaning of its own; the classes in this folder give it one.
import { type NativeBinding, native, type TensorHandle } from "../tensor/native.js";

/** An opaque reference to a native c10d::Store. */
export interface StoreHandle {
  readonly __storeHandle: unique symbol;
}

/** An opaque reference to a native process group (ProcessGroupGloo or ProcessGroupNCCL). */
export interface GroupHandle {
  readonly __groupHandle: unique symbol;
}

/** An opaque reference to a native c10d::Work (one collective in flight or done). */
export interface WorkHandle {
  readonly __workHandle: unique symbol;
}

/** A collective that was started: its handle, and a promise settled when c10d completes it. */
export interface Started {
  work: WorkHandle;
  done: Promise<void>;
}

export type NativeReduceOp = "sum" | "product" | "min" | "max";

export interface NativeDist {
  features(): { gloo: boolean; nccl: boolean };
  storeTcp(
    host: string,
    port: number,
    isServer: boolean,
    worldSize: number | null,
    waitWorkers: boolean,
    timeoutMs: number,
    multiTenant: boolean,
  ): Promise<StoreHandle>;
  storeFile(path: string, worldSize: number): Promise<StoreHandle>;
  storePrefix(store: StoreHandle, prefix: string): StoreHandle;
  storeSet(store: StoreHandle, key: string, value: Uint8Array): Promise<void>;
  storeGet(store: StoreHandle, key: string): Promise<Uint8Array>;
  storeAdd(store: StoreHandle, key: string, amount: number): Promise<number>;
  storeWait(store: StoreHandle, keys: string[], timeoutMs: number): Promise<void>;
  storeSetTimeout(store: StoreHandle, timeoutMs: number): void;
  storeDispose(store: StoreHandle): void;
  groupCreate(backend: string, store: StoreHandle, rank: number, worldSize: number, timeoutMs: number): Promise<GroupHandle>;
  groupSetSequenceNumber(group: GroupHandle): Promise<void>;
  groupDestroy(group: GroupHandle): Promise<void>;
  groupInFlight(group: GroupHandle): number;
  allreduce(group: GroupHandle, tensors: TensorHandle[], op: NativeReduceOp, timeoutMs?: number): Started;
  broadcast(group: GroupHandle, tensors: TensorHandle[], src: number, timeoutMs?: number): Started;
  allgather(group: GroupHandle, outputs: TensorHandle[], input: TensorHandle, timeoutMs?: number): Started;
  barrier(group: GroupHandle, timeoutMs?: number): Started;
  allreduceAutograd(group: GroupHandle, tensor: TensorHandle, timeoutMs: number): TensorHandle;
  workIsCompleted(work: WorkHandle): boolean;
  workWait(work: WorkHandle, timeoutMs: number): void;
}

let cached: NativeDist | null = null;

/** The addon's dist object; looked up on first use, so an addon built without it fails only there. */
export function nativeDist(): NativeDist {
  if (cached === null) {
    const d = (native as NativeBinding & { dist?: NativeDist }).dist;
    if (d === undefined) {
      throw new Error("robust-moe: this build of the addon has no distributed support; rebuild it (npm run build:native)");
    }
    cached = d;
  }
  return cached;
}
