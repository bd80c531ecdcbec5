// TinyImageNet on the real data (prepared from ../shared/data/tiny-imagenet-200.tar.gz by
// scripts/prepare-data.sh); skipped with the reason when absent.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { before, describe, it } from "node:test";
import { readTarFile } from "../../src/data/tar.js";
import { TinyImageNet } from "../../src/data/tiny-imagenet.js";
import { verifyTinyImageNet } from "../../src/data/tiny-imagenet-prepare.js";
import { assertClose } from "../helpers/close.js";
import { channelMeans, root, tinyArchive, tinySkip } from "./real-data.js";

describe("TinyImageNet (real data)", { skip: tinySkip }, () => {
  let train: TinyImageNet;
  let val: TinyImageNet;
  before(() => {
    train = new TinyImageNet({ root, split: "train" });
    val = new TinyImageNet({ root, split: "val" });
  });

  it("has 200 classes x 500 train and 50 val images, 64x64 RGB; greyscale files converted (1,821 train, 168 val)", () => {
    assert.equal(train.classes.length, 200);
    assert.equal(train.length, 100000);
    assert.equal(val.length, 10000);
    assert.deepEqual(train.imageShape, [3, 64, 64]);
    assert.deepEqual(train.classCounts(), new Array(200).fill(500));
    assert.deepEqual(val.classCounts(), new Array(200).fill(50));
    assert.equal(train.manifest.official, true);
    assert.equal(train.manifest.source.knownArchive, true);
    assert.equal(train.manifest.splits.train.greyscale, 1821);
    assert.equal(train.manifest.splits.val.greyscale, 168);
  });

  it("val image 0 has the class of the first annotation (val_0.JPEG n03444034 0 32 44 62)", async (t) => {
    assert.equal(val.label(0), train.classes.indexOf("n03444034"));
    assert.ok(train.classes.indexOf("n03444034") >= 0);
    if (!existsSync(tinyArchive)) {
      t.diagnostic(`${tinyArchive} absent: annotation line not re-read`);
      return;
    }
    for await (const e of readTarFile(tinyArchive)) {
      if (e.name.endsWith("val/val_annotations.txt")) {
        assert.equal(e.data.toString("utf8").split("\n")[0]?.trim(), "val_0.JPEG\tn03444034\t0\t32\t44\t62");
        return;
      }
    }
    assert.fail("no val_annotations.txt in the archive");
  });

  it("train channel means are about (0.4802, 0.4481, 0.3975) and match the manifest", () => {
    const means = channelMeans(train.view().storage.images, 3, 4096);
    assertClose(means, [0.4802, 0.4481, 0.3975], { atol: 1e-4, rtol: 0 }, "means");
    assertClose(means, train.manifest.splits.train.channelMean, { atol: 1e-6, rtol: 0 }, "manifest means");
  });

  it("the cached files match their sha256s", async () => {
    await verifyTinyImageNet({ root });
  });
});
