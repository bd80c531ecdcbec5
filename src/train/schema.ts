// A small declarative schema for training configs: presets (JSON files) and CLI overrides are
// checked against the same description, and every error names the file, the key and what is
// allowed. Hand-written rather than a JSON-Schema library because the same field table also
// parses `--set key=value` strings and lists itself in `rmoe train --help`.

export type FieldSpec =
  | {
      type: "number";
      min?: number;
      max?: number;
      integer?: boolean /** Accept "a/b" strings (8/255). */;
      fraction?: boolean;
      doc?: string;
    }
  | { type: "string"; enum?: readonly string[]; nullable?: boolean; doc?: string }
  | { type: "boolean"; doc?: string }
  | { type: "numbers"; min?: number; integer?: boolean; doc?: string }
  | { type: "object"; fields: Record<string, FieldSpec>; doc?: string };

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export class ConfigError extends Error {
  override name = "ConfigError";
}

function describe(f: FieldSpec): string {
  switch (f.type) {
    case "number": {
      const kind = f.integer ? "an integer" : "a number";
      const range = [f.min !== undefined ? `>= ${f.min}` : "", f.max !== undefined ? `<= ${f.max}` : ""]
        .filter(Boolean)
        .join(" and ");
      return `${kind}${range ? ` ${range}` : ""}${f.fraction ? ' (or a fraction like "8/255")' : ""}`;
    }
    case "string":
      return f.enum
        ? `one of ${f.enum.map((e) => `"${e}"`).join(", ")}${f.nullable ? " or null" : ""}`
        : `a string${f.nullable ? " or null" : ""}`;
    case "boolean":
      return "true or false";
    case "numbers":
      return `a list of ${f.integer ? "integers" : "numbers"}${f.min !== undefined ? ` >= ${f.min}` : ""}`;
    case "object":
      return `an object with keys ${Object.keys(f.fields).join(", ")}`;
  }
}

function fail(source: string, key: string, f: FieldSpec, got: unknown): never {
  throw new ConfigError(`${source}: '${key}' must be ${describe(f)}, got ${JSON.stringify(got)}`);
}

function parseFraction(v: string): number | null {
  // A number in any plain or exponent notation (1e-4, .5), optionally over a divisor (8/255).
  const m = /^\s*(-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*(?:\/\s*(\d+(?:\.\d+)?(?:e[-+]?\d+)?))?\s*$/i.exec(v);
  if (m === null) return null;
  const num = Number(m[1]);
  return m[2] === undefined ? num : num / Number(m[2]);
}

function checkNumber(v: number, f: Extract<FieldSpec, { type: "number" | "numbers" }>): boolean {
  if (!Number.isFinite(v)) return false;
  if (f.integer && !Number.isInteger(v)) return false;
  if (f.min !== undefined && v < f.min) return false;
  if (f.type === "number" && f.max !== undefined && v > f.max) return false;
  return true;
}

/**
 * Validates value against spec. Objects may omit keys (defaults fill them later) but may not
 * have unknown ones. Returns the value with fractions resolved to numbers.
 */
export function validate(value: Json, spec: FieldSpec, source: string, key: string): Json {
  switch (spec.type) {
    case "number": {
      const n = typeof value === "string" && spec.fraction ? parseFraction(value) : value;
      if (typeof n !== "number" || !checkNumber(n, spec)) fail(source, key, spec, value);
      return n;
    }
    case "string":
      if (value === null && spec.nullable) return null;
      if (typeof value !== "string" || (spec.enum !== undefined && !spec.enum.includes(value))) fail(source, key, spec, value);
      return value;
    case "boolean":
      if (typeof value !== "boolean") fail(source, key, spec, value);
      return value;
    case "numbers":
      if (!Array.isArray(value) || value.some((v) => typeof v !== "number" || !checkNumber(v, spec)))
        fail(source, key, spec, value);
      return value;
    case "object": {
      if (value === null || typeof value !== "object" || Array.isArray(value)) fail(source, key, spec, value);
      const out: { [k: string]: Json } = {};
      for (const [k, v] of Object.entries(value)) {
        const sub = spec.fields[k];
        const path = key === "" ? k : `${key}.${k}`;
        if (sub === undefined) {
          throw new ConfigError(`${source}: unknown key '${path}' (allowed: ${Object.keys(spec.fields).join(", ")})`);
        }
        out[k] = validate(v, sub, source, path);
      }
      return out;
    }
  }
}

/** The spec of a dotted key ('optimizer.lr'), or an error listing the keys that exist. */
export function fieldAt(spec: FieldSpec, path: string, source: string): FieldSpec {
  let f = spec;
  const parts = path.split(".");
  for (const [i, p] of parts.entries()) {
    if (f.type !== "object") throw new ConfigError(`${source}: '${parts.slice(0, i).join(".")}' has no key '${p}'`);
    const sub: FieldSpec | undefined = f.fields[p];
    if (sub === undefined) {
      const at = parts.slice(0, i).join(".");
      throw new ConfigError(
        `${source}: unknown key '${path}' (${at === "" ? "top-level" : `'${at}'`} keys: ${Object.keys(f.fields).join(", ")})`,
      );
    }
    f = sub;
  }
  return f;
}

/** Parses a command-line string into the type the field at path wants, then validates it. */
export function parseOverride(spec: FieldSpec, path: string, raw: string, source: string): Json {
  const f = fieldAt(spec, path, source);
  let v: Json;
  switch (f.type) {
    case "number":
      v = f.fraction ? raw : raw.trim() === "" ? raw : Number(raw);
      if (typeof v === "number" && Number.isNaN(v)) v = raw;
      break;
    case "boolean":
      v = raw === "true" ? true : raw === "false" ? false : raw;
      break;
    case "numbers":
      v = raw.trim() === "" ? [] : raw.split(",").map((s) => (Number.isNaN(Number(s)) ? Number.NaN : Number(s)));
      if ((v as number[]).some((n) => Number.isNaN(n))) v = raw;
      break;
    case "string":
      v = f.nullable && raw === "null" ? null : raw;
      break;
    case "object":
      throw new ConfigError(
        `${source}: '${path}' is a group of settings; set one of its keys (${Object.keys(f.fields).join(", ")})`,
      );
  }
  return validate(v, f, source, path);
}

/** Sets a dotted key in a plain object tree, creating groups on the way. */
export function setPath(target: { [k: string]: Json }, path: string, value: Json): void {
  const parts = path.split(".");
  let o = target;
  for (const p of parts.slice(0, -1)) {
    const next = o[p];
    if (next === undefined || next === null || typeof next !== "object" || Array.isArray(next)) o[p] = {};
    o = o[p] as { [k: string]: Json };
  }
  o[parts[parts.length - 1] as string] = value;
}

/** Deep merge of plain objects (b wins); arrays and scalars are replaced. */
export function merge(a: Json, b: Json): Json {
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object" || Array.isArray(a) || Array.isArray(b))
    return b;
  const out: { [k: string]: Json } = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = k in out ? merge(out[k] as Json, v) : v;
  return out;
}
