import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ArchiveError, readTarFile } from "../../src/data/tar.js";
import { ZipReader } from "../../src/data/zip.js";
import { makeTar, makeTarGz, makeZip, randomBytes, tempDir } from "./synth.js";

const tmp = tempDir("archive");
after(tmp.cleanup);

const files = [
  { name: "top/a.txt", data: Buffer.from("hello") },
  { name: "top/empty.bin", data: new Uint8Array(0) },
  { name: "top/block.bin", data: randomBytes(512 * 3, 1) },
  { name: `top/${"long-name-".repeat(15)}end.bin`, data: randomBytes(700, 2) },
  { name: "top/big.bin", data: randomBytes(3_000_000, 3) },
];

async function entries(path: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for await (const e of readTarFile(path)) if (e.type === "file") out.set(e.name, e.data);
  return out;
}

describe("archives", () => {
  it("reads .tar.gz and .tar members (ustar, pax long names, directories) exactly", async () => {
    const gz = join(tmp.dir, "t.tar.gz");
    writeFileSync(gz, makeTarGz(files, { dirs: true }));
    const tar = join(tmp.dir, "t.tar");
    writeFileSync(tar, makeTar(files));
    for (const p of [gz, tar]) {
      const got = await entries(p);
      assert.deepEqual(
        [...got.keys()],
        files.map((f) => f.name),
        p,
      );
      for (const f of files) assert.ok(Buffer.from(f.data).equals(got.get(f.name) as Buffer), `${p}: ${f.name}`);
    }
  });

  it("names the archive when it is truncated or corrupt", async () => {
    const whole = makeTarGz(files);
    const cut = join(tmp.dir, "cut.tar.gz");
    writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    await assert.rejects(entries(cut), (e: unknown) => e instanceof ArchiveError && e.message.startsWith(`${cut}: truncated`));
    const plain = makeTar(files);
    const cutTar = join(tmp.dir, "cut.tar");
    writeFileSync(cutTar, plain.subarray(0, 2048 + 100));
    await assert.rejects(entries(cutTar), (e: unknown) => e instanceof ArchiveError && /truncated archive/.test(e.message));
    const garbled = Buffer.from(plain);
    garbled[5] = 0x41;
    const bad = join(tmp.dir, "bad.tar");
    writeFileSync(bad, garbled);
    await assert.rejects(entries(bad), (e: unknown) => e instanceof ArchiveError && /checksum mismatch/.test(e.message));
  });

  it("reads zip members, stored and deflated, and checks their CRC", () => {
    for (const stored of [false, true]) {
      const p = join(tmp.dir, `z${stored}.zip`);
      writeFileSync(p, makeZip(files, { stored }));
      const z = ZipReader.open(p);
      assert.deepEqual(
        z.entries.map((e) => e.name),
        files.map((f) => f.name),
      );
      for (const [i, f] of files.entries()) assert.ok(Buffer.from(f.data).equals(z.read(z.entries[i]!)), f.name);
      z.close();
    }
    const raw = makeZip([{ name: "x.bin", data: randomBytes(100, 4) }], { stored: true });
    raw[40] = (raw[40] as number) ^ 1;
    const p = join(tmp.dir, "crc.zip");
    writeFileSync(p, raw);
    const z = ZipReader.open(p);
    assert.throws(() => z.read(z.entries[0]!), /x\.bin fails its CRC-32 check/);
    z.close();
    const short = join(tmp.dir, "short.zip");
    writeFileSync(short, makeZip(files).subarray(0, 1000));
    assert.throws(() => ZipReader.open(short), /short\.zip: not a zip file, or truncated/);
  });
});
