// The attack contract, for every attack: outputs lie in the eps-ball and in [0, 1], carry
// no graph and do not alias x; the model's modes (per module), MoE usage counts and aux
// loss are as before, even when the model throws; parameters' .grad stays null; no leaks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  APGD,
  APGDT,
  type Attack,
  Ensemble,
  ExpertAttack,
  FGSM,
  PGD,
  RandomSearch,
  RouterAttack,
} from "../../src/attacks/index.js";
import type { MoE } from "../../src/models/index.js";
import { Module, type Sequential } from "../../src/nn/index.js";
import { manualSeed, noGrad, rand, randint, scope, type Tensor } from "../../src/tensor/index.js";
import {
  assertInThreatModel,
  assertNoParamGrads,
  guardLeaks,
  loadReference,
  MOE_SHAPE,
  modes,
  type ReferenceFixture,
  tinyMoE,
} from "./helpers.js";

const EPS = { linf: 0.1, l2: 0.6 } as const;

type Make = (m: Sequential) => Attack;
const classifierAttacks: [string, "linf" | "l2", Make][] = [
  ["FGSM linf", "linf", (m) => new FGSM(m, { eps: EPS.linf })],
  ["FGM l2", "l2", (m) => new FGSM(m, { eps: EPS.l2, norm: "l2" })],
  ["PGD linf x2 restarts", "linf", (m) => new PGD(m, { eps: EPS.linf, steps: 3, restarts: 2 })],
  ["PGD l2", "l2", (m) => new PGD(m, { eps: EPS.l2, steps: 3, norm: "l2" })],
  ["PGD margin loss, from x", "linf", (m) => new PGD(m, { eps: EPS.linf, steps: 3, loss: "margin", randomStart: false })],
  ["PGD DLR loss", "linf", (m) => new PGD(m, { eps: EPS.linf, steps: 3, loss: "dlr" })],
  ["PGD KL loss (TRADES)", "l2", (m) => new PGD(m, { eps: EPS.l2, steps: 3, loss: "kl", norm: "l2" })],
  ["APGD-CE linf x2 restarts", "linf", (m) => new APGD(m, { eps: EPS.linf, steps: 5, restarts: 2 })],
  ["APGD-DLR l2", "l2", (m) => new APGD(m, { eps: EPS.l2, steps: 5, loss: "dlr", norm: "l2" })],
  ["APGD-T linf", "linf", (m) => new APGDT(m, { eps: EPS.linf, steps: 4, targets: 3 })],
  ["APGD-T l2", "l2", (m) => new APGDT(m, { eps: EPS.l2, steps: 4, targets: 2, norm: "l2" })],
  ["RandomSearch linf", "linf", (m) => new RandomSearch(m, { eps: EPS.linf, queries: 20 })],
  ["RandomSearch l2", "l2", (m) => new RandomSearch(m, { eps: EPS.l2, queries: 20, norm: "l2" })],
  ["Ensemble.standard linf", "linf", (m) => Ensemble.standard(m, { eps: EPS.linf, steps: 3, targets: 2, queries: 10 })],
  [
    "Ensemble [FGM, PGD] l2",
    "l2",
    (m) => new Ensemble(m, [new FGSM(m, { eps: EPS.l2, norm: "l2" }), new PGD(m, { eps: EPS.l2, norm: "l2", steps: 3 })]),
  ],
];

/** A model that fails on its third forward, in training mode. */
class Exploding extends Module {
  calls = 0;
  constructor(readonly inner: Sequential) {
    super();
    this.registerModule("inner", inner);
  }
  forward(x: Tensor): Tensor {
    if (++this.calls > 2) throw new Error("boom");
    return this.inner.forward(x);
  }
}

