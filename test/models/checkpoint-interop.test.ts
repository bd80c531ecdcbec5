// A model trained here loads in PyTorch: our state dicts, saved as safetensors, load into the
// twins of ../shared/reference/models.py with load_state_dict(strict=True) and give our logits.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { MoE, ResNet18, ViT } from "../../src/models/index.js";
import type { Module, UnaryModule } from "../../src/nn/index.js";
import { manualSeed, memoryStats, noGrad, rand, scope, type Tensor } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { repoRoot, sharedRoot } from "../helpers/paths.js";

const PYTHON = "/usr/bin/python3";
const torchMissing = spawnSync(PYTHON, ["-c", "import torch"]).status !== 0;
const twinsMissing = !existsSync(join(sharedRoot, "reference", "models.py"));
const SKIP = torchMissing
  ? "Debian python3-torch is not installed (/usr/bin/python3 cannot import torch)"
  : twinsMissing
    ? `the PyTorch twins ${join(sharedRoot, "reference", "models.py")} are not beside this checkout`
    : false;

const CASES: [string, string, () => UnaryModule & Module][] = [
  ["ResNet18 width 4", "resnet18:4", () => new ResNet18({ width: 4 })],
  ["ViT patch 8, dim 32, depth 2", "vit:8:32:2:4", () => new ViT({ patchSize: 8, dim: 32, depth: 2, heads: 4 })],
  [
    "MoE of 3 ResNet18, top-2 renormalised",
    "moe:3:2:2:1",
    () =>
      new MoE(
        [2, 2, 2].map((w) => new ResNet18({ width: w })),
        { k: 2, renormalize: true },
      ),
  ],
];

describe("checkpoints load into PyTorch (strict)", { skip: SKIP }, () => {
  let dir = "";
  let start = 0;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "rmoe-interop-"));
    start = memoryStats().liveTensors;
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });

  for (const [title, spec, build] of CASES) {
    it(title, () => {
      manualSeed(11);
      const model = build();
      // A train-mode pass first, so BatchNorm statistics are not at their initial values.
      scope(() => {
        noGrad(() => model.forward(rand([8, 3, 32, 32])));
      });
      model.eval();
      const x = rand([3, 3, 32, 32]);
      const ours = scope(() => noGrad(() => model.forward(x)).toFlatArray());
      const entries = new Map<string, Tensor>([["x", x]]);
      for (const [k, v] of model.stateDict()) entries.set(`w.${k}`, v);
      const path = join(dir, `${spec.replace(/:/g, "_")}.safetensors`);
      saveSafetensors(path, entries);
      x.dispose();
      model.dispose();
      const r = spawnSync(PYTHON, [join(repoRoot, "test", "helpers", "torch_load_check.py"), spec, path], { encoding: "utf8" });
      assert.equal(r.status, 0, `PyTorch could not load the checkpoint:\n${r.stderr}`);
      const theirs = (JSON.parse(r.stdout) as { logits: number[] }).logits;
      assertClose(ours, theirs, { atol: 1e-5, rtol: 1e-4 }, `${title} logits in PyTorch`);
    });
  }
});
