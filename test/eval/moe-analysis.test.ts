// The MoE analysis on a MoE whose prediction is decided by its route alone (two experts
// that ignore the input, expert 0 says class 0, expert 1 class 1; every label is 1; see
// routedMoE): the objective RA-R uses, the AND with the clean flags of the model each
// number describes, the zero-gradient flags, and MoE attack definitions plugged in.
//
// By hand: SA = the samples routed to expert 1. Under RA-R every route can be flipped, so
// every clean-correct sample goes to expert 0 and is wrong (RA-R = 0), while every
// clean-WRONG sample goes to expert 1 and is right at x + d: a plain mean counts those.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RouterAttack } from "../../src/attacks/index.js";
import {
  AdversarialOutputError,
  DEFAULT_MOE_ATTACKS,
  evaluateRecord,
  evaluateRobustness,
  formatReportTable,
  type MoEAttackDefinition,
  reportFromRecord,
  routerObjective,
} from "../../src/eval/index.js";
import { MoE } from "../../src/models/index.js";
import { dispose, noGrad, scope } from "../../src/tensor/index.js";
import { guardLeaks } from "../attacks/helpers.js";
import { CLASSES, constantModel, nearGrey, routedMoE, tinyMoE } from "./helpers.js";

const O = { attacks: ["pgd5"], eps: 0.1, moeSteps: 10, classes: CLASSES } as const;

