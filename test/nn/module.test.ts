import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { ResNet18 } from "../../src/models/resnet18.js";
import {
  BatchNorm2d,
  Conv2d,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  ReLU,
  Sequential,
  StateDictError,
} from "../../src/nn/index.js";
import { manualSeed, memoryStats, ones, randn, scope, type Tensor, tensor, zeros } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { fixturePath } from "../helpers/paths.js";

interface TensorSummary {
  shape: number[];
  dtype: string;
  head: number[];
  sum: number;
}
interface BnRun {
  inputs: number[][];
  input_shape: number[];
  running_mean: number[];
  running_var: number[];
  num_batches_tracked: number;
  eval_probe_out: number[];
}
interface NnReference {
  resnet18_w16: Record<string, TensorSummary>;
  layers_seed1: Record<"linear" | "conv_groups2" | "layernorm", Record<string, TensorSummary>>;
  batchnorm: Record<"momentum_0.1" | "momentum_none", BnRun>;
}

const ref = JSON.parse(readFileSync(fixturePath("nn-reference.json"), "utf8")) as NnReference;

function checkAgainst(sd: Map<string, Tensor>, expected: Record<string, TensorSummary>, what: string): void {
  assert.deepEqual([...sd.keys()], Object.keys(expected), `${what}: state-dict keys and order`);
  for (const [k, t] of sd) {
    const e = expected[k]!;
    assert.deepEqual(t.shape, e.shape, `${what}.${k} shape`);
    assert.equal(t.dtype, e.dtype.replace("float", "float").replace("int64", "int64"), `${what}.${k} dtype`);
    const flat = t.toFlatArray();
    assertClose(flat.slice(0, 4), e.head, { atol: 1e-7, rtol: 0 }, `${what}.${k} first values`);
    assertClose([flat.reduce((a, b) => a + b, 0)], [e.sum], { atol: 1e-4, rtol: 1e-6 }, `${what}.${k} sum`);
  }
}

class Twin extends Module {
  readonly a: Linear;
  readonly shared: Linear;
  constructor() {
    super();
    this.a = this.registerModule("a", new Linear(2, 2));
    this.shared = this.registerModule("b", this.a);
  }
}

