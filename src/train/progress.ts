// The training progress display: on a terminal one line redrawn in place (epoch, a bar,
// loss, accuracy, img/s, time left); otherwise (a log file, CI) a plain line every logEvery
// steps, so logs stay readable.

export interface ProgressState {
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  loss: number;
  accuracy: number;
  imagesPerSecond: number;
  /** Seconds left for the whole run, or null before it can be estimated. */
  secondsLeft: number | null;
}

export function formatDuration(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return "--";
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

export class TrainProgress {
  readonly #out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  readonly #tty: boolean;
  readonly #every: number;
  #drawn = false;

  constructor(out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }, every: number, tty = out.isTTY === true) {
    this.#out = out;
    this.#tty = tty;
    this.#every = every;
  }

  update(p: ProgressState, step: number): void {
    const stats = `loss ${p.loss.toFixed(4)}  acc ${(100 * p.accuracy).toFixed(1)}%  ${p.imagesPerSecond.toFixed(0)} img/s  left ${formatDuration(p.secondsLeft)}`;
    if (this.#tty) {
      const width = 24;
      const filled = Math.round((width * p.batch) / Math.max(1, p.batches));
      const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
      const line = `epoch ${p.epoch + 1}/${p.epochs} ${bar} ${p.batch}/${p.batches}  ${stats}`;
      this.#out.write(`\r${line.slice(0, (this.#out.columns ?? 120) - 1)}\x1b[K`);
      this.#drawn = true;
    } else if (step % this.#every === 0) {
      this.#out.write(`step ${step}  epoch ${p.epoch + 1}/${p.epochs}  batch ${p.batch}/${p.batches}  ${stats}\n`);
    }
  }

  /** A line that must stay (epoch summaries, notices): ends the redrawn line first. */
  line(text: string): void {
    if (this.#drawn) this.#out.write("\r\x1b[K");
    this.#drawn = false;
    this.#out.write(`${text}\n`);
  }

  finish(): void {
    if (this.#drawn) this.#out.write("\n");
    this.#drawn = false;
  }
}