describe("MoE analysis", () => {
  guardLeaks();

  it("RA-R's objective follows whether the gate weights can change with x", () => {
    const experts = () => [constantModel(0), constantModel(1), constantModel(2)];
    const cases: [ConstructorParameters<typeof MoE>[1], string][] = [
      [{ gating: "hard" }, "route"],
      [{ gating: "topk", k: 1, renormalize: true }, "route"],
      [{ gating: "topk", k: 1, renormalize: false }, "output"],
      [{ gating: "topk", k: 2, renormalize: true }, "output"],
      [{ gating: "dense" }, "output"],
    ];
    for (const [o, want] of cases) {
      const moe = new MoE(experts(), { imageShape: [1, 4, 4], ...o });
      assert.equal(routerObjective(moe), want, JSON.stringify(o));
      moe.dispose();
    }
  });

  it("top-1 renormalised gating: RA-R pushes the route (RA-R = 0) and zero gradients are flagged", () => {
    const moe = routedMoE({ gating: "topk", k: 1, renormalize: true });
    const data = nearGrey(24, 1);
    const r = evaluateRobustness(moe, [data], O);
    const m = r.moe[0];
    assert.ok(m !== undefined && m.routerAttack !== null);
    assert.ok(r.clean.correct > 0 && r.clean.correct < 24, `SA ${r.clean.correct}/24 leaves both routes in use`);
    assert.equal(m.routerObjective, "route");
    assert.match(m.routerAttack.attack, /RouterAttack PGD-10 \(linf, route\)/);
    // The output objective has no gradient here: PGD would only have its random start.
    assert.equal(m.routerAttack.correct, 0, "every correct route is flipped");
    assert.equal(m.routerAttack.routeFlipRate, 1);
    const z = new Map(r.zeroGradients.map((g) => [g.objective, g]));
    assert.deepEqual(
      [...z.keys()],
      [
        "model:ce",
        "ra-e:model:ce",
        "ra-r:model:route",
        "ra-r-targeted:model:route-margin",
        "route-then-expert:model:routed-expert-ce",
      ],
    );
    // The MoE's output is constant where the route is: its CE and RA-E's have no gradient
    // anywhere, which counts for every sample that an attack would have to move (correct on x).
    const sa = r.clean.correct;
    assert.equal(z.get("model:ce")?.count, sa);
    assert.equal(z.get("model:ce")?.flagged, true);
    assert.equal(z.get("ra-e:model:ce")?.count, sa);
    assert.equal(z.get("ra-r:model:route")?.count, 0);
    assert.equal(z.get("ra-r:model:route")?.flagged, false);
    // The targeted route objective moves the router; the routed expert's CE is as flat as the model's.
    assert.equal(z.get("ra-r-targeted:model:route-margin")?.count, 0);
    assert.equal(z.get("route-then-expert:model:routed-expert-ce")?.count, sa);
    const table = formatReportTable(r);
    assert.match(table, /zero input gradients at x: 3 objective\(s\) FLAGGED/);
    assert.match(table, new RegExp(`FLAG\\s+model:ce\\s+${sa}/24`));
    assert.match(table, /RA-R pushes the route/);
    dispose(data);
    moe.dispose();
  });

  it("RA-E, RA-R and the real MoE count a sample only when the model they describe is correct on x", () => {
    const moe = routedMoE({ gating: "hard" });
    const data = nearGrey(24, 2);
    const record = evaluateRecord(moe, [data], O);
    const r = reportFromRecord(record);
    const m = r.moe[0];
    assert.ok(m !== undefined && m.routerAttack !== null && m.expertAttack !== null);
    const sa = r.clean.correct;
    assert.ok(sa > 0 && sa < 24, `SA ${sa}/24`);
    // A plain mean would give the 24 - SA clean-wrong samples, now routed to expert 1.
    assert.equal(m.routerAttack.correct, 0);
    assert.equal(m.routerAttack.accuracy, 0);
    assert.equal(m.routerAttack.moeCorrect, 0);
    assert.equal(m.routerAttack.moeAccuracy, 0);
    assert.equal(m.routerAttack.routeFlips, 24);
    // The experts ignore x: the frozen-router model is right exactly where it was.
    assert.equal(m.expertAttack.correct, sa);
    assert.ok(m.expertAttack.moeCorrect <= sa);
    // Per sample: robust implies correct on x, for every number of the analysis.
    const clean = record.table.column("clean");
    for (const col of ["ra-e:robust", "ra-e:moe", "ra-r:robust", "ra-r:moe"]) {
      const v = record.table.column(`moe:model:${col}`);
      assert.ok(
        v.every((f, i) => f === 0 || clean[i] === 1),
        `${col} only where clean`,
      );
    }
    dispose(data);
    moe.dispose();
  });

  it("dual-model members are AND-ed with their own clean flags", () => {
    const moe = tinyMoE(3, 3);
    const data = nearGrey(12, 3, 2);
    const record = evaluateRecord(moe, [data], { ...O, eps: 0.3 });
    const clean = record.table.column("moe:model:clean");
    for (const col of ["ra-e:robust", "ra-e:moe", "ra-r:robust", "ra-r:moe"]) {
      assert.ok(record.table.column(`moe:model:${col}`).every((f, i) => f === 0 || clean[i] === 1));
    }
    dispose(data);
    moe.dispose();
  });

  it("MoE attack definitions plug in: a second router attack joins RA-R's worst case, an adaptive one the model's", () => {
    const moe = routedMoE({ gating: "hard" });
    const data = nearGrey(16, 4);
    // Does nothing: RA-R stays what the router attack alone gives.
    const idle: MoEAttackDefinition = {
      id: "idle",
      group: "router",
      title: "idle",
      build: (m) => ({
        name: "Idle",
        run: (x) => x.clone(),
        describedModel: () => (xa) => m.forward(xa),
        objectives: () => [],
      }),
    };
    // The route attack, judged on the real MoE: an adaptive attack that flips every route.
    const adaptive: MoEAttackDefinition = {
      id: "ra-a",
      group: "model",
      title: "RA-A",
      build: (m, s) => {
        const a = new RouterAttack(m, { eps: s.eps, norm: s.norm, steps: s.steps, objective: "route" });
        return {
          name: "RouteAdaptive",
          run: (x, y) => a.run(x, y),
          describedModel: () => (xa) => m.forward(xa),
          objectives: () => [],
        };
      },
    };
    // Not defined for this MoE: left out.
    const never: MoEAttackDefinition = { ...idle, id: "never", appliesTo: (m) => m.gating !== "hard" };
    const r = evaluateRobustness(moe, [data], { ...O, moeAttacks: [...DEFAULT_MOE_ATTACKS, idle, never, adaptive] });
    const m = r.moe[0];
    assert.ok(m !== undefined && m.routerAttack !== null && m.adaptiveAttack !== null);
    assert.deepEqual(
      m.routerAttack.runs.map((x) => x.id),
      ["ra-r", "ra-r-targeted", "idle"],
    );
    assert.equal(m.routerAttack.correct, 0);
    assert.equal(m.adaptiveAttack.correct, 0);
    assert.deepEqual(r.worstCase?.attacks, ["pgd5", "route-then-expert:model", "ra-a:model"]);
    assert.equal(r.worstCase?.correct, 0, "the adaptive attack breaks every sample");
    assert.ok((r.attacks[0]?.correct ?? 0) > 0, "PGD on the whole model has no gradient to follow");
    assert.match(formatReportTable(r), /RA-A\s+adaptive attack on the real MoE/);
    dispose(data);
    moe.dispose();
  });

  it("an adversarial example outside the threat model is an error naming the attack", () => {
    const moe = routedMoE({ gating: "hard" });
    const data = nearGrey(8, 5);
    const bad = (id: string, make: (x: Parameters<MoEAttackDefinition["build"]>[1]["eps"], xx: typeof data.x) => typeof data.x) =>
      ({
        id,
        group: "expert",
        title: id,
        build: (m, s) => ({
          name: `Broken-${id}`,
          run: (x) => noGrad(() => scope(() => make(s.eps, x))),
          describedModel: () => (xa) => m.forward(xa),
          objectives: () => [],
        }),
      }) satisfies MoEAttackDefinition;
    const cases: [MoEAttackDefinition, RegExp][] = [
      [
        bad("far", (eps, x) => x.add(3 * eps).clamp(0, 1)),
        /attack 'far:model' \(Broken-far\).*L-inf distance .* beyond eps 0\.1/,
      ],
      [bad("box", (_eps, x) => x.add(0.05 + 1)), /attack 'box:model' \(Broken-box\).*outside \[0, 1\]/],
      [bad("nan", (_eps, x) => x.div(0).mul(0)), /attack 'nan:model' \(Broken-nan\).*NaN or infinite/],
    ];
    for (const [d, re] of cases) {
      assert.throws(
        () => evaluateRobustness(moe, [data], { ...O, attacks: [], moeAttacks: [d] }),
        (e: unknown) => e instanceof AdversarialOutputError && re.test(e.message),
        d.id,
      );
    }
    dispose(data);
    moe.dispose();
  });
});
