// One collective in flight. c10d runs it on the backend's threads; `wait()` is a promise
// settled by its completion (no thread is blocked), `waitSync()` blocks the caller but never
// longer than a timeout, for synchronous code such as a training step.
import { nativeDist, type Started, type WorkHandle } from "./binding.js";

export class Work {
  readonly #handle: WorkHandle;
  readonly #done: Promise<void>;
  readonly #timeoutMs: number;
  // Runs once, on this thread, after a successful completion (e.g. the division of 'avg').
  #after: (() => void) | null;

  /** @internal */
  constructor(started: Started, timeoutMs: number, after: (() => void) | null = null) {
    this.#handle = started.work;
    this.#timeoutMs = timeoutMs;
    this.#after = after;
    // Marked handled here: a caller that never waits must not crash the process with an
    // unhandled rejection; one that waits still gets the error.
    started.done.catch(() => {});
    this.#done = started.done.then(() => this.#finish());
    this.#done.catch(() => {});
  }

  /** Whether c10d has finished the collective (successfully or not). Never blocks. */
  isCompleted(): boolean {
    return nativeDist().workIsCompleted(this.#handle);
  }

  /** Resolves when the collective is done; rejects with an error naming the rank and the operation. */
  wait(): Promise<void> {
    return this.#done;
  }

  /**
   * Blocks until the collective is done, at most timeoutMs (default: the group's timeout);
   * throws its error, or a timeout error, naming the rank and the operation.
   */
  waitSync(timeoutMs: number = this.#timeoutMs): void {
    nativeDist().workWait(this.#handle, timeoutMs);
    this.#finish();
  }

  #finish(): void {
    const f = this.#after;
    this.#after = null;
    f?.();
  }
}
