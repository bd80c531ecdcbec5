// The safetensors header: dtype names, parsing and validation of untrusted headers, and
// serialisation of ours. Validation is complete before any tensor is allocated, so a
// hostile file costs at most the header read.
import type { DType } from "../tensor/dtype.js";
import { elementSize } from "../tensor/dtype.js";
import { JsonNumber, type JsonObject, JsonParseError, type JsonValue, parseStrictJson } from "./strict-json.js";

/** The dtype codes of the safetensors format that map onto robust-moe dtypes. */
export type SafetensorsDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

const FROM_FILE: Record<SafetensorsDType, DType> = {
  F64: "float64",
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};

const TO_FILE = Object.fromEntries(Object.entries(FROM_FILE).map(([k, v]) => [v, k])) as Record<DType, SafetensorsDType>;

function isSafetensorsDType(s: string): s is SafetensorsDType {
  return Object.hasOwn(FROM_FILE, s);
}

export function safetensorsDTypeOf(d: DType): SafetensorsDType {
  const code = TO_FILE[d];
  if (code === undefined) throw new TypeError(`dtype '${String(d)}' has no safetensors code`);
  return code;
}

/** Where the 8-byte little-endian header length is followed by the JSON header. */
export const HEADER_LENGTH_BYTES = 8;
/** The limit of the reference implementation: larger headers are refused unread. */
export const MAX_HEADER_BYTES = 100_000_000;
/** The key that holds string-to-string metadata instead of a tensor. */
export const METADATA_KEY = "__metadata__";

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: DType;
  /** The dtype as the file spells it. */
  readonly fileDType: SafetensorsDType;
  readonly shape: readonly number[];
  /** [begin, end) relative to the start of the data buffer. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute position of the first byte in the file. */
  readonly fileOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  /** In the order of their data in the file. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** N, the JSON header's length in bytes (trailing padding included). */
  readonly headerLength: number;
  /** 8 + N: where the data buffer starts in the file. */
  readonly dataStart: number;
  readonly dataLength: number;
}

/** Every problem with a safetensors file; the message names the file and what is at fault. */
export class SafetensorsError extends Error {
  readonly path: string;

  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.name = "SafetensorsError";
    this.path = path;
  }
}

/** Names in messages: quoted, and bounded so a hostile name cannot flood a log. */
export function quoteName(name: string): string {
  const short = name.length > 120 ? `${name.slice(0, 100)}...(${name.length} chars)` : name;
  let shown = "";
  for (let i = 0; i < short.length; i++) {
    const c = short.charCodeAt(i);
    shown += c < 0x20 || c === 0x7f ? `\\u${c.toString(16).padStart(4, "0")}` : short[i];
  }
  return `'${shown}'`;
}

function formatShape(shape: readonly number[]): string {
  if (shape.length <= 16) return `[${shape.join(", ")}]`;
  return `[${shape.slice(0, 8).join(", ")}, ... (${shape.length} dims)]`;
}

function describeJson(v: JsonValue): string {
  if (v === null) return "null";
  if (v instanceof JsonNumber) return v.text.length > 40 ? `${v.text.slice(0, 40)}...` : v.text;
  if (typeof v === "string") return quoteName(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Map) return "an object";
  return String(v);
}

/** Reads the 8-byte header length; bigint because a hostile value can exceed 2^53. */
export function readHeaderLength(prefix: Uint8Array): bigint {
  return new DataView(prefix.buffer, prefix.byteOffset, HEADER_LENGTH_BYTES).getBigUint64(0, true);
}

/**
 * Checks the header length against the file size before the header is read.
 * Returns N as a number (it is then at most MAX_HEADER_BYTES).
 */
