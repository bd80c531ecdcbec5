// A small zip reader (stored and deflated entries, Zip64) over a file descriptor: the
// central directory is read once, each member on demand, and its CRC-32 is checked.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { crc32, inflateRawSync } from "node:zlib";
import { ArchiveError } from "./tar.js";

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

function u64(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 4294967296;
}

export class ZipReader {
  readonly path: string;
  readonly entries: ZipEntry[];
  private fd: number;

  private constructor(path: string, fd: number, entries: ZipEntry[]) {
    this.path = path;
    this.fd = fd;
    this.entries = entries;
  }

  static open(path: string): ZipReader {
    const fd = openSync(path, "r");
    try {
      return new ZipReader(path, fd, readDirectory(path, fd));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** The uncompressed contents of an entry, CRC-checked. */
  read(e: ZipEntry): Buffer {
    const lh = this.bytes(e.localOffset, 30, e.name);
    if (lh.readUInt32LE(0) !== 0x04034b50) throw new ArchiveError(`${this.path}: corrupt zip (bad local header of ${e.name})`);
    const start = e.localOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    const raw = this.bytes(start, e.compressedSize, e.name);
    let data: Buffer;
    if (e.method === 0) data = raw;
    else if (e.method === 8) {
      try {
        data = inflateRawSync(raw);
      } catch (err) {
        throw new ArchiveError(
          `${this.path}: corrupt zip member ${e.name} (${err instanceof Error ? err.message : String(err)})`,
        );
      }
    } else
      throw new ArchiveError(`${this.path}: zip member ${e.name} uses compression method ${e.method} (only stored and deflate)`);
    if (data.length !== e.size || crc32(data) !== e.crc)
      throw new ArchiveError(`${this.path}: zip member ${e.name} fails its CRC-32 check`);
    return data;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private bytes(at: number, n: number, what: string): Buffer {
    const b = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const r = readSync(this.fd, b, got, n - got, at + got);
      if (r === 0) throw new ArchiveError(`${this.path}: truncated zip (ends inside ${what})`);
      got += r;
    }
    return b;
  }
}

function readAt(fd: number, at: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const r = readSync(fd, b, got, n - got, at + got);
    if (r === 0) break;
    got += r;
  }
  return b.subarray(0, got);
}

function readDirectory(path: string, fd: number): ZipEntry[] {
  const size = fstatSync(fd).size;
  const tailLen = Math.min(size, 22 + 65535 + 20);
  const tail = readAt(fd, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ArchiveError(`${path}: not a zip file, or truncated (no end-of-central-directory record)`);
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== 0x07064b50) throw new ArchiveError(`${path}: corrupt zip (Zip64 locator missing)`);
    const rec = readAt(fd, u64(tail, loc + 8), 56);
    if (rec.length < 56 || rec.readUInt32LE(0) !== 0x06064b50) throw new ArchiveError(`${path}: corrupt zip (bad Zip64 record)`);
    count = u64(rec, 32);
    cdSize = u64(rec, 40);
    cdOffset = u64(rec, 48);
  }
  const cd = readAt(fd, cdOffset, cdSize);
  if (cd.length < cdSize) throw new ArchiveError(`${path}: truncated zip (central directory cut off)`);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50)
      throw new ArchiveError(`${path}: corrupt zip central directory (entry ${i})`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localOffset = cd.readUInt32LE(p + 42);
    const name = cd.toString("utf8", p + 46, p + 46 + nameLen);
    let x = p + 46 + nameLen;
    const xend = x + extraLen;
    while (x + 4 <= xend) {
      const id = cd.readUInt16LE(x);
      const len = cd.readUInt16LE(x + 2);
      if (id === 0x0001) {
        let q = x + 4;
        if (usize === 0xffffffff) {
          usize = u64(cd, q);
          q += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = u64(cd, q);
          q += 8;
        }
        if (localOffset === 0xffffffff) localOffset = u64(cd, q);
      }
      x += 4 + len;
    }
    if ((flags & 1) !== 0) throw new ArchiveError(`${path}: zip member ${name} is encrypted`);
    entries.push({ name, method, flags, crc, compressedSize, size: usize, localOffset });
    p = xend + commentLen;
  }
  return entries;
}
