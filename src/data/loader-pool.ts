// The worker threads of one DataLoader. Requests go out by postMessage; replies are taken
// synchronously with receiveMessageOnPort while the main thread blocks in Atomics.wait on a
// shared counter that workers bump after each reply. So a synchronous training loop gets
// its batches without ever yielding to the event loop.
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import type { AugmentPlan, BatchSelection } from "./augment.js";
import type { WorkerInit, WorkerReply, WorkerRequest } from "./loader-worker.js";

/** How long a worker thread may take to start. */
const STARTUP_MS = 20_000;

const sharedCopies = new WeakMap<Uint8Array, Uint8Array>();

/** images itself when it lives in a SharedArrayBuffer, else a shared copy (made once per array). */
function sharedView(images: Uint8Array): Uint8Array {
  if (images.buffer instanceof SharedArrayBuffer) return images;
  let copy = sharedCopies.get(images);
  if (copy === undefined) {
    copy = new Uint8Array(new SharedArrayBuffer(images.length));
    copy.set(images);
    sharedCopies.set(images, copy);
  }
  return copy;
}

export interface PoolResult {
  buffer: ArrayBuffer;
  bytes: number;
}

export class WorkerPool {
  private readonly workers: { worker: Worker; port: MessagePort }[] = [];
  private readonly signal: Int32Array;
  private readonly free: ArrayBuffer[] = [];
  private readonly results = new Map<number, PoolResult>();
  private resultsGen = -1;
  private crashed: Error | null = null;
  private closed = false;

  constructor(count: number, images: Uint8Array, plan: AugmentPlan, seed: number) {
    const shared = sharedView(images);
    // [0]: replies sent (workers bump it after each), [1]: workers started.
    const signalBuffer = new SharedArrayBuffer(8);
    this.signal = new Int32Array(signalBuffer);
    for (let i = 0; i < count; i++) {
      const { port1, port2 } = new MessageChannel();
      const init: WorkerInit = {
        port: port2,
        images: shared.buffer as SharedArrayBuffer,
        imagesOffset: shared.byteOffset,
        imagesLength: shared.length,
        signal: signalBuffer,
        plan,
        seed,
      };
      // execArgv: [] — the parent's flags (e.g. --input-type from `node -e`) can stop a worker
      // from starting, and these workers need none.
      const worker = new Worker(new URL("./loader-worker.js", import.meta.url), {
        workerData: init,
        transferList: [port2],
        execArgv: [],
      });
      worker.on("error", (e) => {
        this.crashed = e;
      });
      worker.unref();
      port1.unref();
      this.workers.push({ worker, port: port1 });
    }
  }

  get size(): number {
    return this.workers.length;
  }

  request(gen: number, epoch: number, batch: number, indices: Int32Array, select: BatchSelection | null = null): void {
    if (this.closed) throw new Error("DataLoader: used after close()");
    const w = this.workers[batch % this.workers.length] as { port: MessagePort };
    const recycle = this.free.pop() ?? null;
    const req: WorkerRequest = { gen, epoch, batch, indices, select, recycle };
    const transfer: ArrayBuffer[] = [indices.buffer as ArrayBuffer];
    if (recycle !== null) transfer.push(recycle);
    w.port.postMessage(req, transfer);
  }

  /** Blocks until batch `batch` of generation `gen` is ready. */
  wait(gen: number, batch: number, timeoutMs: number): PoolResult {
    const started = Date.now();
    if (this.resultsGen !== gen) {
      for (const r of this.results.values()) this.release(r.buffer);
      this.results.clear();
      this.resultsGen = gen;
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = Atomics.load(this.signal, 0);
      this.drain(gen);
      const r = this.results.get(batch);
      if (r !== undefined) {
        this.results.delete(batch);
        return r;
      }
      if (this.crashed !== null) throw new Error(`DataLoader worker failed: ${this.crashed.message}`);
      const running = Atomics.load(this.signal, 1);
      if (running < this.workers.length && Date.now() - started > STARTUP_MS) {
        throw new Error(
          `DataLoader: ${this.workers.length - running} of ${this.workers.length} worker threads did not start within ${STARTUP_MS / 1000} s (workers: 0 runs on this thread)`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `DataLoader: no batch from the workers in ${timeoutMs / 1000} s (a worker may have died; workers: 0 runs on this thread)`,
        );
      }
      Atomics.wait(this.signal, 0, seen, Math.min(left, 1000));
    }
  }

  /** Hands a spent batch buffer back for reuse. */
  release(buffer: ArrayBuffer): void {
    if (this.free.length < 4 * this.workers.length + 4) this.free.push(buffer);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const { worker, port } of this.workers) {
      port.close();
      void worker.terminate();
    }
    this.workers.length = 0;
    this.free.length = 0;
    this.results.clear();
  }

  private drain(gen: number): void {
    for (const { port } of this.workers) {
      for (;;) {
        const got = receiveMessageOnPort(port);
        if (got === undefined) break;
        const msg = got.message as WorkerReply;
        if ("error" in msg) {
          if (msg.gen === gen) throw new Error(`DataLoader worker failed on batch ${msg.batch}: ${msg.error}`);
          continue;
        }
        if (msg.gen !== gen) this.release(msg.buffer);
        else this.results.set(msg.batch, { buffer: msg.buffer, bytes: msg.bytes });
      }
    }
  }
}
