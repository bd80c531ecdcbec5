// Layer-wise Lipschitz bounds (src/certify/lipschitz.ts and every layer's lipschitz(norm)):
// sound (never below what an attack on the Lipschitz ratio finds, on random small networks
// with BatchNorm in eval, residual blocks, pooling and linear layers), exact where they claim
// to be (a Linear's max row L1; spectral norms against PyTorch's SVD of the unfolded operator),
// and refused where no bound exists (ViT, attention, training mode).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import {
  adaptiveAvgPoolLipschitz,
  convCirculantBound,
  convL2SizeFreeBound,
  GELU_LIPSCHITZ,
  gramSpectralBound,
  LipschitzError,
  powerIterationNorm,
} from "../../src/certify/lipschitz.js";
import { BasicBlock, CIFAR10_STD, Normalize, ResNet18, ViT } from "../../src/models/index.js";
import { conv2d, gelu } from "../../src/nn/functional.js";
import {
  AdaptiveAvgPool2d,
  Attention,
  BatchNorm2d,
  Conv2d,
  Dropout,
  Flatten,
  GELU,
  LayerNorm,
  Linear,
  Module,
  ReLU,
  Sequential,
  type UnaryModule,
} from "../../src/nn/index.js";
import { autograd, enableGrad, linspace, manualSeed, memoryStats, noGrad, scope, type Tensor } from "../../src/tensor/index.js";
import { fixturePath } from "../helpers/paths.js";
import { maxLipschitzRatio, type Norm, randomizeBatchNorms } from "./lipschitz-helpers.js";

const PYTHON = "/usr/bin/python3";
const NO_TORCH = spawnSync(PYTHON, ["-c", "import torch"]).status !== 0;
const SKIP_SVD = NO_TORCH ? "Debian python3-torch is not installed (/usr/bin/python3 cannot import torch)" : false;

interface SvdCase {
  kind: "linear" | "conv" | "pool";
  weight?: number[];
  shape?: number[];
  stride?: number[];
  padding?: number[];
  dilation?: number[];
  groups?: number;
  input?: number[];
  output?: number[];
}

