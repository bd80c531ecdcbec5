// Checksums of prepared files and their verification, with errors that name the file.
import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";

export type DigestAlgorithm = "md5" | "sha256";

export function digestBytes(data: Uint8Array, algorithm: DigestAlgorithm): string {
  return createHash(algorithm).update(data).digest("hex");
}

export async function digestFile(path: string, algorithm: DigestAlgorithm): Promise<string> {
  const h = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** A file whose size or checksum is not the expected one. */
export class IntegrityError extends Error {
  readonly file: string;
  /** The message without the file name. */
  readonly reason: string;
  constructor(file: string, reason: string) {
    super(`${file}: ${reason}`);
    this.name = "IntegrityError";
    this.file = file;
    this.reason = reason;
  }
}

export interface ExpectedFile {
  bytes: number;
  digest: string;
  algorithm: DigestAlgorithm;
}

/** Checks size, then checksum; throws IntegrityError naming the file. */
export async function verifyFile(path: string, expected: ExpectedFile): Promise<void> {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new IntegrityError(path, "missing");
  }
  if (size !== expected.bytes) {
    throw new IntegrityError(path, `${size} bytes, expected ${expected.bytes}${size < expected.bytes ? " (truncated?)" : ""}`);
  }
  const got = await digestFile(path, expected.algorithm);
  if (got !== expected.digest) {
    throw new IntegrityError(path, `${expected.algorithm.toUpperCase()} ${got} does not match the expected ${expected.digest}`);
  }
}
