import assert from "node:assert/strict";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Progress } from "../../src/data/progress.js";
import { TinyImageNet } from "../../src/data/tiny-imagenet.js";
import { naturalCompare, prepareTinyImageNet, verifyTinyImageNet } from "../../src/data/tiny-imagenet-prepare.js";
import {
  type ArchiveFile,
  decodeForTest,
  makeTarGz,
  makeZip,
  type SynthTiny,
  synthTiny,
  tempDir,
  toChw,
  writeTree,
} from "./synth.js";

const tmp = tempDir("tin-prep");
after(tmp.cleanup);
let counter = 0;
let t: SynthTiny;

function freshRoot(): string {
  const r = join(tmp.dir, `root${counter++}`);
  mkdirSync(r);
  return r;
}

function archive(files: readonly ArchiveFile[], kind: "tar.gz" | "zip" | "folder"): string {
  const p = join(tmp.dir, `src${counter++}${kind === "folder" ? "" : `.${kind}`}`);
  if (kind === "tar.gz") writeFileSync(p, makeTarGz(files, { dirs: true }));
  else if (kind === "zip") writeFileSync(p, makeZip(files));
  else writeTree(p, files);
  return p;
}

async function expectedImage(path: string): Promise<Uint8Array> {
  const f = t.files.find((x) => x.name === `tiny-imagenet-200/${path}`);
  assert.ok(f !== undefined, path);
  return toChw(await decodeForTest(f.data), t.expect.size, t.expect.size);
}

describe("prepare tinyimagenet (synthetic inputs)", () => {
  before(async () => {
    t = await synthTiny(3, 4, 2, 8);
  });

  it("orders file names naturally", () => {
    assert.deepEqual(["a_10", "a_2", "a_1", "b_0"].sort(naturalCompare), ["a_1", "a_2", "a_10", "b_0"]);
  });

  for (const kind of ["tar.gz", "zip", "folder"] as const) {
    it(`from a ${kind}: labels in wnids order, val labels from the annotations, RGB CHW pixels, greyscale counted`, async () => {
      const root = freshRoot();
      const r = await prepareTinyImageNet({ root, from: archive(t.files, kind), expect: t.expect });
      assert.deepEqual(r.counts, { train: 12, val: 6, classes: 3 });
      assert.deepEqual(r.greyscale, { train: t.greyTrain, val: t.greyVal });
      assert.deepEqual(readdirSync(root), ["tinyimagenet"]);
      const train = new TinyImageNet({ root, split: "train", verify: true });
      const val = new TinyImageNet({ root, split: "val", verify: true });
      assert.deepEqual(train.classes, t.wnids);
      assert.equal(train.classNames[2], "thing 2, object");
      assert.deepEqual(train.imageShape, [3, 8, 8]);
      assert.deepEqual(train.classCounts(), [4, 4, 4]);
      for (let i = 0; i < 12; i++) {
        const w = t.wnids[Math.floor(i / 4)] as string;
        assert.equal(train.label(i), Math.floor(i / 4));
        assert.deepEqual(train.get(i).image, await expectedImage(`train/${w}/images/${w}_${i % 4}.JPEG`), `train ${i}`);
      }
      for (let i = 0; i < 6; i++) {
        assert.equal(val.label(i), t.wnids.indexOf(t.val[i]!.wnid), `val ${i} label`);
        assert.deepEqual(val.get(i).image, await expectedImage(`val/images/val_${i}.JPEG`), `val ${i}`);
      }
      const grey = train.get(6).image;
      assert.deepEqual(grey.subarray(0, 64), grey.subarray(64, 128), "greyscale copied to every channel");
      await verifyTinyImageNet({ root });
      const again = await prepareTinyImageNet({ root, from: "/nonexistent", expect: t.expect });
      assert.equal(again.skipped, true);
    });
  }

  const broken = async (files: ArchiveFile[], re: RegExp, kind: "tar.gz" | "folder" = "tar.gz"): Promise<void> => {
    const root = freshRoot();
    await assert.rejects(prepareTinyImageNet({ root, from: archive(files, kind), expect: t.expect }), re);
    assert.deepEqual(readdirSync(root), [], "nothing left in the cache");
  };

  it("a missing class folder is an error naming it", async () => {
    const w = t.wnids[1] as string;
    await broken(
      t.files.filter((f) => !f.name.includes(`/train/${w}/`)),
      new RegExp(`tiny-imagenet-200/train/${w}/images: missing class folder`),
    );
    await broken(
      t.files.filter((f) => !f.name.includes(`/train/${w}/`)),
      new RegExp(`train/${w}/images: missing class folder`),
      "folder",
    );
  });

  it("a corrupt JPEG, a missing image and an unknown class are errors naming the file", async () => {
    const w = t.wnids[2] as string;
    const bad = t.files.map((f) =>
      f.name.endsWith(`${w}_3.JPEG`) ? { name: f.name, data: Buffer.from(f.data).subarray(0, Math.floor(f.data.length / 2)) } : f,
    );
    await broken(bad, new RegExp(`train/${w}/images/${w}_3\\.JPEG: cannot decode image`));
    await broken(
      t.files.filter((f) => !f.name.endsWith("val_4.JPEG")),
      /val\/images\/val_4\.JPEG: missing \(listed in val_annotations\.txt/,
    );
    const ann = t.files.map((f) =>
      f.name.endsWith("val_annotations.txt") ? { name: f.name, data: Buffer.from(`val_0.JPEG\tn99999999\t0\t0\t1\t1\n`) } : f,
    );
    await broken(ann, /val_annotations\.txt: line 1 names class 'n99999999'/);
    await broken(
      t.files.filter((f) => !f.name.endsWith(`${w}_0.JPEG`)),
      new RegExp(`train/${w}/images: 3 images, expected 4`),
    );
    await broken(
      t.files.filter((f) => !f.name.endsWith("wnids.txt")),
      /no wnids\.txt inside/,
    );
  });

  it("an interrupted prepare leaves nothing in the cache", async () => {
    const root = freshRoot();
    const ctrl = new AbortController();
    const progress: Progress = {
      start() {},
      update: (n) => {
        if (n > 0) ctrl.abort(new Error("interrupted"));
      },
      end() {},
      log() {},
    };
    await assert.rejects(
      prepareTinyImageNet({
        root,
        from: archive(t.files, "tar.gz"),
        expect: t.expect,
        progress,
        signal: ctrl.signal,
        concurrency: 2,
      }),
      /interrupted/,
    );
    assert.deepEqual(readdirSync(root), []);
  });
});
