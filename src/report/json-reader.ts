// Reading untrusted JSON inputs field by field. Every problem becomes a ReportInputError that
// names the file and the dotted path of the field, because a report is built from files that
// other commands (or people) wrote, and "expected a number" alone does not say where to look.

/** A bad report input: the message names the file and, when there is one, the field. */
export class ReportInputError extends Error {
  override name = "ReportInputError";
  readonly file: string;
  readonly field: string;

  constructor(file: string, field: string, problem: string) {
    super(field === "" ? `${file}: ${problem}` : `${file}: field '${field}' ${problem}`);
    this.file = file;
    this.field = field;
  }
}

/** Bounds a number field must respect. */
export interface NumberRange {
  min?: number;
  max?: number;
  integer?: boolean;
}

/** A JSON object as JSON.parse returns it, with its values not yet checked. */
export type JsonRecord = { readonly [key: string]: unknown };

function describe(v: unknown): string {
  if (v === undefined) return "missing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  const text = JSON.stringify(v);
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

function join(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return path === "" ? key : `${path}.${key}`;
}

/**
 * Field access with errors naming `file` and the path. Methods take the parent object and a
 * key (so a missing field is reported by its full name), and return checked values.
 */
export class JsonReader {
  constructor(readonly file: string) {}

  fail(field: string, problem: string): never {
    throw new ReportInputError(this.file, field, problem);
  }

  /** The top-level value must be an object. */
  root(v: unknown): JsonRecord {
    if (v === null || typeof v !== "object" || Array.isArray(v)) this.fail("", `must hold a JSON object, got ${describe(v)}`);
    return v as JsonRecord;
  }

  has(o: JsonRecord, key: string): boolean {
    return Object.hasOwn(o, key) && o[key] !== undefined;
  }

  object(o: JsonRecord, key: string, path: string): JsonRecord {
    const v = o[key];
    if (v === null || typeof v !== "object" || Array.isArray(v))
      this.fail(join(path, key), `must be an object, got ${describe(v)}`);
    return v as JsonRecord;
  }

  optionalObject(o: JsonRecord, key: string, path: string): JsonRecord | null {
    return o[key] === undefined || o[key] === null ? null : this.object(o, key, path);
  }

  array(o: JsonRecord, key: string, path: string): readonly unknown[] {
    const v = o[key];
    if (!Array.isArray(v)) this.fail(join(path, key), `must be an array, got ${describe(v)}`);
    return v;
  }

  /** Each element of an array of objects, with its own path for messages. */
  objects(o: JsonRecord, key: string, path: string): { value: JsonRecord; path: string }[] {
    const field = join(path, key);
    return this.array(o, key, path).map((v, i) => {
      const p = join(field, i);
      if (v === null || typeof v !== "object" || Array.isArray(v)) this.fail(p, `must be an object, got ${describe(v)}`);
      return { value: v as JsonRecord, path: p };
    });
  }

  string(o: JsonRecord, key: string, path: string): string {
    const v = o[key];
    if (typeof v !== "string") this.fail(join(path, key), `must be a string, got ${describe(v)}`);
    return v;
  }

  optionalString(o: JsonRecord, key: string, path: string): string | null {
    return o[key] === undefined || o[key] === null ? null : this.string(o, key, path);
  }

  number(o: JsonRecord, key: string, path: string, range: NumberRange = {}): number {
    return this.checkNumber(o[key], join(path, key), range);
  }

  /** A value already taken out of its parent (an array element), checked as a number. */
  checkNumber(v: unknown, field: string, range: NumberRange = {}): number {
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(field, `must be a finite number, got ${describe(v)}`);
    if (range.integer === true && !Number.isInteger(v)) this.fail(field, `must be an integer, got ${v}`);
    if (range.min !== undefined && v < range.min) this.fail(field, `must be at least ${range.min}, got ${v}`);
    if (range.max !== undefined && v > range.max) this.fail(field, `must be at most ${range.max}, got ${v}`);
    return v;
  }

  optionalNumber(o: JsonRecord, key: string, path: string, range: NumberRange = {}): number | null {
    return o[key] === undefined || o[key] === null ? null : this.number(o, key, path, range);
  }

  /** An accuracy or a rate: a number in [0, 1]. */
  fraction(o: JsonRecord, key: string, path: string): number {
    return this.number(o, key, path, { min: 0, max: 1 });
  }

  optionalFraction(o: JsonRecord, key: string, path: string): number | null {
    return o[key] === undefined || o[key] === null ? null : this.fraction(o, key, path);
  }

  boolean(o: JsonRecord, key: string, path: string): boolean {
    const v = o[key];
    if (typeof v !== "boolean") this.fail(join(path, key), `must be true or false, got ${describe(v)}`);
    return v;
  }

  oneOf<T extends string>(o: JsonRecord, key: string, path: string, options: readonly T[]): T {
    const v = o[key];
    if (typeof v !== "string" || !options.includes(v as T))
      this.fail(join(path, key), `must be one of ${options.map((s) => JSON.stringify(s)).join(", ")}, got ${describe(v)}`);
    return v as T;
  }

  /** An array of non-negative integers (route counts). */
  counts(o: JsonRecord, key: string, path: string): number[] {
    const arr = this.array(o, key, path);
    const field = join(path, key);
    return arr.map((v, i) => this.checkNumber(v, join(field, i), { min: 0, integer: true }));
  }

  /** An object whose values are all fractions (e.g. RA per attack), in key order. */
  fractionMap(o: JsonRecord, key: string, path: string): Record<string, number> {
    const m = this.object(o, key, path);
    const field = join(path, key);
    const out: Record<string, number> = {};
    for (const k of Object.keys(m)) out[k] = this.fraction(m, k, field);
    return out;
  }

  /** A command line as recorded: an array of strings (argv) or one string; null when absent. */
  command(o: JsonRecord, key: string, path: string): string | null {
    const v = o[key];
    if (v === undefined || v === null) return null;
    if (typeof v === "string") return v;
    if (Array.isArray(v) && v.every((s) => typeof s === "string")) return formatCommand(v as string[]);
    return this.fail(join(path, key), `must be a command line (an array of strings or a string), got ${describe(v)}`);
  }

  /** A machine description: an object of scalars (config.json's `machine`); null when absent. */
  machine(o: JsonRecord, key: string, path: string): MachineInfo | null {
    const m = this.optionalObject(o, key, path);
    if (m === null) return null;
    const out: MachineInfo = {};
    for (const [k, v] of Object.entries(m)) {
      if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") out[k] = v;
      else this.fail(join(join(path, key), k), `must be a string, number, boolean or null, got ${describe(v)}`);
    }
    return out;
  }
}

/** What `machineInfo()` records (src/train/run-dir.ts): hostname, cpu, cores, torch... */
export type MachineInfo = Record<string, string | number | boolean | null>;

/** argv as one shell-readable line (arguments with blanks or quotes are single-quoted). */
export function formatCommand(argv: readonly string[]): string {
  return argv.map((a) => (a === "" || /[^\w@%+=:,./-]/.test(a) ? `'${a.replaceAll("'", `'"'"'`)}'` : a)).join(" ");
}

/** One line for a machine: "vm: AMD EPYC, 2 cores, 24 GiB, node v20, torch 1.13.0, 2 threads, no CUDA". */
export function formatMachine(m: MachineInfo | null): string | null {
  if (m === null) return null;
  const parts: string[] = [];
  const known = new Set(["hostname", "cpu", "cores", "memoryGiB", "platform", "node", "torch", "threads", "cuda"]);
  if (m.cpu !== undefined && m.cpu !== null) parts.push(String(m.cpu));
  if (typeof m.cores === "number") parts.push(`${m.cores} cores`);
  if (typeof m.memoryGiB === "number") parts.push(`${m.memoryGiB} GiB`);
  if (m.platform !== undefined && m.platform !== null) parts.push(String(m.platform));
  if (m.node !== undefined && m.node !== null) parts.push(`node ${m.node}`);
  if (m.torch !== undefined && m.torch !== null) parts.push(`LibTorch ${m.torch}`);
  if (typeof m.threads === "number") parts.push(`${m.threads} threads`);
  if (typeof m.cuda === "boolean") parts.push(m.cuda ? "CUDA" : "no CUDA");
  // Fields a newer writer adds (a GPU name, say) are kept rather than dropped.
  for (const [k, v] of Object.entries(m)) if (!known.has(k) && v !== null) parts.push(`${k} ${v}`);
  const host = m.hostname === undefined || m.hostname === null ? "" : `${m.hostname}: `;
  return `${host}${parts.join(", ")}`;
}
