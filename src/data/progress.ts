// Progress of long data jobs on stderr: a redrawn bar when stderr is a terminal, otherwise
// occasional plain lines (CI logs stay short).

export interface Progress {
  /** Starts a phase; total in units (omit when unknown). */
  start(label: string, total?: number, unit?: string): void;
  /** Units done so far in the current phase. */
  update(done: number): void;
  /** Ends the current phase. */
  end(): void;
  /** A message line. */
  log(message: string): void;
}

export const silentProgress: Progress = {
  start() {},
  update() {},
  end() {},
  log() {},
};

interface Stream {
  write(s: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

function fmt(n: number, unit: string): string {
  if (unit === "B") {
    if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
    if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
    return `${(n / 1024).toFixed(0)} KiB`;
  }
  return `${n.toLocaleString("en-US")}${unit === "" ? "" : ` ${unit}`}`;
}

/** A Progress that writes to stream (stderr by default), as a bar only on a terminal. */
export function streamProgress(stream: Stream = process.stderr, options: { plainEveryMs?: number } = {}): Progress {
  const tty = stream.isTTY === true;
  const plainEvery = options.plainEveryMs ?? 10_000;
  let label = "";
  let total: number | undefined;
  let unit = "";
  let done = 0;
  let t0 = 0;
  let lastDraw = 0;
  let drawn = false;

  const line = (): string => {
    const secs = (performance.now() - t0) / 1000;
    if (total === undefined || total <= 0) return `${label}: ${fmt(done, unit)} (${secs.toFixed(1)} s)`;
    const frac = Math.min(1, done / total);
    const pct = `${(frac * 100).toFixed(0).padStart(3)}%`;
    const eta = frac > 0 && frac < 1 ? `, ${((secs / frac) * (1 - frac)).toFixed(0)} s left` : "";
    return `${label}: ${pct} ${fmt(done, unit)} / ${fmt(total, unit)} (${secs.toFixed(1)} s${eta})`;
  };
  const draw = (): void => {
    const text = line();
    if (tty) {
      const width = Math.max(10, Math.min(30, (stream.columns ?? 80) - text.length - 4));
      const frac = total === undefined || total <= 0 ? 0 : Math.min(1, done / total);
      const filled = Math.round(frac * width);
      stream.write(`\r\x1b[K[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${text}`);
      drawn = true;
    } else {
      stream.write(`${text}\n`);
    }
  };
  const clear = (): void => {
    if (tty && drawn) stream.write("\r\x1b[K");
    drawn = false;
  };

  return {
    start(l, t, u = "") {
      if (drawn) stream.write("\n");
      drawn = false;
      label = l;
      total = t;
      unit = u;
      done = 0;
      t0 = performance.now();
      lastDraw = t0;
      if (tty) draw();
    },
    update(d) {
      done = d;
      const now = performance.now();
      if (now - lastDraw >= (tty ? 100 : plainEvery)) {
        lastDraw = now;
        draw();
      }
    },
    end() {
      if (tty) {
        draw();
        stream.write("\n");
        drawn = false;
      } else {
        stream.write(`${line()} done\n`);
      }
    },
    log(message) {
      clear();
      stream.write(`${message}\n`);
    },
  };
}
