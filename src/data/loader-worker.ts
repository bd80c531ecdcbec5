// A DataLoader worker thread: assembles augmented uint8 batches from the shared image
// storage and sends them back in transferred ArrayBuffers. It loads no LibTorch code.
// After each reply it bumps a shared counter and notifies, so a main thread blocked in
// Atomics.wait (a synchronous training loop never turns the event loop) wakes and takes
// the reply with receiveMessageOnPort.
import { type MessagePort, workerData } from "node:worker_threads";
import { type AugmentPlan, assembleBatch, type BatchSelection, selectedCount } from "./augment.js";

export interface WorkerInit {
  port: MessagePort;
  images: SharedArrayBuffer;
  imagesOffset: number;
  imagesLength: number;
  signal: SharedArrayBuffer;
  plan: AugmentPlan;
  seed: number;
}

export interface WorkerRequest {
  gen: number;
  epoch: number;
  batch: number;
  indices: Int32Array;
  /** A data-parallel rank's positions of the batch (null: all). */
  select: BatchSelection | null;
  /** A spent batch buffer handed back for reuse, if any. */
  recycle: ArrayBuffer | null;
}

export type WorkerReply =
  | { gen: number; batch: number; buffer: ArrayBuffer; bytes: number }
  | { gen: number; batch: number; error: string };

const init = workerData as WorkerInit;
const images = new Uint8Array(init.images, init.imagesOffset, init.imagesLength);
const signal = new Int32Array(init.signal);
const outSize = init.plan.channels * init.plan.outHeight * init.plan.outWidth;

function reply(msg: WorkerReply, transfer: ArrayBuffer[]): void {
  init.port.postMessage(msg, transfer);
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}

// Tell the main thread this worker is running (it cannot see 'online' events while blocked).
Atomics.add(signal, 1, 1);
Atomics.notify(signal, 0);

init.port.on("message", (req: WorkerRequest) => {
  try {
    const bytes = selectedCount(req.indices.length, req.select) * outSize;
    const buffer = req.recycle !== null && req.recycle.byteLength >= bytes ? req.recycle : new ArrayBuffer(bytes);
    assembleBatch(images, req.indices, init.plan, init.seed, req.epoch, req.batch, new Uint8Array(buffer, 0, bytes), req.select);
    reply({ gen: req.gen, batch: req.batch, buffer, bytes }, [buffer]);
  } catch (e) {
    reply({ gen: req.gen, batch: req.batch, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }, []);
  }
});
