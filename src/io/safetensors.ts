// Safetensors checkpoints (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header, then the tensors' raw bytes back to back.
// Saving is atomic; loading validates the whole header before allocating anything and
// reads each tensor with positioned reads at its offset, so no byte is read twice.

import { kMaxLength } from "node:buffer";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants as fsConstants,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { fromBytes } from "../tensor/creation.js";
import { elementSize } from "../tensor/dtype.js";
import { type Device, Tensor } from "../tensor/tensor.js";
import {
  checkHeaderLength,
  compareNames,
  encodeSafetensorsHeader,
  HEADER_LENGTH_BYTES,
  type HeaderTensorSpec,
  METADATA_KEY,
  parseSafetensorsHeader,
  quoteName,
  readHeaderLength,
  SafetensorsError,
  type SafetensorsHeader,
} from "./safetensors-header.js";

export {
  MAX_HEADER_BYTES,
  type SafetensorsDType,
  SafetensorsError,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
} from "./safetensors-header.js";

export interface LoadSafetensorsOptions {
  /** Load only these tensors (each must exist); default all. The result follows this order. */
  names?: readonly string[];
  /** Where the tensors go; default "cpu". */
  device?: Device;
}

export interface SafetensorsContents {
  /** In data order of the file (name order for files we write), or in options.names order. */
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Most headers are a few KB: one read of this size usually gets length and header together. */
const FIRST_READ_BYTES = 64 * 1024;

function readFully(fd: number, into: Uint8Array, position: number, path: string, what: string): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) {
      throw new SafetensorsError(
        path,
        `${what}: the file ended ${into.length - done} bytes early (was it truncated while reading?)`,
      );
    }
    done += n;
  }
}

function readHeaderFromFd(fd: number, path: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < HEADER_LENGTH_BYTES) {
    throw new SafetensorsError(path, `the file has ${fileSize} bytes, too few for the 8-byte header length`);
  }
  const first = Buffer.allocUnsafe(Math.min(fileSize, HEADER_LENGTH_BYTES + FIRST_READ_BYTES));
  readFully(fd, first, 0, path, "header");
  const n = checkHeaderLength(path, readHeaderLength(first), fileSize);
  let header: Uint8Array;
  if (HEADER_LENGTH_BYTES + n <= first.length) {
    header = first.subarray(HEADER_LENGTH_BYTES, HEADER_LENGTH_BYTES + n);
  } else {
    const whole = Buffer.allocUnsafe(n);
    first.copy(whole, 0, HEADER_LENGTH_BYTES);
    const have = first.length - HEADER_LENGTH_BYTES;
    readFully(fd, whole.subarray(have), HEADER_LENGTH_BYTES + have, path, "header");
    header = whole;
  }
  return parseSafetensorsHeader(path, header, fileSize);
}

