// Shared pieces of the certificate tests: random small networks, points in the ball (random,
// vertices, and a small PGD written here, independent of src/attacks), containment checks, and a
// MoE trained on a separable synthetic task.
import assert from "node:assert/strict";
import { type ClassifierBounds, type Interval, ibpClassifierBounds, inputBox } from "../../src/certify/ibp.js";
import { BasicBlock, type GatingMode, MoE, Normalize } from "../../src/models/index.js";
import {
  AdaptiveAvgPool2d,
  BatchNorm2d,
  Conv2d,
  functional as F,
  Flatten,
  Linear,
  type Module,
  ReLU,
  Sequential,
  type UnaryModule,
} from "../../src/nn/index.js";
import { Adam } from "../../src/optim/index.js";
import { autograd, cat, noGrad, rand, randint, randn, scope, type Tensor, zeros } from "../../src/tensor/index.js";

export type BoundsFn = (model: Module, lower: Tensor, upper: Tensor) => ClassifierBounds;

export type Forward = (x: Tensor) => Tensor;

/** Random BatchNorm statistics and affine parameters (negative scales included). */
export function randomizeBatchNorms(m: Module): void {
  noGrad(() => {
    for (const mod of m.modules()) {
      if (!(mod instanceof BatchNorm2d)) continue;
      const c = mod.numFeatures;
      scope(() => {
        mod.runningMean?.copy_(randn([c], { dtype: mod.runningMean.dtype }).mul(0.5));
        mod.runningVar?.copy_(rand([c], { dtype: mod.runningVar.dtype }).add(0.3));
        mod.weight?.copy_(randn([c], { dtype: mod.weight.dtype }));
        mod.bias?.copy_(randn([c], { dtype: mod.bias.dtype }).mul(0.3));
      });
    }
  });
}

/** n uniform points in each sample's box, plus n random vertices: [N * 2n, ...]. */
export function pointsInBox(box: Interval, n: number): Tensor {
  return scope(() => {
    const [b, ...rest] = box.lower.shape as [number, ...number[]];
    const lo = box.lower.unsqueeze(1).expand(b, 2 * n, ...rest);
    const width = box.upper
      .sub(box.lower)
      .unsqueeze(1)
      .expand(b, 2 * n, ...rest);
    const u = rand([b, 2 * n, ...rest], { dtype: box.lower.dtype });
    const vertex = u.narrow(1, n, n).gt(0.5).to(box.lower.dtype);
    const t = cat([u.narrow(1, 0, n), vertex], 1);
    return lo.add(width.mul(t)).reshape(b * 2 * n, ...rest);
  });
}

/**
 * Adversarial points for every logit: a small L-inf PGD (sign steps of a quarter of the box's
 * width, projected onto the box, random start) that maximises and minimises out_c, and every
 * pairwise difference out_i - out_j, for each sample. Returns all iterates, [M, ...].
 */
export function pgdPoints(f: Forward, box: Interval, steps: number, numClasses: number): Tensor {
  return scope(() => {
    const step = box.upper.sub(box.lower).mul(0.25);
    const objectives: ((out: Tensor) => Tensor)[] = [];
    for (let c = 0; c < numClasses; c++) {
      objectives.push((o) => o.select(1, c).sum());
      objectives.push((o) => o.select(1, c).sum().neg());
      for (let d = 0; d < numClasses; d++) if (d !== c) objectives.push((o) => o.select(1, d).sub(o.select(1, c)).sum());
    }
    const all: Tensor[] = [];
    for (const objective of objectives) {
      let x = box.lower.add(box.upper.sub(box.lower).mul(rand(box.lower.shape, { dtype: box.lower.dtype })));
      for (let s = 0; s < steps; s++) {
        x = scope(() => {
          const xg = x.detach().requiresGrad_();
          const [g] = autograd.grad(objective(f(xg)), xg);
          const next = xg.detach().add((g as Tensor).sign().mul(step));
          return next.maximum(box.lower).minimum(box.upper);
        });
        all.push(x);
      }
    }
    return cat(all, 0);
  });
}

/** Every output of f at pts (rows grouped by sample: `per` consecutive rows per sample) is inside the bounds. */
export function assertContains(f: Forward, pts: Tensor, b: ClassifierBounds, per: number, tol: number, what: string): void {
  scope(() => {
    const out = noGrad(() => f(pts));
    const [m, k] = out.shape as [number, number];
    const n = b.lower.size(0);
    assert.equal(m, n * per, `${what}: point count`);
    const lo = b.lower.unsqueeze(1).expand(n, per, k).reshape(m, k);
    const hi = b.upper.unsqueeze(1).expand(n, per, k).reshape(m, k);
    const below = lo.sub(out).max().item();
    const above = out.sub(hi).max().item();
    assert.ok(below <= tol, `${what}: an output is ${below} below its lower bound`);
    assert.ok(above <= tol, `${what}: an output is ${above} above its upper bound`);
    const dl = b.diffLower.unsqueeze(1).expand(n, per, k, k).reshape(m, k, k);
    const diff = out.unsqueeze(2).sub(out.unsqueeze(1));
    const worst = dl.sub(diff).max().item();
    assert.ok(worst <= tol, `${what}: a logit difference is ${worst} below its lower bound`);
  });
}

