import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { prepareCifar10 } from "../../src/data/cifar10-prepare.js";
import { repoRoot } from "../helpers/paths.js";
import { cifarSkip, root as realRoot } from "./real-data.js";
import { makeTarGz, randomBytes, synthCifar, tempDir } from "./synth.js";

const tmp = tempDir("data-cli");
after(tmp.cleanup);
const CODE = `const m = await import(${JSON.stringify(join(repoRoot, "dist/src/cli/data-command.js"))}); process.exitCode = await m.dataCommand(process.argv.slice(1));`;
let counter = 0;

function freshRoot(): string {
  const r = join(tmp.dir, `root${counter++}`);
  mkdirSync(r);
  return r;
}

function rmoeData(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", CODE, ...args], {
    encoding: "utf8",
    env: { ...process.env, RMOE_DATA: "" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts `rmoe data prepare cifar10 --from FIFO` and feeds it the first part of an archive. */
async function startOnFifo(root: string): Promise<{ child: ChildProcess; close: () => Promise<void> }> {
  const fifo = join(tmp.dir, `in${counter++}.tar.gz`);
  execFileSync("mkfifo", [fifo]);
  const child = spawn(
    process.execPath,
    ["--input-type=module", "-e", CODE, "prepare", "cifar10", "--root", root, "--from", fifo],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  // Read+write open: never blocks, and 60 KB fit the pipe buffer, so writes never block either.
  const fh = await open(fifo, "r+");
  const archive = makeTarGz([{ name: "cifar-10-batches-bin/data_batch_1.bin", data: randomBytes(3_000_000, 1) }]);
  await fh.write(archive.subarray(0, 60_000));
  await until(() => readdirSync(root).some((e) => e.startsWith(".partial-cifar10-")), 10_000, "the staging folder");
  await new Promise((r) => setTimeout(r, 300));
  return { child, close: () => fh.close() };
}

describe("rmoe data (CLI)", () => {
  it("prints usage and rejects unknown commands, datasets and options with exit code 2", () => {
    const help = rmoeData(["help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /rmoe data prepare|prepare <dataset>/);
    for (const args of [["frobnicate"], ["prepare"], ["prepare", "mnist"], ["prepare", "cifar10", "--bogus"], ["verify"]]) {
      const r = rmoeData(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /usage: rmoe data/);
    }
  });

  it("path prints the cache folder from --root", () => {
    const r = rmoeData(["path", "cifar10", "--root", "/some/where"]);
    assert.equal(r.stdout.trim(), "/some/where/cifar10");
  });

  it("prepare fails with exit code 1 and a message naming the bad file", () => {
    const root = freshRoot();
    const c = synthCifar(3, 2);
    const from = join(tmp.dir, "bins");
    mkdirSync(from);
    for (const [name, b] of c.bins) writeFileSync(join(from, name), b);
    const r = rmoeData(["prepare", "cifar10", "--root", root, "--from", from]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /rmoe data prepare: data_batch_1\.bin \(from .*bins\): 9219 bytes, expected 30730000/);
    assert.deepEqual(readdirSync(root), []);
    const t = rmoeData(["prepare", "tinyimagenet", "--root", root]);
    assert.equal(t.code, 1);
    assert.match(t.stderr, /TinyImageNet needs --from PATH/);
  });

  it("SIGINT stops a prepare and removes its staging folder (exit 130)", async () => {
    const root = freshRoot();
    const { child, close } = await startOnFifo(root);
    child.kill("SIGINT");
    // The child is blocked reading the FIFO: let its signal handler run, then end the input.
    await new Promise((r) => setTimeout(r, 300));
    await close();
    const [code] = (await once(child, "exit")) as [number | null];
    assert.equal(code, 130);
    assert.deepEqual(readdirSync(root), []);
  });

  it("after a SIGKILL mid-prepare there is no dataset, and the next prepare starts clean", async () => {
    const root = freshRoot();
    const { child, close } = await startOnFifo(root);
    child.kill("SIGKILL");
    await once(child, "exit");
    await close();
    const left = readdirSync(root);
    assert.equal(left.length, 1);
    assert.match(left[0] as string, /^\.partial-cifar10-\d+-/);
    const c = synthCifar(3, 2);
    const from = join(tmp.dir, "bins2");
    mkdirSync(from);
    for (const [name, b] of c.bins) writeFileSync(join(from, name), b);
    await prepareCifar10({ root, from, spec: c.spec });
    assert.deepEqual(readdirSync(root), ["cifar10"]);
  });

  it("verify and an idempotent prepare on the real cache", { skip: cifarSkip }, () => {
    const v = rmoeData(["verify", "cifar10", "--root", realRoot]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /cifar10: OK, 6 files match their MD5s/);
    const p = rmoeData(["prepare", "cifar10", "--root", realRoot]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /already prepared; MD5s verified/);
  });
});