describe("nn.Module", () => {
  let startLive = 0;
  before(() => {
    startLive = memoryStats().liveTensors;
  });
  after(() => {
    assert.equal(memoryStats().liveTensors, startLive, "tests leaked tensors");
  });

  it("ResNet18 has PyTorch's state-dict keys, shapes, dtypes and same-seed initial values", () => {
    manualSeed(0);
    const m = new ResNet18({ width: 16 });
    checkAgainst(m.stateDict(), ref.resnet18_w16, "resnet18");
    m.dispose();
  });

  it("Linear, grouped Conv2d and LayerNorm initialise exactly like PyTorch", () => {
    manualSeed(1);
    const lin = new Linear(7, 5);
    const conv = new Conv2d(6, 4, 3, { groups: 2 });
    const ln = new LayerNorm(9);
    checkAgainst(lin.stateDict(), ref.layers_seed1.linear, "linear");
    checkAgainst(conv.stateDict(), ref.layers_seed1.conv_groups2, "conv");
    checkAgainst(ln.stateDict(), ref.layers_seed1.layernorm, "layernorm");
    for (const m of [lin, conv, ln]) m.dispose();
  });

  for (const [name, momentum] of [
    ["momentum_0.1", 0.1],
    ["momentum_none", null],
  ] as const) {
    it(`BatchNorm2d running statistics match PyTorch (${name})`, () => {
      const run = ref.batchnorm[name];
      const bn = new BatchNorm2d(3, { momentum });
      scope(() => {
        for (const xs of run.inputs) bn.forward(tensor(Float32Array.from(xs), { shape: run.input_shape }));
      });
      assertClose(bn.runningMean!.toFlatArray(), run.running_mean, { atol: 1e-6 }, "running_mean");
      assertClose(bn.runningVar!.toFlatArray(), run.running_var, { atol: 1e-6 }, "running_var");
      assert.equal(bn.numBatchesTracked!.item(), run.num_batches_tracked);
      bn.eval();
      const probe = scope(() =>
        bn.forward(
          tensor(
            Float32Array.from({ length: 12 }, (_, i) => -1 + (2 * i) / 11),
            { shape: [1, 3, 2, 2] },
          ),
        ),
      );
      assertClose(probe.toFlatArray(), run.eval_probe_out, { atol: 1e-5 }, "eval output");
      probe.dispose();
      bn.dispose();
    });
  }

  it("train()/eval() reach every descendant; ModuleList and Sequential name children 0, 1, ...", () => {
    const seq = new Sequential(new Linear(3, 4), new ReLU(), new ModuleList([new Linear(4, 4)]) as unknown as Linear);
    assert.deepEqual([...seq.stateDict().keys()], ["0.weight", "0.bias", "2.0.weight", "2.0.bias"]);
    seq.eval();
    assert.ok([...seq.modules()].every((m) => !m.training));
    seq.train();
    assert.ok([...seq.modules()].every((m) => m.training));
    seq.dispose();
  });

  it("a module registered twice contributes its parameters once", () => {
    const t = new Twin();
    assert.equal(t.parameters().length, 2);
    t.dispose();
  });

  it("loadStateDict copies values into the same tensors", () => {
    const a = new Linear(3, 2);
    const b = new Linear(3, 2);
    const w = a.weight;
    a.loadStateDict(b.stateDict());
    assert.equal(a.weight, w, "tensor identity kept");
    assert.deepEqual(a.weight.toFlatArray(), b.weight.toFlatArray());
    assert.ok(a.weight.requiresGrad && a.weight.isLeaf);
    a.dispose();
    b.dispose();
  });

  it("loadStateDict lists every missing, unexpected and mis-shaped key, and loads nothing", () => {
    const m = new Linear(3, 2);
    const before = m.weight.toFlatArray();
    const bad = scope(
      () =>
        new Map<string, Tensor>([
          ["weight", zeros([2, 4])],
          ["extra.0", ones([1])],
          ["also_extra", ones([1])],
        ]),
    );
    assert.throws(
      () => m.loadStateDict(bad),
      (e: unknown) =>
        e instanceof StateDictError &&
        /missing keys: bias/.test(e.message) &&
        /unexpected keys: extra\.0, also_extra/.test(e.message) &&
        /weight: checkpoint \[2, 4\] vs model \[2, 3\]/.test(e.message),
    );
    assert.deepEqual(m.weight.toFlatArray(), before, "nothing loaded on error");
    for (const t of bad.values()) t.dispose();
    m.dispose();
  });

  it("strict: false tolerates missing and unexpected keys but still refuses shape mismatches", () => {
    const m = new Linear(3, 2);
    const partial = scope(
      () =>
        new Map<string, Tensor>([
          ["bias", tensor([5, 6])],
          ["other", ones([1])],
        ]),
    );
    const r = m.loadStateDict(partial, { strict: false });
    assert.deepEqual(r, { missingKeys: ["weight"], unexpectedKeys: ["other"] });
    assert.deepEqual(m.bias!.toFlatArray(), [5, 6]);
    const wrong = scope(() => new Map<string, Tensor>([["bias", ones([3])]]));
    assert.throws(() => m.loadStateDict(wrong, { strict: false }), /bias: checkpoint \[3\] vs model \[2\]/);
    for (const t of [...partial.values(), ...wrong.values()]) t.dispose();
    m.dispose();
  });

  it("to(dtype) casts floating tensors in place and leaves integer buffers alone", () => {
    const bn = new BatchNorm2d(2);
    const w = bn.weight;
    bn.to("float64");
    assert.equal(bn.weight, w);
    assert.equal(bn.weight!.dtype, "float64");
    assert.equal(bn.runningMean!.dtype, "float64");
    assert.equal(bn.numBatchesTracked!.dtype, "int64");
    assert.ok(bn.weight!.requiresGrad);
    bn.dispose();
  });

  it("zeroGrad drops or zeroes gradients", () => {
    const m = new Linear(2, 1);
    scope(() =>
      m
        .forward(randn([3, 2]))
        .sum()
        .backward(),
    );
    assert.ok(scope(() => m.weight.grad !== null));
    scope(() => m.zeroGrad(false));
    const g = m.weight.grad!;
    assert.deepEqual(g.toFlatArray(), [0, 0]);
    g.dispose();
    m.zeroGrad();
    assert.equal(m.weight.grad, null);
    m.dispose();
  });

  it("rejects duplicate and dotted member names", () => {
    class Bad extends Module {
      constructor(name: string) {
        super();
        this.registerModule("x", new ReLU());
        this.registerModule(name, new ReLU());
      }
    }
    assert.throws(() => new Bad("x"), /'x' is already registered/);
    assert.throws(() => new Bad("a.b"), /contain no '\.'/);
  });
});
