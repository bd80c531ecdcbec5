import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadCheckpoint, saveCheckpoint } from "../../src/io/checkpoint.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { configOf, type Model } from "../../src/models/config.js";
import { DualModel, MoE, ResNet18, ViT } from "../../src/models/index.js";
import { manualSeed, memoryStats, noGrad, ones, rand, scope } from "../../src/tensor/index.js";

describe("checkpoints", () => {
  let dir = "";
  let start = 0;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "rmoe-ckpt-"));
    start = memoryStats().liveTensors;
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });

  const builders: [string, () => Model][] = [
    ["ResNet18", () => new ResNet18({ width: 4, numClasses: 7 })],
    ["ViT", () => new ViT({ patchSize: 8, dim: 16, depth: 1, heads: 2, mlpRatio: 2 })],
    [
      "MoE with a conv router, top-2",
      () => new MoE([new ResNet18({ width: 2 }), new ResNet18({ width: 2 })], { k: 2, router: "conv", renormalize: true }),
    ],
    [
      "dual model",
      () =>
        new DualModel(new MoE([new ResNet18({ width: 2 }), new ResNet18({ width: 2 })]), new ResNet18({ width: 2 }), {
          alpha: 0.7,
          space: "probs",
        }),
    ],
  ];

  for (const [name, build] of builders) {
    it(`${name}: save then load rebuilds the same model and outputs`, () => {
      manualSeed(21);
      const model = build().eval();
      const path = join(dir, `${name.replace(/\W+/g, "_")}.safetensors`);
      saveCheckpoint(path, model, { note: "test" });
      const x = rand([2, 3, 32, 32]);
      const before = scope(() => noGrad(() => model.forward(x)).toFlatArray());
      const loaded = loadCheckpoint(path);
      assert.deepEqual(loaded.config, configOf(model));
      assert.equal(loaded.metadata.note, "test");
      const after = scope(() => noGrad(() => loaded.model.eval().forward(x)).toFlatArray());
      assert.deepEqual(after, before);
      x.dispose();
      model.dispose();
      loaded.model.dispose();
    });
  }

  it("a plain safetensors file is refused with a hint, and a bad config names its field", () => {
    const plain = join(dir, "plain.safetensors");
    scope(() => saveSafetensors(plain, { w: ones([1]) }));
    assert.throws(() => loadCheckpoint(plain), /not a robust-moe checkpoint/);
    const bad = join(dir, "bad.safetensors");
    const cfg = { kind: "moe", experts: [{ kind: "resnet18", numClasses: 10, width: 0, normalize: false }] };
    scope(() => saveSafetensors(bad, { w: ones([1]) }, { "robust-moe.model": JSON.stringify(cfg) }));
    assert.throws(
      () => loadCheckpoint(bad),
      /bad\.safetensors: model config field 'model\.experts\[0\]\.width' must be an integer >= 1, got 0/,
    );
  });

  it("weights that do not fit the config are refused and nothing leaks", () => {
    const model = new ResNet18({ width: 2 });
    const path = join(dir, "mismatch.safetensors");
    saveCheckpoint(path, model);
    const other = new ResNet18({ width: 4 });
    // Same tensor names, other shapes: write the smaller weights under the larger config.
    saveSafetensors(path, model.stateDict(), { "robust-moe.model": JSON.stringify(configOf(other)) });
    assert.throws(
      () => loadCheckpoint(path),
      /mismatch\.safetensors: .*shape mismatches: conv1\.weight: checkpoint \[2, 3, 3, 3\] vs model \[4, 3, 3, 3\]/,
    );
    model.dispose();
    other.dispose();
  });
});