function withFd<T>(path: string, fn: (fd: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new SafetensorsError(path, `cannot open: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  try {
    return fn(fd);
  } catch (e) {
    // I/O errors (EISDIR, EIO) come from node without the context of what was being read.
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(path, `cannot read: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  } finally {
    closeSync(fd);
  }
}

/** The validated header of a safetensors file (names, dtypes, shapes, offsets, metadata); no tensor data is read. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  return withFd(path, (fd) => readHeaderFromFd(fd, path));
}

/** Loads tensors from a safetensors file. Every error is a SafetensorsError naming the file. */
export function loadSafetensors(path: string, options: LoadSafetensorsOptions = {}): SafetensorsContents {
  return withFd(path, (fd) => {
    const header = readHeaderFromFd(fd, path);
    let wanted = [...header.tensors.values()];
    if (options.names !== undefined) {
      wanted = [...new Set(options.names)].map((name) => {
        const info = header.tensors.get(name);
        if (info === undefined) {
          const have = [...header.tensors.keys()];
          const listed =
            have.length > 10 ? `${have.slice(0, 10).map(quoteName).join(", ")}, ...` : have.map(quoteName).join(", ");
          throw new SafetensorsError(path, `tensor ${quoteName(name)} is not in the file (it has ${have.length}: ${listed})`);
        }
        return info;
      });
    }
    for (const info of wanted) {
      if (info.byteLength > kMaxLength) {
        throw new SafetensorsError(
          path,
          `tensor ${quoteName(info.name)}: ${info.byteLength} bytes exceed the largest buffer Node can allocate (${kMaxLength})`,
        );
      }
    }
    const device = options.device;
    const tensors = new Map<string, Tensor>();
    try {
      for (const info of wanted) {
        const bytes = Buffer.allocUnsafe(info.byteLength);
        readFully(fd, bytes, info.fileOffset, path, `tensor ${quoteName(info.name)}`);
        const cpu = fromBytes(bytes, info.shape, info.dtype);
        if (device === undefined || device === "cpu") {
          tensors.set(info.name, cpu);
        } else {
          try {
            tensors.set(info.name, cpu.to(device));
          } finally {
            cpu.dispose();
          }
        }
      }
    } catch (e) {
      for (const t of tensors.values()) t.dispose();
      if (e instanceof SafetensorsError) throw e;
      throw new SafetensorsError(path, `loading tensors failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    return { tensors, metadata: { ...header.metadata } };
  });
}

interface Pending extends HeaderTensorSpec {
  tensor: Tensor;
}

function collectTensors(path: string, tensors: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>): Pending[] {
  const entries: [string, unknown][] = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const out: Pending[] = [];
  for (const [name, t] of entries) {
    if (typeof name !== "string") throw new SafetensorsError(path, `tensor names must be strings, got ${typeof name}`);
    if (name === METADATA_KEY)
      throw new SafetensorsError(path, `'${METADATA_KEY}' is reserved for metadata and cannot name a tensor`);
    if (!(t instanceof Tensor)) throw new SafetensorsError(path, `tensor ${quoteName(name)} is not a Tensor`);
    if (t.isDisposed) throw new SafetensorsError(path, `tensor ${quoteName(name)} was already disposed`);
    const shape = t.shape;
    const dtype = t.dtype;
    out.push({ name, tensor: t, dtype, shape, byteLength: shape.reduce((a, b) => a * b, 1) * elementSize(dtype) });
  }
  return out.sort((a, b) => compareNames(a.name, b.name));
}

function checkMetadata(path: string, metadata: Readonly<Record<string, string>> | undefined): void {
  if (metadata === undefined) return;
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string")
      throw new SafetensorsError(path, `metadata ${quoteName(k)} is a ${typeof v}; safetensors metadata values are strings`);
  }
}

function writeFully(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done);
}

/** Makes the rename itself durable: without it a crash can bring back the old directory entry. */
function fsyncDirectory(dir: string): void {
  if (process.platform === "win32") return;
  const dfd = openSync(dir, fsConstants.O_RDONLY);
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/**
 * Writes tensors (in name order, data aligned to 8 bytes) and optional string metadata to
 * a safetensors file. Atomic: the data goes to a temporary file in the same directory that
 * replaces path only once complete and fsynced, so on any error an existing file at path
 * is left as it was. Tensors are written one by one; any device and layout is accepted.
 */
export function saveSafetensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
  metadata?: Readonly<Record<string, string>>,
): void {
  const pending = collectTensors(path, tensors);
  checkMetadata(path, metadata);
  const header = encodeSafetensorsHeader(pending, metadata);

  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "wx");
    writeFully(fd, header);
    for (const p of pending) {
      const bytes = p.tensor.toBytes();
      if (bytes.length !== p.byteLength) {
        throw new Error(`tensor ${quoteName(p.name)} produced ${bytes.length} bytes, expected ${p.byteLength}`);
      }
      writeFully(fd, bytes);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // The write error is the one worth reporting.
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // Not created (e.g. missing directory) or already gone.
    }
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(path, `saving failed, file left unchanged: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
  try {
    fsyncDirectory(dir);
  } catch (e) {
    throw new SafetensorsError(path, `saved, but syncing the directory failed: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
}
