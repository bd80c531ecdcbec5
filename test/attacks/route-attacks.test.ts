// The worst-case route attacks on a MoE built so that the untargeted router attack is fooled
// into a harmless flip: experts 0 and 1 are right, expert 2 is wrong; the clean route is 0; an
// untargeted push away from expert 0 lands on expert 1 (its logit rises fastest), while expert
// 2 is reachable within eps only by a targeted search. RA-R's worst case must find expert 2.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RouteThenExpertAttack, TargetedRouteAttack } from "../../src/attacks/route-attacks.js";
import { RouterAttack } from "../../src/attacks/router-attack.js";
import { MoE } from "../../src/models/index.js";
import { Flatten, Linear, Sequential } from "../../src/nn/index.js";
import { full, noGrad, scope, type Tensor, zeros } from "../../src/tensor/index.js";
import { assertInThreatModel, guardLeaks } from "./helpers.js";

const SHAPE = [1, 4, 4] as const;
const EPS = 0.1;

/** A classifier that ignores its input and always predicts `cls` (of 3). */
function constant(cls: number): Sequential {
  const lin = new Linear(16, 3);
  // scope: the narrowed views are temporaries.
  scope(() =>
    noGrad(() => {
      lin.weight.zero_();
      (lin.bias as Tensor).zero_();
      (lin.bias as Tensor).narrow(0, cls, 1).fill_(3);
    }),
  );
  return new Sequential(new Flatten(), lin);
}

function trapMoE(gating: "topk" | "hard"): MoE<Sequential> {
  const moe = new MoE([constant(0), constant(0), constant(1)], {
    k: 1,
    gating,
    imageShape: SHAPE,
    normalize: { mean: [0.5], std: [0.25] },
  });
  // Router on normalised pixels z = (x - 0.5) / 0.25: r0 = 2; r1 = sum of z over pixels 0-7;
  // r2 = 0.7 * sum of z over pixels 8-15. At eps 0.1 (z moves 0.4): r1 <= 3.2, r2 <= 2.24.
  scope(() =>
    noGrad(() => {
      const w = moe.router.gate.weight;
      const b = moe.router.gate.bias as Tensor;
      w.zero_();
      b.zero_();
      b.narrow(0, 0, 1).fill_(2);
      w.narrow(0, 1, 1).narrow(1, 0, 8).fill_(1);
      w.narrow(0, 2, 1).narrow(1, 8, 8).fill_(0.7);
    }),
  );
  return moe.eval();
}

describe("worst-case route attacks (top-1 and hard routing)", () => {
  guardLeaks();

  for (const gating of ["topk", "hard"] as const) {
    it(`${gating}: the untargeted route attack flips to a right expert; the targeted one reaches the wrong expert`, () => {
      const moe = trapMoE(gating);
      const x = full([4, ...SHAPE], 0.5);
      const y = zeros([4], { dtype: "int64" });
      const routeOf = (t: Tensor) => scope(() => noGrad(() => moe.routerLogits(t).argmax(1).toFlatArray()));
      const wrongAt = (t: Tensor) => scope(() => noGrad(() => moe.forward(t).argmax(1).ne(y).toFlatArray()));
      assert.deepEqual(routeOf(x), [0, 0, 0, 0], "clean route");

      const untargeted = new RouterAttack(moe, { eps: EPS, steps: 20, objective: "route" }).run(x, y);
      assert.deepEqual(routeOf(untargeted), [1, 1, 1, 1], "untargeted: flipped onto expert 1, which is right");
      assert.deepEqual(wrongAt(untargeted), [0, 0, 0, 0]);

      const targeted = new TargetedRouteAttack(moe, { eps: EPS, steps: 20 }).run(x, y);
      assertInThreatModel(targeted, x, EPS, "linf", "targeted route");
      assert.deepEqual(routeOf(targeted), [2, 2, 2, 2], "targeted: routed to the wrong expert 2");
      assert.deepEqual(wrongAt(targeted), [1, 1, 1, 1], "the real MoE is wrong there");

      const adaptive = new RouteThenExpertAttack(moe, { eps: EPS, steps: 20 }).run(x, y);
      assertInThreatModel(adaptive, x, EPS, "linf", "route-then-expert");
      assert.deepEqual(wrongAt(adaptive), [1, 1, 1, 1], "route-then-expert fools the MoE");

      // Out of reach: at eps 0.05, r2 <= 1.12 < 2, so no route reaches expert 2 and x comes back.
      const small = new TargetedRouteAttack(moe, { eps: 0.05, steps: 20 }).run(x, y);
      assert.deepEqual(routeOf(small), [0, 0, 0, 0]);
      assert.equal(
        scope(() => small.sub(x).abs().max().item()),
        0,
        "unbroken samples come back as x",
      );
      for (const t of [x, y, untargeted, targeted, adaptive, small]) t.dispose();
      moe.dispose();
    });
  }

  it("refuses routings where the output objective already has gradients", () => {
    const moe = new MoE([constant(0), constant(1)], { k: 2, imageShape: SHAPE, normalize: { mean: [0.5], std: [0.25] } });
    assert.throws(() => new TargetedRouteAttack(moe), /top-1 or hard/);
    assert.throws(() => new RouteThenExpertAttack(moe), /top-1 or hard/);
    const top1 = trapMoE("topk");
    assert.throws(() => new RouteThenExpertAttack(top1, { routePenalty: -1 }), /routePenalty/);
    top1.dispose();
    moe.dispose();
  });
});
