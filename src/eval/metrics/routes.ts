// Expert usage of an analysed MoE: its top-1 routes on the clean inputs and at each
// whole-model attack's points (headline eps), the route-flip rate under each attack, and
// the MoE's own clean accuracy. Columns 'moe:<member>:clean', 'moe:<member>:route' and
// 'moe:<member>:route@<attack key>'.
import type { EvalBatchContext } from "../batch-context.js";
import { memberCleanCorrect, memberCleanRoutes, memberOf, routesAt } from "../member-state.js";
import { type Metric, score } from "../metric.js";
import type { EvalRecord, MemberHeader } from "../record.js";
import type { MoEResult } from "../report.js";
import type { RobustAccuracy } from "./robust-accuracy.js";

export type RouteResult = Pick<MoEResult, "cleanAccuracy" | "clean" | "usage" | "underAttack">;

export function memberColumn(member: string, what: string): string {
  return `moe:${member}:${what}`;
}

export class RouteCounts implements Metric<RouteResult> {
  readonly member: MemberHeader;
  readonly #record: EvalRecord;
  readonly #attacks: readonly RobustAccuracy[];

  /** attacks: the whole-model attacks at the headline eps, whose points are routed. */
  constructor(record: EvalRecord, member: MemberHeader, attacks: readonly RobustAccuracy[]) {
    this.#record = record;
    this.member = member;
    this.#attacks = attacks;
  }

  get cleanColumn(): string {
    return memberColumn(this.member.member, "clean");
  }

  get routeColumn(): string {
    return memberColumn(this.member.member, "route");
  }

  routeUnder(a: RobustAccuracy): string {
    return memberColumn(this.member.member, `route@${a.key}`);
  }

  update(batch: EvalBatchContext): void {
    const t = this.#record.table;
    const m = memberOf(batch, this.member.member);
    t.set(this.cleanColumn, batch.row, memberCleanCorrect(batch, m));
    t.set(this.routeColumn, batch.row, memberCleanRoutes(batch, m));
    for (const a of this.#attacks) t.set(this.routeUnder(a), batch.row, routesAt(m, batch.adversarial(a.source)));
  }

  result(): RouteResult {
    const r = this.#record;
    const t = r.table;
    const n = t.rows;
    const bins = (col: readonly number[]): number[] => {
      const out = new Array<number>(this.member.numExperts).fill(0);
      for (const e of col) out[e] = (out[e] as number) + 1;
      return out;
    };
    const clean = t.column(this.routeColumn);
    const cleanScore = score(t.countAll([this.cleanColumn]), n, r.header.confidence);
    return {
      cleanAccuracy: cleanScore.accuracy,
      clean: cleanScore,
      usage: { counts: bins(clean) },
      underAttack: this.#attacks.map((a) => {
        const routes = t.column(this.routeUnder(a));
        let flips = 0;
        for (let i = 0; i < n; i++) if (routes[i] !== clean[i]) flips++;
        return { spec: a.spec, counts: bins(routes), routeFlipRate: flips / n };
      }),
    };
  }
}
