// One MoE attack (a MoEAttackDefinition) on one analysed MoE, and the per-sample worst
// case over the attacks of a group (RA-E, RA-R, adaptive). Each sample counts as robust
// only when the model the attack describes is correct on x AND at the attack's point, and
// as robust for the real MoE only when the MoE is correct on x AND there.
// Columns 'moe:<member>:<id>:clean' (the described model is correct on x), ':robust',
// ':moe' and ':flip'.
import { noGrad } from "../../tensor/autograd.js";
import { scope } from "../../tensor/scope.js";
import type { AdversarialSource } from "../adversarial-source.js";
import type { EvalBatchContext } from "../batch-context.js";
import { memberCleanCorrect, memberCleanRoutes, memberOf, routesAt } from "../member-state.js";
import { type Metric, score } from "../metric.js";
import type { MoEAttackDefinition, MoEAttackInstance, MoEAttackSettings } from "../moe-attacks.js";
import type { EvalRecord, MemberHeader, MoEAttackGroup } from "../record.js";
import type { MoEAttackResult, MoEAttackRun } from "../report.js";
import { memberColumn } from "./routes.js";

/** Seeds, timings and names of a MoE attack are kept under '<id>:<member>' ('ra-e:model'). */
export function moeAttackKey(id: string, member: string): string {
  return `${id}:${member}`;
}

/** The source of a definition's adversarial examples on one member. */
export function moeAttackSource(
  definition: MoEAttackDefinition,
  member: MemberHeader["member"],
  settings: Omit<MoEAttackSettings, "generator">,
): AdversarialSource<MoEAttackInstance> {
  return {
    key: moeAttackKey(definition.id, member),
    stage: `${definition.title} (${member})`,
    eps: settings.eps,
    norm: settings.norm,
    build: (t, generator) => {
      const m = t.members.find((c) => c.member === member);
      if (m === undefined) throw new Error(`evaluation: the model has no MoE member '${member}'`);
      return definition.build(m.moe, { ...settings, generator });
    },
  };
}

export class MoEAttackMetric implements Metric<MoEAttackRun> {
  readonly id: string;
  readonly group: MoEAttackGroup;
  readonly member: MemberHeader["member"];
  readonly key: string;
  readonly #record: EvalRecord;
  readonly #source: AdversarialSource<MoEAttackInstance> | null;

  constructor(
    record: EvalRecord,
    member: MemberHeader["member"],
    attack: { id: string; group: MoEAttackGroup },
    source: AdversarialSource<MoEAttackInstance> | null,
  ) {
    this.#record = record;
    this.member = member;
    this.id = attack.id;
    this.group = attack.group;
    this.key = moeAttackKey(attack.id, member);
    this.#source = source;
  }

  get source(): AdversarialSource<MoEAttackInstance> {
    if (this.#source === null) throw new Error(`evaluation: MoE attack '${this.key}' cannot run from a saved record`);
    return this.#source;
  }

  column(what: "clean" | "robust" | "moe" | "flip"): string {
    return memberColumn(this.member, `${this.id}:${what}`);
  }

  update(batch: EvalBatchContext): void {
    const m = memberOf(batch, this.member);
    const attack = batch.instance(this.source);
    const adv = batch.adversarial(this.source);
    const { x, y } = batch;
    const [describedClean, describedAdv, moeAdv] = noGrad(() =>
      scope(() => {
        const described = attack.describedModel(x);
        const ok = (logits: ReturnType<typeof described>) => logits.argmax(1).eq(y).toFlatArray();
        return [ok(described(x)), ok(described(adv)), ok(m.moe.forward(adv))];
      }),
    );
    const moeClean = memberCleanCorrect(batch, m);
    const cleanRoutes = memberCleanRoutes(batch, m);
    const t = this.#record.table;
    t.set(
      this.column("clean"),
      batch.row,
      describedClean.map((v) => v !== 0),
    );
    t.set(
      this.column("robust"),
      batch.row,
      describedAdv.map((v, i) => v !== 0 && describedClean[i] !== 0),
    );
    t.set(
      this.column("moe"),
      batch.row,
      moeAdv.map((v, i) => v !== 0 && (moeClean[i] as boolean)),
    );
    t.set(
      this.column("flip"),
      batch.row,
      routesAt(m, adv).map((r, i) => r !== cleanRoutes[i]),
    );
  }

  result(): MoEAttackRun {
    const r = this.#record;
    return {
      id: this.id,
      attack: r.names[this.key] ?? "",
      correct: r.table.countAll([this.column("robust")]),
      seconds: r.seconds[this.key] ?? 0,
    };
  }
}

/** The per-sample worst case over a group's attacks (null when none ran). */
export function groupResult(record: EvalRecord, attacks: readonly MoEAttackMetric[]): MoEAttackResult | null {
  if (attacks.length === 0) return null;
  const t = record.table;
  const n = t.rows;
  const level = record.header.confidence;
  const runs = attacks.map((a) => a.result());
  const robust = score(t.countAll(attacks.map((a) => a.column("robust"))), n, level);
  const moe = score(t.countAll(attacks.map((a) => a.column("moe"))), n, level);
  let flips = 0;
  for (const v of t.anyOf(attacks.map((a) => a.column("flip")))) if (v) flips++;
  return {
    attack: runs.map((x) => x.attack).join("; "),
    accuracy: robust.accuracy,
    moeAccuracy: moe.accuracy,
    routeFlipRate: flips / n,
    seconds: runs.reduce((s, x) => s + x.seconds, 0),
    correct: robust.correct,
    interval: robust.interval,
    moeCorrect: moe.correct,
    moeInterval: moe.interval,
    routeFlips: flips,
    runs,
  };
}