describe("attack contract on a trained CNN", () => {
  let ref: ReferenceFixture;
  let x: Tensor;
  let y: Tensor;
  guardLeaks(
    () => {
      ref = loadReference();
      [x, y] = scope(() => [ref.x.narrow(0, 0, 12).clone(), ref.y.narrow(0, 0, 12).clone()]);
    },
    () => {
      x.dispose();
      y.dispose();
      ref.dispose();
    },
  );

  for (const [name, norm, make] of classifierAttacks) {
    it(`${name}: in the ${norm} ball and the box; modes and .grad untouched`, () => {
      manualSeed(1);
      const net = ref.net;
      // Mixed modes: the attack must restore each module's own flag, not one global mode.
      net.train();
      net.at(1).training = false;
      const before = modes(net);
      const attack = make(net);
      const adv = attack.run(x, y);
      assertInThreatModel(adv, x, EPS[norm], norm, name);
      assert.deepEqual(modes(net), before, `${name}: modes changed`);
      assertNoParamGrads(net, name);
      // A fresh tensor: writing into it leaves x alone.
      const x0 = scope(() => x.sum().item());
      noGrad(() => adv.add_(1));
      assert.equal(
        scope(() => x.sum().item()),
        x0,
      );
      adv.dispose();
      // Also when the caller has switched autograd off.
      const adv2 = noGrad(() => attack.run(x, y));
      assertInThreatModel(adv2, x, EPS[norm], norm, `${name} under noGrad`);
      adv2.dispose();
      net.eval();
    });
  }

  it("restores modes and frees everything when the model throws mid-attack", () => {
    const model = new Exploding(ref.net);
    model.train();
    const before = modes(model);
    assert.throws(() => new PGD(model, { steps: 5 }).run(x, y), /boom/);
    assert.deepEqual(modes(model), before);
    assertNoParamGrads(model, "exploding");
    ref.net.eval();
  });

  it("rejects bad inputs and options with clear messages", () => {
    const net = ref.net;
    assert.throws(() => new PGD(net, { eps: -1 }), /eps must be/);
    assert.throws(() => new PGD(net, { steps: 1.5 }), /steps must be an integer/);
    assert.throws(() => new APGD(net, { rho: 2 }), /rho must be/);
    assert.throws(() => new PGD(net, { loss: "nope" as "ce" }), /unknown attack loss/);
    const yf = scope(() => y.to("float32"));
    assert.throws(() => new PGD(net).run(x, yf), /y must be int64/);
    yf.dispose();
    const empty = scope(() => new PGD(net).run(x.narrow(0, 0, 0), y.narrow(0, 0, 0)));
    assert.deepEqual(empty.shape, [0, 1, 8, 8]);
    empty.dispose();
  });
});

describe("MoE attack contract", () => {
  guardLeaks();
  const gatings: [string, { k?: number; gating?: "topk" | "dense" | "hard"; renormalize?: boolean }][] = [
    ["top-1", { k: 1 }],
    ["top-2 renormalised", { k: 2, renormalize: true }],
    ["dense", { gating: "dense" }],
    ["hard", { gating: "hard" }],
  ];
  for (const [label, options] of gatings) {
    it(`ExpertAttack and RouterAttack (${label}): threat model, modes, aux loss, .grad`, () => {
      manualSeed(5);
      const moe: MoE = tinyMoE(options);
      moe.routerNoise = 0.5;
      const x = rand([8, ...MOE_SHAPE]);
      const y = randint(0, 10, [8]);
      // A training forward's outputs (logits, gates, load-balancing loss) must survive the attacks.
      const detailed = moe.forwardDetailed(x);
      const auxBefore = detailed.loadBalancingLoss.item();
      const before = modes(moe);
      const attacks: [Attack, "linf" | "l2", number][] = [
        [new ExpertAttack(moe, { eps: 0.05, steps: 3 }), "linf", 0.05],
        [new ExpertAttack(moe, { eps: 0.3, steps: 3, norm: "l2" }), "l2", 0.3],
        [new RouterAttack(moe, { eps: 0.05, steps: 3 }), "linf", 0.05],
        [new RouterAttack(moe, { eps: 0.3, steps: 3, norm: "l2", objective: "route" }), "l2", 0.3],
        [new PGD(moe, { eps: 0.05, steps: 3 }), "linf", 0.05],
      ];
      for (const [attack, norm, eps] of attacks) {
        const adv = attack.run(x, y);
        assertInThreatModel(adv, x, eps, norm, `${label} ${attack.name}`);
        if (attack instanceof ExpertAttack || attack instanceof RouterAttack) {
          const report = attack.evaluate(x, y, adv);
          for (const v of Object.values(report)) assert.ok(Number.isFinite(v));
        }
        adv.dispose();
        assert.deepEqual(modes(moe), before, `${attack.name}: modes changed`);
        assert.equal(detailed.loadBalancingLoss.isDisposed, false, `${attack.name}: aux loss freed`);
        assert.equal(detailed.loadBalancingLoss.item(), auxBefore, `${attack.name}: aux loss changed`);
        assertNoParamGrads(moe, attack.name);
      }
      const report = new RouterAttack(moe, { eps: 0.05, steps: 2 }).evaluate(x, y);
      assert.equal(report.n, 8);
      for (const t of [
        x,
        y,
        detailed.logits,
        detailed.loadBalancingLoss,
        detailed.gates.weights,
        detailed.gates.indices,
        detailed.gates.probs,
      ])
        t.dispose();
      moe.dispose();
    });
  }
});