/** Containment of random, vertex and PGD points at each eps, on `n` random images. */
export function checkSoundness(
  model: Module & UnaryModule,
  shape: readonly number[],
  what: string,
  epsList: number[],
  pgdSteps = 8,
  bounds: BoundsFn = ibpClassifierBounds,
): void {
  scope(() => {
    const x = rand([4, ...shape], { dtype: "float64" });
    for (const eps of epsList) {
      scope(() => {
        const box = inputBox(x, eps);
        const b = bounds(model, box.lower, box.upper);
        const k = b.lower.size(1);
        const f: Forward = (t) => model.forward(t);
        assertContains(f, pointsInBox(box, 64), b, 128, 1e-9, `${what} eps ${eps} random`);
        const adv = pgdPoints(f, box, pgdSteps, k);
        // pgdPoints returns [objectives * steps * N, ...] ordered by iterate: regroup per sample.
        const per = adv.size(0) / 4;
        const grouped = adv
          .view(per, 4, ...shape)
          .transpose(0, 1)
          .reshape(4 * per, ...shape);
        assertContains(f, grouped, b, per, 1e-9, `${what} eps ${eps} PGD`);
        // The clean point is inside too, and the bounds are ordered.
        assertContains(f, x, b, 1, 1e-9, `${what} eps ${eps} clean`);
        assert.ok(b.upper.sub(b.lower).min().item() >= 0, `${what}: upper < lower`);
      });
    }
  });
}

export function smallNet(): Sequential {
  return new Sequential(
    new Normalize([0.5, 0.4, 0.3], [0.25, 0.3, 0.2]),
    new Conv2d(3, 4, 3, { padding: 1 }),
    new BatchNorm2d(4),
    new ReLU(),
    new BasicBlock(4, 4, 1),
    new BasicBlock(4, 6, 2),
    new AdaptiveAvgPool2d(2),
    new Flatten(),
    new Linear(24, 5),
  );
}

export function mlpExpert(inputs: number, classes: number, hidden = 12): Sequential {
  return new Sequential(new Flatten(), new Linear(inputs, hidden), new ReLU(), new Linear(hidden, classes));
}

export function convExpert(classes: number): Sequential {
  return new Sequential(
    new Conv2d(1, 3, 3, { padding: 1 }),
    new BatchNorm2d(3),
    new ReLU(),
    new BasicBlock(3, 4, 2),
    new AdaptiveAvgPool2d(1),
    new Flatten(),
    new Linear(4, classes),
  );
}

export const MOE_SHAPE = [1, 4, 4] as const;

export function smallMoE(gating: GatingMode, k: number, renormalize: boolean, router: "linear" | "conv" = "linear"): MoE {
  const experts = [convExpert(4), mlpExpert(16, 4), convExpert(4)];
  const moe = new MoE(experts, { gating, k, renormalize, router, imageShape: MOE_SHAPE, normalize: { mean: [0.5], std: [0.3] } });
  randomizeBatchNorms(moe);
  // A larger router scale makes the route change inside the ball for some samples.
  noGrad(() => moe.router.gate.weight.mul_(3));
  return moe.to("float64").eval();
}

export interface TrainedTask {
  moe: MoE;
  /** n fresh samples of the task. */
  sample(n: number): { x: Tensor; y: Tensor };
  dispose(): void;
}

/**
 * A top-1 MoE of two MLP experts trained for `steps` Adam steps on a separable task: images
 * around one of three random +-1 prototypes (amplitude 0.25, noise 0.08), so that many samples
 * have margins that survive a few /255 of perturbation.
 */
export function trainedSyntheticMoE(steps = 300): TrainedTask {
  const classes = 3;
  const protos = scope(() => randn([classes, ...MOE_SHAPE]).sign());
  const sample = (n: number) =>
    scope(() => {
      const y = randint(0, classes, [n]);
      const x = protos
        .indexSelect(0, y)
        .mul(0.25)
        .add(0.5)
        .add(randn([n, ...MOE_SHAPE]).mul(0.08))
        .clamp(0, 1);
      return { x, y };
    });
  const moe = new MoE([mlpExpert(16, classes, 16), mlpExpert(16, classes, 16)], {
    k: 1,
    imageShape: MOE_SHAPE,
    normalize: { mean: [0.5], std: [0.3] },
  });
  const opt = new Adam(moe.parameters(), { lr: 1e-2 });
  moe.train();
  for (let step = 0; step < steps; step++) {
    scope(() => {
      const { x, y } = sample(64);
      opt.zeroGrad();
      F.crossEntropy(moe.forward(x), y).backward();
      opt.step();
    });
  }
  opt.dispose();
  moe.zeroGrad();
  moe.eval();
  return {
    moe,
    sample,
    dispose() {
      protos.dispose();
      moe.dispose();
    },
  };
}

/**
 * PGD with restarts on the margin loss max_{c != y} F_c - F_y, checking every iterate: how
 * many samples some iterate misclassifies.
 */
export function pgdBreaks(model: UnaryModule, x: Tensor, y: Tensor, eps: number, restarts: number, steps: number): number {
  return scope(() => {
    const n = x.size(0);
    const lo = x.sub(eps).clamp(0, 1);
    const hi = x.add(eps).clamp(0, 1);
    let broken = zeros([n], { dtype: "bool" });
    for (let r = 0; r < restarts; r++) {
      let adv = lo.add(hi.sub(lo).mul(rand(x.shape)));
      for (let s = 0; s <= steps; s++) {
        const [next, wrong] = scope(() => {
          const xg = adv.detach().requiresGrad_();
          const out = model.forward(xg);
          const own = out.gather(1, y.view(n, 1)).squeeze(1);
          const others = out.scatter(1, y.view(n, 1), Number.NEGATIVE_INFINITY).max(1)[0];
          const loss = others.sub(own);
          const [g] = autograd.grad(loss.sum(), xg);
          const stepped = xg
            .detach()
            .add((g as Tensor).sign().mul(eps / 4))
            .maximum(lo)
            .minimum(hi);
          return [stepped, loss.detach().ge(0)] as const;
        });
        broken = broken.logicalOr(wrong);
        adv = next;
      }
    }
    return broken.sum().item();
  });
}
