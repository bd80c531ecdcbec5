// autocast(): LibTorch's own autocast switched from TypeScript. Checked against PyTorch's
// torch.autocast("cpu", dtype=torch.bfloat16) on the same weights and data (the twins of
// ../shared/reference/models.py, run live through /usr/bin/python3), against our own fp32
// numbers, and for the thread-local state: restored after the region, also on the threads
// of the concurrent expert backward.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { MoE, ResNet18 } from "../../src/models/index.js";
import { crossEntropy, linear } from "../../src/nn/functional.js";
import type { Module, UnaryModule } from "../../src/nn/index.js";
import {
  autocast,
  autocastState,
  autograd,
  isAutocastEnabled,
  manualSeed,
  memoryStats,
  noGrad,
  rand,
  randint,
  scope,
  setNumThreads,
  type Tensor,
  withPrecision,
} from "../../src/tensor/index.js";
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

/** Largest |a - b| / (max |b| over the array): one number per comparison, scale-free. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i] as number));
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst / Math.max(scale, 1e-30);
}

describe("autocast state", () => {
  it("noGrad bypasses the cast cache: a weight first used under noGrad still gets its gradient", () => {
    const live = memoryStats().liveTensors;
    manualSeed(3);
    const w = rand([6, 6]).keep().requiresGrad_();
    const x = rand([4, 6]).keep();
    const seen: boolean[] = [];
    autocast({ dtype: "bfloat16", cacheEnabled: true }, () =>
      scope(() => {
        // Under noGrad the cache is off (and back on after it); the first cast of w happens
        // there, as RT-ER's router query before its training forward.
        noGrad(() => {
          seen.push(autocastState().cacheEnabled);
          x.matmul(w);
        });
        seen.push(autocastState().cacheEnabled);
        const y = x.matmul(w);
        assert.equal(y.dtype, "bfloat16");
        y.float().sum().backward();
      }),
    );
    assert.deepEqual(seen, [false, true]);
    // d/dw sum(x w) = x^T 1: each column of the gradient is the column sums of x.
    const g = scope(() => (w.grad as Tensor).toFlatArray());
    const colSums = scope(() => noGrad(() => x.to("bfloat16").float().sum(0)).toFlatArray());
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 6; j++)
        assert.ok(Math.abs((g[i * 6 + j] as number) - (colSums[i] as number)) < 0.05, `grad[${i},${j}]`);
    w.grad = null;
    for (const t of [w, x]) t.dispose();
    assert.equal(memoryStats().liveTensors, live);
  });

  it("is set inside the region and restored after it, nested and on throw", () => {
    assert.equal(isAutocastEnabled(), false);
    autocast({ dtype: "bfloat16" }, () => {
      assert.deepEqual(autocastState(), { enabled: true, dtype: "bfloat16", cacheEnabled: true });
      autocast({ enabled: false }, () => assert.equal(isAutocastEnabled(), false));
      assert.equal(isAutocastEnabled(), true);
    });
    assert.equal(isAutocastEnabled(), false);
    assert.throws(
      () =>
        autocast({}, () => {
          throw new Error("inside");
        }),
      /inside/,
    );
    assert.equal(isAutocastEnabled(), false);
  });

  it("refuses an async function and float16 on the CPU", () => {
    assert.throws(() => autocast({}, async () => 1), /synchronous/);
    assert.equal(isAutocastEnabled(), false);
    assert.throws(() => autocast({ dtype: "float16" }, () => 1), /only bfloat16/);
  });

  it("lowers linear to bfloat16 with float32 weights, and the weight gradient stays float32", () => {
    const live = memoryStats().liveTensors;
    manualSeed(3);
    const w = rand([5, 7]).keep().requiresGrad_();
    const x = rand([4, 7]).keep();
    scope(() => {
      const y = autocast({}, () => linear(x, w));
      assert.equal(y.dtype, "bfloat16");
      // The closed form: x w^T with both operands rounded to bfloat16 first, accumulated in fp32.
      const expected = noGrad(() => x.to("bfloat16").float().matmul(w.to("bfloat16").float().T)).toFlatArray();
      assertClose(y.float().toFlatArray(), expected, { atol: 0, rtol: 2 ** -8 }, "bf16 linear");
      y.float().sum().backward();
      const g = w.grad as Tensor;
      assert.equal(g.dtype, "float32");
      // d sum(x w^T) / dw = column sums of x, rounded to bf16 through the cast's backward.
      const colSums = noGrad(() => x.to("bfloat16").float().sum(0).unsqueeze(0).expand(5, 7)).toFlatArray();
      assertClose(g.toFlatArray(), colSums, { atol: 0, rtol: 2 ** -7 }, "weight gradient");
    });
    w.grad = null;
    w.dispose();
    x.dispose();
    assert.equal(memoryStats().liveTensors, live);
  });
});

describe("autocast on the concurrent expert backward's threads", () => {
  // Two branches whose backward runs matrix products, which autocast lowers to bfloat16 when
  // it is on; backward inside the region, so the branches' threads must see the caller's
  // autocast state to agree with the sequential backward.
  function run(concurrent: boolean, enabled: boolean): number[] {
    manualSeed(5);
    const w = rand([16, 16]).keep().requiresGrad_();
    const xs = [rand([8, 16]), rand([8, 16])].map((t) => t.keep());
    // No cast cache: the branches must not share the cached bfloat16 copy of w.
    autocast({ enabled, cacheEnabled: false }, () =>
      scope(() => {
        let ys = xs.map((x) => x.matmul(w).tanh().matmul(w).float());
        if (concurrent) ys = autograd.concurrentBranches(ys);
        (ys[0] as Tensor)
          .sum()
          .add((ys[1] as Tensor).pow(2).sum())
          .backward();
      }),
    );
    const g = w.grad as Tensor;
    const out = g.toFlatArray();
    g.dispose();
    w.grad = null;
    for (const t of [w, ...xs]) t.dispose();
    return out;
  }

  it("gives the sequential backward's gradients, computed in bfloat16 when autocast is on", () => {
    // LibTorch 1.13 accepts only bfloat16 as the CPU autocast dtype, so what this can observe
    // on the CPU is the enabled flag; native/autocast.cc copies the dtypes and the cache flag
    // as well (CUDA's float16, and CPU dtypes of later LibTorch versions).
    const live = memoryStats().liveTensors;
    setNumThreads(2);
    // Equal up to the order in which the branches' contributions are summed into w.grad.
    const on = run(false, true);
    const onConcurrent = run(true, true);
    assert.ok(relErr(onConcurrent, on) < 1e-6, `autocast on: concurrent vs sequential ${relErr(onConcurrent, on)}`);
    const off = run(false, false);
    const offConcurrent = run(true, false);
    assert.ok(relErr(offConcurrent, off) < 1e-6, `autocast off: concurrent vs sequential ${relErr(offConcurrent, off)}`);
    // The threads really computed in bfloat16: a worker that missed the caller's state would
    // have produced the float32 gradients.
    assert.ok(relErr(on, off) > 1e-4, `bfloat16 and float32 gradients should differ (${relErr(on, off)})`);
    assert.equal(memoryStats().liveTensors, live);
  });
});

describe("bf16 autocast matches PyTorch's torch.autocast", { skip: SKIP }, () => {
  let dir = "";
  let start = 0;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "rmoe-autocast-"));
    start = memoryStats().liveTensors;
    // One thread on both sides: the same reduction order in every kernel.
    setNumThreads(1);
  });
  after(() => {
    setNumThreads(2);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });

  const CASES: [string, string, () => UnaryModule & Module, string, string][] = [
    // Widths the channels-last table allows (nn/channels-last-table.ts): narrower channels-last
    // models corrupt LibTorch's heap once the batch size changes, as an MoE's sub-batches do.
    ["ResNet18 width 16", "resnet18:16", () => new ResNet18({ width: 16 }), "conv1.weight", "linear.weight"],
    [
      "MoE of 2 ResNet18 width 16, top-1",
      "moe:2:16:1:0",
      () =>
        new MoE(
          [16, 16].map((w) => new ResNet18({ width: w })),
          { k: 1 },
        ),
      "experts.0.conv1.weight",
      "experts.0.linear.weight",
    ],
  ];

  for (const [title, spec, build, stem, head] of CASES) {
    it(title, () => {
      manualSeed(21);
      const model = build();
      const x = rand([12, 3, 32, 32]);
      const y = randint(0, 10, [12]);
      const entries = new Map<string, Tensor>([
        ["x", x],
        ["y", y],
      ]);
      for (const [k, v] of model.stateDict()) entries.set(`w.${k}`, v);
      const path = join(dir, `${spec.replace(/:/g, "_")}.safetensors`);
      saveSafetensors(path, entries);
      const r = spawnSync(PYTHON, [join(repoRoot, "test", "helpers", "torch_autocast_check.py"), spec, path], {
        encoding: "utf8",
        timeout: 120_000,
      });
      assert.equal(r.status, 0, `the PyTorch reference failed:\n${r.stderr}`);
      type Side = {
        loss: number;
        logits: number[];
        logitsDtype: string;
        stemGrad: number[];
        headGrad: number[];
        gradDtype: string;
      };
      const ref = JSON.parse(r.stdout) as Record<"fp32" | "bf16" | "fp32-cl" | "bf16-cl", Side>;
      const params = new Map(model.namedParameters());
      const initial = model.stateDict();
      const saved = new Map([...initial].map(([k, v]) => [k, v.clone().keep()]));
      for (const mode of ["fp32", "bf16", "fp32-cl", "bf16-cl"] as const) {
        model.loadStateDict(saved);
        model.train();
        const cl = mode.endsWith("-cl");
        model.to({ memoryFormat: cl ? "channelsLast" : "contiguous" });
        const ours = scope(() => {
          const xin = cl ? x.contiguous("channelsLast") : x;
          const { logits, loss } = withPrecision(mode.startsWith("bf16") ? "bf16" : "fp32", () => {
            const l = model.forward(xin);
            return { logits: l, loss: crossEntropy(l, y) };
          });
          loss.backward();
          const grad = (n: string) => (params.get(n) as Tensor).grad as Tensor;
          const g = (n: string) => grad(n).toFlatArray();
          return {
            loss: loss.item(),
            logits: logits.float().toFlatArray(),
            logitsDtype: logits.dtype,
            stemGrad: g(stem),
            headGrad: g(head),
            gradDtype: grad(stem).dtype,
          };
        });
        model.zeroGrad();
        const theirs = ref[mode];
        assert.equal(ours.logitsDtype, theirs.logitsDtype, `${mode}: logits dtype`);
        assert.equal(ours.gradDtype, "float32", `${mode}: gradients stay float32`);
        // bf16 results must be PyTorch's bf16 results, far closer than to fp32's.
        const tol = mode.startsWith("bf16") ? 2e-3 : 1e-5;
        for (const key of ["logits", "stemGrad", "headGrad"] as const) {
          const e = relErr(ours[key], theirs[key]);
          assert.ok(e <= tol, `${title} ${mode} ${key}: relative error ${e} > ${tol}`);
          if (mode.startsWith("bf16")) {
            const gap = relErr(theirs[key], ref[mode === "bf16" ? "fp32" : "fp32-cl"][key]);
            assert.ok(gap > 5 * e, `${title} ${mode} ${key}: PyTorch's bf16-fp32 gap ${gap} should dwarf ours-PyTorch ${e}`);
          }
        }
        assertClose([ours.loss], [theirs.loss], { atol: 0, rtol: mode.startsWith("bf16") ? 2e-3 : 1e-5 }, `${mode} loss`);
      }
      for (const t of saved.values()) t.dispose();
      model.dispose();
      x.dispose();
      y.dispose();
    });
  }
});
