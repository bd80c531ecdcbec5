// A small streaming tar reader (ustar, GNU long names, pax path headers) over any byte
// stream, and .tar.gz files read with node:zlib. No external tar is needed.
import { createReadStream, statSync } from "node:fs";
import { pipeline } from "node:stream";
import { createGunzip } from "node:zlib";

export interface TarEntry {
  /** Path inside the archive, without a leading "./". */
  name: string;
  type: "file" | "directory" | "other";
  size: number;
  /** File contents (empty for directories and other types). */
  data: Buffer;
}

/** A corrupt, truncated or unsupported archive; the message names the file. */
export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArchiveError";
  }
}

function cString(b: Buffer, start: number, len: number): string {
  const end = b.indexOf(0, start);
  return b.toString("utf8", start, end < 0 || end > start + len ? start + len : end);
}

function octal(b: Buffer, start: number, len: number, what: string): number {
  if (((b[start] as number) & 0x80) !== 0) {
    // GNU base-256 for large values.
    let v = 0;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + (b[i] as number);
    return v;
  }
  const s = cString(b, start, len).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new ArchiveError(`${what}: bad octal field '${s}'`);
  return Number.parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = octal(h, 148, 8, "tar header checksum");
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] as number);
  return sum === stored;
}

function paxPath(data: Buffer): string | null {
  let p = 0;
  let path: string | null = null;
  while (p < data.length) {
    const sp = data.indexOf(32, p);
    if (sp < 0) break;
    const len = Number.parseInt(data.toString("utf8", p, sp), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const rec = data.toString("utf8", sp + 1, p + len - 1);
    const eq = rec.indexOf("=");
    if (eq > 0 && rec.slice(0, eq) === "path") path = rec.slice(eq + 1);
    p += len;
  }
  return path;
}

function clean(name: string): string {
  return name.replace(/^(\.\/)+/, "").replace(/^\/+/, "");
}

/**
 * Entries of a tar stream, in archive order. `what` names the archive in errors. The whole
 * contents of each entry is buffered (fine for image files; do not use for huge members).
 */
export async function* readTar(source: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<TarEntry> {
  const header = Buffer.alloc(512);
  let headerFill = 0;
  let entry: { name: string; type: TarEntry["type"] | "longname" | "pax" | "globalpax"; data: Buffer; fill: number } | null =
    null;
  let skip = 0;
  let offset = 0;
  let zeroBlocks = 0;
  let ended = false;
  let nextName: string | null = null;

  for await (const raw of source) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    let p = 0;
    while (p < chunk.length && !ended) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - p);
        skip -= n;
        p += n;
        offset += n;
        continue;
      }
      if (entry !== null) {
        const n = Math.min(entry.data.length - entry.fill, chunk.length - p);
        chunk.copy(entry.data, entry.fill, p, p + n);
        entry.fill += n;
        p += n;
        offset += n;
        if (entry.fill < entry.data.length) continue;
        const e = entry;
        entry = null;
        skip = (512 - (e.data.length % 512)) % 512;
        if (e.type === "longname") nextName = cString(e.data, 0, e.data.length);
        else if (e.type === "pax") nextName = paxPath(e.data) ?? nextName;
        else if (e.type !== "globalpax") yield { name: e.name, type: e.type, size: e.data.length, data: e.data };
        continue;
      }
      const n = Math.min(512 - headerFill, chunk.length - p);
      chunk.copy(header, headerFill, p, p + n);
      headerFill += n;
      p += n;
      if (headerFill < 512) continue;
      headerFill = 0;
      const at = offset;
      offset += 512;
      if (header.every((v) => v === 0)) {
        zeroBlocks++;
        if (zeroBlocks >= 2) ended = true;
        continue;
      }
      if (zeroBlocks > 0) throw new ArchiveError(`${what}: corrupt tar (data after an end-of-archive block at byte ${at})`);
      if (!checksumOk(header)) throw new ArchiveError(`${what}: corrupt tar header at byte ${at} (checksum mismatch)`);
      let name = cString(header, 0, 100);
      const magic = header.toString("latin1", 257, 262);
      if (magic === "ustar") {
        const prefix = cString(header, 345, 155);
        if (prefix !== "") name = `${prefix}/${name}`;
      }
      if (nextName !== null) {
        name = nextName;
        nextName = null;
      }
      const size = octal(header, 124, 12, `${what}: tar header at byte ${at}`);
      const flag = String.fromCharCode(header[156] as number);
      const type =
        flag === "0" || flag === "\0" || flag === "7"
          ? "file"
          : flag === "5"
            ? "directory"
            : flag === "L"
              ? "longname"
              : flag === "x"
                ? "pax"
                : flag === "g"
                  ? "globalpax"
                  : "other";
      const cleaned = clean(name);
      if (size === 0) {
        if (type === "file" || type === "directory" || type === "other") {
          yield { name: cleaned, type, size: 0, data: Buffer.alloc(0) };
        }
        continue;
      }
      entry = { name: cleaned, type, data: Buffer.allocUnsafe(size), fill: 0 };
    }
    if (ended) break;
  }
  if (!ended) {
    if (entry !== null) throw new ArchiveError(`${what}: truncated archive (ends inside ${entry.name})`);
    throw new ArchiveError(`${what}: truncated archive (no end-of-archive marker)`);
  }
}

export type ReadProgress = (bytesRead: number, totalBytes: number) => void;

/** Entries of a .tar.gz file (or a plain .tar when gzip is false). */
export function readTarFile(
  path: string,
  options: { gzip?: boolean; onRead?: ReadProgress; onRaw?: (chunk: Buffer) => void } = {},
) {
  const total = statSync(path).size;
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  let read = 0;
  file.on("data", (c) => {
    const b = c as Buffer;
    read += b.length;
    options.onRaw?.(b);
    options.onRead?.(read, total);
  });
  const gzip = options.gzip ?? !/\.tar$/i.test(path);
  if (!gzip) return readTar(file, path);
  const gunzip = createGunzip();
  const out = pipeline(file, gunzip, () => {});
  return readTar(wrapErrors(out, path), path);
}

async function* wrapErrors(stream: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<Uint8Array> {
  try {
    yield* stream;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const msg = e instanceof Error ? e.message : String(e);
    if (code === "Z_BUF_ERROR" || /unexpected end of file/i.test(msg)) throw new ArchiveError(`${what}: truncated gzip stream`);
    if (typeof code === "string" && code.startsWith("Z_")) throw new ArchiveError(`${what}: corrupt gzip stream (${msg})`);
    throw new ArchiveError(`${what}: ${msg}`);
  }
}