/** Top singular values from PyTorch's LAPACK SVD of the unfolded operators (test/fixtures/lipschitz_svd.py). */
function referenceSvd(cases: SvdCase[]): number[] {
  const r = spawnSync(PYTHON, [fixturePath("lipschitz_svd.py")], {
    input: JSON.stringify(cases),
    encoding: "utf8",
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`lipschitz_svd.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as number[];
}

function convCase(conv: Conv2d, input: number[]): SvdCase {
  return {
    kind: "conv",
    weight: conv.weight.toFlatArray(),
    shape: conv.weight.shape,
    stride: [...conv.stride],
    padding: [...conv.padding],
    dilation: [...conv.dilation],
    groups: conv.groups,
    input,
  };
}

function absRowSums(rows: number[][]): number[] {
  return rows.map((r) => r.reduce((a, v) => a + Math.abs(v), 0));
}

describe("layer Lipschitz bounds", () => {
  let start = 0;
  before(() => {
    start = memoryStats().liveTensors;
  });
  after(() => {
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });

  it("Linear: L-inf is exactly the max row L1 norm (computed here in JS)", () => {
    manualSeed(1);
    const lin = new Linear(7, 5);
    const expected = Math.max(...absRowSums(lin.weight.toArray() as number[][]));
    assert.ok(Math.abs(lin.lipschitz("linf") - expected) <= 1e-12 * expected, `${lin.lipschitz("linf")} vs ${expected}`);
    lin.dispose();
  });

  it("Conv2d: L-inf is the max over output channels of sum |w| (computed here in JS)", () => {
    manualSeed(2);
    const conv = new Conv2d(3, 4, 3, { padding: 1, stride: 2 });
    const w = conv.weight.toArray() as number[][][][];
    const expected = Math.max(...w.map((o) => o.flat(2).reduce((a, v) => a + Math.abs(v), 0)));
    assert.ok(Math.abs(conv.lipschitz("linf") - expected) <= 1e-12 * expected);
    conv.dispose();
  });

  it("BatchNorm2d (eval): max |gamma| / sqrt(var + eps); refused in training mode and without running stats", () => {
    manualSeed(3);
    const bn = new BatchNorm2d(4);
    randomizeBatchNorms(bn, 3);
    assert.throws(() => bn.lipschitz("linf"), /training mode/);
    bn.eval();
    const g = bn.weight?.toFlatArray() as number[];
    const v = bn.runningVar?.toFlatArray() as number[];
    const expected = Math.max(...g.map((gi, i) => Math.abs(gi) / Math.sqrt((v[i] as number) + bn.eps)));
    for (const norm of ["linf", "l2"] as const) assert.ok(Math.abs(bn.lipschitz(norm) - expected) <= 1e-6 * expected);
    const noStats = new BatchNorm2d(4, { trackRunningStats: false }).eval();
    assert.throws(() => noStats.lipschitz("l2"), /running statistics/);
    bn.dispose();
    noStats.dispose();
  });

  it("Normalize: max 1/std (about 4.1 for CIFAR-10); ReLU, Flatten 1; Dropout 1 in eval only", () => {
    const norm = new Normalize();
    assert.ok(Math.abs(norm.lipschitz("linf") - 1 / Math.min(...CIFAR10_STD)) < 1e-6);
    assert.ok(norm.lipschitz("l2") > 4 && norm.lipschitz("l2") < 4.2);
    assert.equal(new ReLU().lipschitz("linf"), 1);
    assert.equal(new Flatten().lipschitz("l2"), 1);
    const drop = new Dropout(0.3);
    assert.throws(() => drop.lipschitz("linf"), /training mode/);
    assert.equal(drop.eval().lipschitz("linf"), 1);
    norm.dispose();
  });

  it("GELU: the stated constant is max |GELU'| (a dense autograd scan), not 1", () => {
    for (const approximate of ["none", "tanh"] as const) {
      const worst = scope(() =>
        enableGrad(() => {
          const x = linspace(-8, 8, 400_001, { dtype: "float64" }).requiresGrad_();
          const [g] = autograd.grad([gelu(x, approximate).sum()], [x]);
          return noGrad(() => (g as Tensor).abs().max().item());
        }),
      );
      const stated = new GELU(approximate).lipschitz("linf");
      assert.equal(stated, GELU_LIPSCHITZ[approximate]);
      assert.ok(stated >= worst && stated - worst < 1e-5, `${approximate}: stated ${stated}, scanned ${worst}`);
      assert.ok(worst > 1.12);
    }
  });

  it("AdaptiveAvgPool2d: L-inf 1; L2 1/sqrt(k) for a global average; a size is needed for other outputs", () => {
    assert.equal(new AdaptiveAvgPool2d(1).lipschitz("linf"), 1);
    assert.ok(Math.abs(new AdaptiveAvgPool2d(1).lipschitz("l2", { inputShape: [4, 4, 4] }) - 0.25) < 1e-12);
    assert.equal(new AdaptiveAvgPool2d(1).lipschitz("l2"), 1);
    assert.throws(() => new AdaptiveAvgPool2d(2).lipschitz("l2"), /input size/);
    // Overlapping windows (5 -> 3: [0,2), [1,4), [3,5)): a Gram bound, checked against the SVD below.
    assert.ok(adaptiveAvgPoolLipschitz(3, "l2", [2, 5, 5]) < 1);
  });

  it("Gram iteration: an upper bound within 1e-5 of the largest singular value; power iteration a lower bound", () => {
    manualSeed(4);
    const lin = new Linear(40, 30);
    const upper = gramSpectralBound(lin.weight);
    const lower = powerIterationNorm((v) => v.matmul(lin.weight.detach().double().T), [40], { iterations: 500 });
    assert.ok(lower <= upper, `${lower} > ${upper}`);
    assert.ok(upper <= lower * (1 + 1e-5), `Gram ${upper} vs power ${lower}`);
    lin.dispose();
  });

  describe("spectral norms against PyTorch's SVD of the unfolded operator", { skip: SKIP_SVD }, () => {
    it("Linear, convolutions (stride, padding, dilation, groups, 1x1) and overlapping pooling", () => {
      manualSeed(5);
      const lin = new Linear(9, 6);
      const convs: [Conv2d, number[]][] = [
        [new Conv2d(2, 3, 3, { padding: 1 }), [2, 6, 6]],
        [new Conv2d(3, 4, 3, { stride: 2, padding: 1 }), [3, 7, 7]],
        [new Conv2d(2, 2, 3, { dilation: 2, padding: 2 }), [2, 6, 5]],
        [new Conv2d(4, 6, 3, { groups: 2, padding: 1 }), [4, 5, 5]],
        [new Conv2d(3, 5, 1, { stride: 2 }), [3, 6, 6]],
        [new Conv2d(2, 3, [2, 3], { padding: [0, 1] }), [2, 5, 4]],
        [new Conv2d(4, 4, 3, { padding: 1 }), [4, 12, 12]],
        [new Conv2d(4, 6, 3, { padding: 1, stride: 2 }), [4, 12, 11]],
        [new Conv2d(3, 3, 3, { padding: 3 }), [3, 5, 5]],
      ];
      const cases: SvdCase[] = [
        { kind: "linear", weight: lin.weight.toFlatArray(), shape: lin.weight.shape },
        ...convs.map(([c, s]) => convCase(c, s)),
        { kind: "pool", output: [3, 3], input: [1, 5, 5] },
        { kind: "pool", output: [2, 3], input: [1, 4, 7] },
      ];
      const svd = referenceSvd(cases);
      const within = (what: string, bound: number, sigma: number, rtol: number) =>
        assert.ok(bound >= sigma && bound <= sigma * (1 + rtol), `${what}: bound ${bound}, SVD ${sigma}`);
      within("Linear", lin.lipschitz("l2"), svd[0] as number, 1e-5);
      convs.forEach(([conv, shape], i) => {
        const sigma = svd[i + 1] as number;
        const what = `conv #${i} [${conv.weight.shape}] on [${shape}]`;
        // Exact path: the unfolded matrix on the real input size.
        within(`${what} exact`, conv.lipschitz("l2", { inputShape: shape }), sigma, 1e-5);
        // Size-free bound: sound for every input size, looser.
        const free = conv.lipschitz("l2");
        assert.ok(free >= sigma, `${what}: size-free bound ${free} < SVD ${sigma}`);
        // Circulant bound (polyphase + torus + per-frequency Gram): sound, and tight once the image
        // is large against the kernel (boundary effects only).
        if (conv.groups === 1) {
          const circ = convCirculantBound(conv.weight, conv.geometry, shape);
          assert.ok(circ >= sigma, `${what}: circulant bound ${circ} < SVD ${sigma}`);
          if ((shape[1] as number) >= 11) assert.ok(circ <= sigma * 1.05, `${what}: circulant bound ${circ} vs SVD ${sigma}`);
        }
        // Without the exact path the layer uses the circulant bound (min with the size-free one).
        const viaCirculant = conv.lipschitz("l2", { inputShape: shape, exactLimit: 0 });
        assert.ok(viaCirculant >= sigma && viaCirculant <= free * (1 + 1e-9), `${what}: ${viaCirculant}`);
        // Power iteration on the operator (conv + autograd adjoint): a lower bound that converges.
        const est = scope(() => {
          const w = conv.weight.detach().double();
          return powerIterationNorm((v) => conv2d(v, w, null, conv.geometry), shape, { iterations: 400 });
        });
        assert.ok(est <= sigma * (1 + 1e-9) && est >= sigma * (1 - 1e-3), `${what}: power ${est} vs SVD ${sigma}`);
        // 'power' mode (forced by exactLimit 0): min(sound, estimate * 1.05), still above the SVD here.
        const power = conv.lipschitz("l2", { inputShape: shape, l2Method: "power", exactLimit: 0 });
        assert.ok(power >= sigma && power <= Math.min(viaCirculant, est * 1.05) * (1 + 1e-6), `${what}: power mode ${power}`);
      });
      within("pool 5x5 -> 3x3", adaptiveAvgPoolLipschitz(3, "l2", [1, 5, 5]), svd[convs.length + 1] as number, 1e-5);
      within("pool 4x7 -> 2x3", adaptiveAvgPoolLipschitz([2, 3], "l2", [1, 4, 7]), svd[convs.length + 2] as number, 1e-5);
      lin.dispose();
      for (const [c] of convs) c.dispose();
    });
  });

  it("the size-free and circulant conv L2 bounds are sound on random kernels (>= the exact norm on several sizes)", () => {
    manualSeed(6);
    for (const [ci, co, k, stride] of [
      [1, 1, 3, 1],
      [3, 2, 3, 1],
      [2, 5, 3, 2],
      [4, 4, 5, 1],
      [2, 3, 2, 2],
    ] as const) {
      const conv = new Conv2d(ci, co, k, { stride, padding: Math.floor(k / 2) });
      const free = convL2SizeFreeBound(conv.weight);
      for (const size of [k, 6, 9]) {
        const exact = conv.lipschitz("l2", { inputShape: [ci, size, size] });
        assert.ok(free >= exact * (1 - 1e-6), `[${conv.weight.shape}] on ${size}x${size}: size-free ${free} < exact ${exact}`);
        // The Gram bound of the unfolded matrix itself can sit up to ln(multiplicity) / 2^17 above the
        // norm (a stride-2, 2x2 kernel is block diagonal: 9 equal top singular values), so compare
        // with that slack; the SVD test above checks the circulant bound against LAPACK exactly.
        const circ = convCirculantBound(conv.weight, conv.geometry, [ci, size, size]);
        assert.ok(circ >= exact * (1 - 1e-4), `[${conv.weight.shape}] on ${size}x${size}: circulant ${circ} < exact ${exact}`);
      }
      conv.dispose();
    }
  });

  describe("soundness: no attack on the Lipschitz ratio beats the bound", () => {
    const nets: [string, () => Module & UnaryModule, number[]][] = [
      ["Linear", () => new Linear(6, 4), [6]],
      ["Conv2d 3x3", () => new Conv2d(2, 3, 3, { padding: 1 }), [2, 5, 5]],
      [
        "conv-BN-ReLU-conv(stride 2)-ReLU-pool-linear",
        () =>
          new Sequential(
            new Conv2d(2, 4, 3, { padding: 1 }),
            new BatchNorm2d(4),
            new ReLU(),
            new Conv2d(4, 3, 3, { stride: 2, padding: 1 }),
            new ReLU(),
            new AdaptiveAvgPool2d(1),
            new Flatten(),
            new Linear(3, 3),
          ),
        [2, 6, 6],
      ],
      ["BasicBlock, projection shortcut (stride 2)", () => new BasicBlock(3, 4, 2), [3, 6, 6]],
      ["BasicBlock, identity shortcut", () => new BasicBlock(3, 3, 1), [3, 5, 5]],
      [
        "Normalize-conv-BN-GELU-overlapping pool-linear",
        () =>
          new Sequential(
            new Normalize([0.5, 0.4, 0.3], [0.2, 0.3, 0.5]),
            new Conv2d(3, 4, 3, { padding: 1 }),
            new BatchNorm2d(4),
            new GELU(),
            new AdaptiveAvgPool2d(3),
            new Flatten(),
            new Linear(36, 5),
          ),
        [3, 5, 5],
      ],
      ["MLP", () => new Sequential(new Flatten(), new Linear(12, 8), new ReLU(), new Linear(8, 3)), [3, 2, 2]],
      ["ResNet18 width 1 (8x8 images)", () => new ResNet18({ width: 1, numClasses: 3 }), [3, 8, 8]],
    ];
    for (const [title, build, shape] of nets) {
      it(title, () => {
        for (const seed of [11, 12]) {
          manualSeed(seed);
          const net = build().to("float64");
          randomizeBatchNorms(net, seed);
          net.eval();
          for (const norm of ["linf", "l2"] as Norm[]) {
            const bound = net.lipschitz(norm, { inputShape: shape });
            const product = net.lipschitz(norm, { inputShape: shape, fuseBatchNorm: false });
            assert.ok(bound <= product * (1 + 1e-9), `${title} ${norm}: folded ${bound} > product ${product}`);
            const found = maxLipschitzRatio((x) => net.forward(x), shape, norm, { seed, steps: 60 });
            assert.ok(found <= bound * (1 + 1e-9), `${title} seed ${seed} ${norm}: attack found ratio ${found} > bound ${bound}`);
            // A single linear layer's bound is exact: the attack must come close (it has teeth).
            if (title === "Linear" || title === "Conv2d 3x3") {
              assert.ok(found >= 0.97 * bound, `${title} ${norm}: attack found only ${found} of the exact ${bound}`);
            }
          }
          net.dispose();
        }
      });
    }
  });

  it("refusals: ViT, Attention, LayerNorm, and a module without a bound, each with a clear message", () => {
    manualSeed(7);
    const vit = new ViT({ patchSize: 8, dim: 16, depth: 1, heads: 2 });
    assert.throws(
      () => vit.eval().lipschitz("linf"),
      (e: unknown) => e instanceof LipschitzError && /ViT/.test(e.message) && /attention/.test(e.message),
    );
    const att = new Attention(8, 2);
    assert.throws(() => att.lipschitz("l2"), /self-attention has no global Lipschitz bound/);
    const ln = new LayerNorm(4);
    assert.throws(() => ln.lipschitz("l2"), /LayerNorm/);
    class Custom extends Module {}
    assert.throws(() => new Custom().lipschitz("linf"), /no Lipschitz bound for Custom/);
    // A network is refused as a whole when one layer has no bound.
    const seq = new Sequential(new Flatten(), new LayerNorm(4));
    assert.throws(() => seq.lipschitz("linf"), /LayerNorm/);
    assert.throws(() => new ReLU().lipschitz("l1" as unknown as "linf"), /norm must be/);
    for (const m of [vit, att, seq, ln]) m.dispose();
  });

  it("a random-init ResNet18 (width 8) has a vacuous global constant: the product over 18 layers", () => {
    manualSeed(8);
    const net = new ResNet18({ width: 8 }).eval();
    const linf = net.lipschitz("linf", { inputShape: [3, 32, 32] });
    assert.ok(linf > 1e10, `L-inf constant ${linf}`);
    assert.ok(Number.isFinite(linf));
    net.dispose();
  });
});