export function checkHeaderLength(path: string, headerLength: bigint, fileSize: number): number {
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(path, `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(headerLength);
  if (HEADER_LENGTH_BYTES + n > fileSize) {
    throw new SafetensorsError(
      path,
      `header length ${n} is larger than the file: ${fileSize} bytes leave ${fileSize - HEADER_LENGTH_BYTES} after the 8-byte length`,
    );
  }
  return n;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Bytes a tensor needs, exactly, or null when that is beyond 2^64 (which no file can hold). */
function neededBytes(shape: readonly number[], itemSize: number): bigint | null {
  if (shape.includes(0)) return 0n;
  const limit = 1n << 64n;
  let bytes = BigInt(itemSize);
  for (const d of shape) {
    bytes *= BigInt(d);
    if (bytes >= limit) return null;
  }
  return bytes;
}

function integerList(path: string, where: string, v: JsonValue | undefined, field: string): number[] {
  if (v === undefined) throw new SafetensorsError(path, `${where}: missing '${field}'`);
  if (!Array.isArray(v)) throw new SafetensorsError(path, `${where}: '${field}' is ${describeJson(v)}, not an array`);
  return v.map((x, i) => {
    if (!(x instanceof JsonNumber) || !x.isIntegerLiteral || x.text.startsWith("-") || !Number.isSafeInteger(x.value)) {
      throw new SafetensorsError(path, `${where}: ${field}[${i}] is ${describeJson(x)}, not a non-negative integer`);
    }
    return x.value;
  });
}

interface Entry {
  name: string;
  dtype: DType;
  fileDType: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

function parseEntry(path: string, name: string, v: JsonValue, dataLength: number): Entry {
  const where = `tensor ${quoteName(name)}`;
  if (!(v instanceof Map)) throw new SafetensorsError(path, `${where}: entry is ${describeJson(v)}, not an object`);
  const dt = v.get("dtype");
  if (dt === undefined) throw new SafetensorsError(path, `${where}: missing 'dtype'`);
  if (typeof dt !== "string") throw new SafetensorsError(path, `${where}: 'dtype' is ${describeJson(dt)}, not a string`);
  if (!isSafetensorsDType(dt)) {
    throw new SafetensorsError(
      path,
      `unsupported dtype ${quoteName(dt)} for tensor ${quoteName(name)} (supported: ${Object.keys(FROM_FILE).join(", ")})`,
    );
  }
  const shape = integerList(path, where, v.get("shape"), "shape");
  const offsets = integerList(path, where, v.get("data_offsets"), "data_offsets");
  if (offsets.length !== 2) {
    throw new SafetensorsError(path, `${where}: data_offsets has ${offsets.length} entries, expected [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new SafetensorsError(path, `${where}: data_offsets [${begin}, ${end}] begin after they end`);
  if (end > dataLength) {
    throw new SafetensorsError(path, `${where}: data_offsets [${begin}, ${end}] end beyond the ${dataLength}-byte data buffer`);
  }
  const dtype = FROM_FILE[dt];
  const need = neededBytes(shape, elementSize(dtype));
  if (need === null || need !== BigInt(end - begin)) {
    throw new SafetensorsError(
      path,
      `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${formatShape(shape)} of ${dt} needs ` +
        (need === null ? "more than 2^64" : String(need)),
    );
  }
  return { name, dtype, fileDType: dt, shape, begin, end };
}

function parseMetadata(path: string, v: JsonValue): Record<string, string> {
  if (!(v instanceof Map)) throw new SafetensorsError(path, `'${METADATA_KEY}' is ${describeJson(v)}, not an object`);
  const out: Record<string, string> = {};
  for (const [k, value] of v) {
    if (typeof value !== "string") {
      throw new SafetensorsError(path, `'${METADATA_KEY}' entry ${quoteName(k)} is ${describeJson(value)}, not a string`);
    }
    // defineProperty, not assignment: a "__proto__" key must stay data.
    Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The buffer must be covered exactly: no overlap (aliasing) and no unaccounted bytes. */
function checkCoverage(path: string, entries: Entry[], dataLength: number): void {
  let at = 0;
  let prev: Entry | undefined;
  for (const e of entries) {
    if (e.begin < at && prev !== undefined) {
      throw new SafetensorsError(
        path,
        `tensor ${quoteName(e.name)}: data_offsets [${e.begin}, ${e.end}] overlap tensor ${quoteName(prev.name)} [${prev.begin}, ${prev.end}]`,
      );
    }
    if (e.begin > at) {
      const around =
        prev === undefined ? `before ${quoteName(e.name)}` : `between ${quoteName(prev.name)} and ${quoteName(e.name)}`;
      throw new SafetensorsError(path, `bytes [${at}, ${e.begin}) of the data buffer belong to no tensor (${around})`);
    }
    at = e.end;
    prev = e;
  }
  if (at !== dataLength) {
    throw new SafetensorsError(
      path,
      `the data buffer has ${dataLength} bytes but the tensors end at ${at}: bytes [${at}, ${dataLength}) belong to no tensor`,
    );
  }
}

/**
 * Validates the JSON header bytes (N of them, starting at file offset 8) of a file of
 * fileSize bytes. Checks: UTF-8, a JSON object without duplicate keys, supported dtypes,
 * integer shapes and offsets, byte counts, and exact coverage of the data buffer.
 */
export function parseSafetensorsHeader(path: string, headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  const headerLength = headerBytes.length;
  const dataStart = HEADER_LENGTH_BYTES + headerLength;
  const dataLength = fileSize - dataStart;
  if (dataLength < 0) throw new SafetensorsError(path, `header length ${headerLength} is larger than the file`);
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch (e) {
    throw new SafetensorsError(path, "header is not valid UTF-8", { cause: e });
  }
  if (!text.startsWith("{")) {
    throw new SafetensorsError(
      path,
      `header must be a JSON object starting with '{', found ${JSON.stringify(text.slice(0, 12))}`,
    );
  }
  let root: JsonValue;
  try {
    root = parseStrictJson(text);
  } catch (e) {
    if (e instanceof JsonParseError && e.duplicateKey !== undefined) {
      const msg =
        e.keyPath.length === 0
          ? `tensor ${quoteName(e.duplicateKey)} appears twice in the header`
          : `duplicate key ${quoteName(e.duplicateKey)} in header entry ${quoteName(e.keyPath.join("."))}`;
      throw new SafetensorsError(path, msg, { cause: e });
    }
    throw new SafetensorsError(path, `header is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (!(root instanceof Map)) throw new SafetensorsError(path, "header is not a JSON object");
  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, v] of root as JsonObject) {
    if (name === METADATA_KEY) metadata = parseMetadata(path, v);
    else entries.push(parseEntry(path, name, v, dataLength));
  }
  // (begin, end) order puts empty tensors before a tensor starting at the same offset, so
  // the coverage check is deterministic whatever the key order.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  checkCoverage(path, entries, dataLength);
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const e of entries) {
    tensors.set(e.name, {
      name: e.name,
      dtype: e.dtype,
      fileDType: e.fileDType,
      shape: e.shape,
      dataOffsets: [e.begin, e.end],
      fileOffset: dataStart + e.begin,
      byteLength: e.end - e.begin,
    });
  }
  return { tensors, metadata, headerLength, dataStart, dataLength };
}

/** Byte order of names as in the reference writer (UTF-8 bytes, which is code point order). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

export interface HeaderTensorSpec {
  name: string;
  dtype: DType;
  shape: readonly number[];
  byteLength: number;
}

/**
 * Serialises a header for tensors laid out back to back in the given order, padded with
 * spaces so the data starts at a multiple of 8 (aligned reads for memory-mapping readers).
 */
export function encodeSafetensorsHeader(
  specs: readonly HeaderTensorSpec[],
  metadata: Readonly<Record<string, string>> | undefined,
): Buffer {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const meta = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${meta.join(",")}}`);
  }
  let offset = 0;
  for (const s of specs) {
    const end = offset + s.byteLength;
    const dt = safetensorsDTypeOf(s.dtype);
    parts.push(`${JSON.stringify(s.name)}:{"dtype":"${dt}","shape":[${s.shape.join(",")}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = Buffer.from(`{${parts.join(",")}}`, "utf8");
  const pad = (8 - ((HEADER_LENGTH_BYTES + json.length) % 8)) % 8;
  const out = Buffer.alloc(HEADER_LENGTH_BYTES + json.length + pad, 0x20);
  out.writeBigUInt64LE(BigInt(json.length + pad), 0);
  json.copy(out, HEADER_LENGTH_BYTES);
  return out;
}
