// CIFAR-10 on the real data (prepared by scripts/prepare-data.sh); skipped with the reason when absent.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CIFAR10_OFFICIAL, Cifar10, type Cifar10Manifest } from "../../src/data/cifar10.js";
import { prepareCifar10, verifyCifar10 } from "../../src/data/cifar10-prepare.js";
import { DataLoader } from "../../src/data/loader.js";
import { dispose, memoryStats } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { channelMeans, channelStds, cifarSkip, root } from "./real-data.js";
import { tempDir } from "./synth.js";

describe("CIFAR-10 (real data)", { skip: cifarSkip }, () => {
  let train: Cifar10;
  let test: Cifar10;
  let startLive = 0;
  before(() => {
    startLive = memoryStats().liveTensors;
    train = new Cifar10({ root, split: "train" });
    test = new Cifar10({ root, split: "test" });
  });
  after(() => {
    assert.equal(memoryStats().liveTensors, startLive, "tests leaked tensors");
  });

  it("the six files have the official MD5s", async () => {
    const m: Cifar10Manifest = await verifyCifar10({ root });
    assert.equal(m.official, true);
    for (const [name, md5] of Object.entries(CIFAR10_OFFICIAL.md5)) assert.equal(m.files[name]?.md5, md5, name);
  });

  it("has 50,000 train and 10,000 test images, 5,000 and 1,000 per class", () => {
    assert.equal(train.length, 50000);
    assert.equal(test.length, 10000);
    assert.deepEqual(train.classCounts(), new Array(10).fill(5000));
    assert.deepEqual(test.classCounts(), new Array(10).fill(1000));
    assert.deepEqual(train.imageShape, [3, 32, 32]);
    assert.equal(train.classes[3], "cat");
  });

  it("first test labels are 3, 8, 8, 0, 6, 6, 1, 6, 3, 1", () => {
    assert.deepEqual(
      Array.from({ length: 10 }, (_, i) => test.label(i)),
      [3, 8, 8, 0, 6, 6, 1, 6, 3, 1],
    );
  });

  it("train channel means (0.4914, 0.4822, 0.4465) and stds (0.2470, 0.2435, 0.2616)", () => {
    const images = train.view().storage.images;
    const means = channelMeans(images, 3, 1024);
    assertClose(means, [0.4914, 0.4822, 0.4465], { atol: 1e-4, rtol: 0 }, "means");
    assertClose(channelStds(images, 3, 1024, means), [0.247, 0.2435, 0.2616], { atol: 1e-4, rtol: 0 }, "stds");
  });

  it("prepares from a cifar-10-batches-bin folder (the cache itself), verifying the MD5s", async () => {
    const tmp = tempDir("cifar-real");
    try {
      const r = await prepareCifar10({ root: tmp.dir, from: join(root, "cifar10") });
      assert.match(r.source, /^folder /);
      assert.deepEqual(readdirSync(tmp.dir), ["cifar10"]);
      const copy = new Cifar10({ root: tmp.dir, split: "test", verify: true });
      assert.deepEqual(copy.get(1234), test.get(1234));
    } finally {
      tmp.cleanup();
    }
  });

  it("loads augmented batches of 128 as tensors", () => {
    const loader = new DataLoader(train.stratified(64, 0), {
      batchSize: 128,
      seed: 0,
      augment: { crop: { size: 32, padding: 4 }, flip: true, cutout: 8 },
      workers: 1,
    });
    let n = 0;
    for (const { x, y } of loader.epoch(0)) {
      assert.deepEqual(x.shape, [128, 3, 32, 32]);
      const v = x.toFlatArray();
      assert.ok(
        v.every((p) => p >= 0 && p <= 1),
        "pixels in [0, 1]",
      );
      assert.ok(y.toFlatArray().every((l) => l >= 0 && l < 10));
      dispose([x, y]);
      n++;
    }
    loader.close();
    assert.equal(n, 5);
  });
});
