// Shared pieces of the attack tests: the PyTorch-trained reference model, tiny models,
// threat-model assertions and the tensor-leak guard.
import assert from "node:assert/strict";
import { after, before } from "node:test";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { MoE } from "../../src/models/index.js";
import { Conv2d, Flatten, Linear, type Module, ReLU, Sequential } from "../../src/nn/index.js";
import { memoryStats, scope, type Tensor } from "../../src/tensor/index.js";
import { fixturePath } from "../helpers/paths.js";

/**
 * Fails the suite when its tests leave tensors alive. Call inside describe(); setup and
 * teardown (shared fixtures) run inside the counted window.
 */
export function guardLeaks(setup?: () => void, teardown?: () => void): void {
  let start = 0;
  before(() => {
    start = memoryStats().liveTensors;
    setup?.();
  });
  after(() => {
    teardown?.();
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });
}

/** The CNN of test/fixtures/pgd_reference.py (same layer order, so the same state-dict names). */
export function referenceCnn(): Sequential {
  return new Sequential(
    new Conv2d(1, 16, 3, { padding: 1 }),
    new ReLU(),
    new Conv2d(16, 32, 3, { stride: 2, padding: 1 }),
    new ReLU(),
    new Flatten(),
    new Linear(32 * 4 * 4, 10),
  );
}

export interface ReferenceFixture {
  net: Sequential;
  /** Test images [1000, 1, 8, 8] in [0, 1]. */
  x: Tensor;
  /** Labels [1000] int64. */
  y: Tensor;
  metadata: Record<string, string>;
  dispose(): void;
}

/** Weights, inputs and PyTorch's results written by test/fixtures/pgd_reference.py. */
export function loadReference(): ReferenceFixture {
  const { tensors, metadata } = loadSafetensors(fixturePath("pgd_reference.safetensors"));
  const x = tensors.get("x");
  const y = tensors.get("y");
  assert.ok(x !== undefined && y !== undefined, "fixture lacks x or y");
  tensors.delete("x");
  tensors.delete("y");
  const net = referenceCnn();
  net.loadStateDict(tensors);
  for (const t of tensors.values()) t.dispose();
  net.eval();
  return {
    net,
    x,
    y,
    metadata,
    dispose() {
      x.dispose();
      y.dispose();
      net.dispose();
    },
  };
}

export function metaNumber(meta: Record<string, string>, key: string): number {
  const v = Number(meta[key]);
  assert.ok(Number.isFinite(v), `fixture metadata ${key} = ${meta[key]}`);
  return v;
}

export const MOE_SHAPE = [1, 4, 4] as const;

/** A MoE of linear experts on [N, 1, 4, 4] images with 10 classes. */
export function tinyMoE(
  options: { k?: number; gating?: "topk" | "dense" | "hard"; renormalize?: boolean } = {},
): MoE<Sequential> {
  const experts = Array.from({ length: 3 }, () => new Sequential(new Flatten(), new Linear(16, 10)));
  return new MoE(experts, { imageShape: MOE_SHAPE, normalize: { mean: [0.5], std: [0.25] }, ...options });
}

/** Every output is in [0, 1], within eps of x in the given norm, and carries no graph. */
export function assertInThreatModel(adv: Tensor, x: Tensor, eps: number, norm: "linf" | "l2", what: string): void {
  assert.deepEqual(adv.shape, x.shape, `${what}: shape`);
  assert.equal(adv.dtype, x.dtype, `${what}: dtype`);
  assert.equal(adv.requiresGrad, false, `${what}: output requires grad`);
  scope(() => {
    const lo = adv.min().item();
    const hi = adv.max().item();
    assert.ok(lo >= 0 && hi <= 1, `${what}: outside [0, 1]: [${lo}, ${hi}]`);
    const d = adv.sub(x).flatten(1);
    const worst = (norm === "linf" ? d.abs().max(1)[0] : d.norm(2, 1)).max().item();
    // float32 rounding of x +- eps.
    const slack = norm === "linf" ? 1e-6 : 1e-5 * Math.max(eps, 1);
    assert.ok(worst <= eps + slack, `${what}: perturbation ${worst} exceeds eps ${eps} (${norm})`);
  });
}

/** Every parameter's .grad is still null. */
export function assertNoParamGrads(model: Module, what: string): void {
  for (const [name, p] of model.namedParameters()) {
    const g = p.grad;
    g?.dispose();
    assert.equal(g, null, `${what}: ${name}.grad was written`);
  }
}

/** Training flag of every module, in order. */
export function modes(model: Module): boolean[] {
  return Array.from(model.modules(), (m) => m.training);
}
