// The metric objects of an evaluation, built from its header alone, and the report they
// add up to. Running an evaluation updates them batch by batch; a record read back from a
// flags file, or merged from shards, gets the same objects without the means to run
// (definitions null), and the same result() calls give the same report. A new metric is a
// new file under metrics/ plus a line here and a field in report.ts.
import type { MaskingCheckOptions } from "../attacks/masking-checks.js";
import type { BatchCertifier } from "../certify/batch-certifier.js";
import { wholeModelSource } from "./adversarial-source.js";
import { parseAttackSpec } from "./attack-spec.js";
import type { Metric } from "./metric.js";
import { CertifiedAccuracy } from "./metrics/certified.js";
import { CleanAccuracy } from "./metrics/clean-accuracy.js";
import { DualMembers } from "./metrics/dual-members.js";
import { EpsCurves } from "./metrics/eps-curves.js";
import { MaskingChecks } from "./metrics/masking.js";
import { groupResult, MoEAttackMetric, moeAttackSource } from "./metrics/moe-attack.js";
import { PerClass } from "./metrics/per-class.js";
import { RobustAccuracy } from "./metrics/robust-accuracy.js";
import { RouteCounts } from "./metrics/routes.js";
import { WorstCase } from "./metrics/worst-case.js";
import { ZeroGradients } from "./metrics/zero-gradients.js";
import type { MoEAttackDefinition } from "./moe-attacks.js";
import type { EvalRecord, MemberHeader, MoEAttackGroup } from "./record.js";
import { REPORT_SCHEMA, REPORT_VERSION, type RobustnessReport } from "./report.js";

/** What running needs beyond the header: the MoE attack definitions by id and the masking-check options. */
export interface RunMeans {
  definitions: ReadonlyMap<string, MoEAttackDefinition>;
  masking: MaskingCheckOptions | null;
  /** The certificate's runner (--certify), owned by the caller; null without one. */
  certifier: BatchCertifier | null;
}

export interface MemberMetrics {
  header: MemberHeader;
  routes: RouteCounts;
  attacks: MoEAttackMetric[];
}

export interface EvalMetrics {
  clean: CleanAccuracy;
  /** Per listed attack, its RA at each radius (ascending). */
  curves: RobustAccuracy[][];
  /** Per listed attack, its RA at the headline radius (header.eps). */
  headline: RobustAccuracy[];
  worst: WorstCase;
  perClass: PerClass;
  epsCurves: EpsCurves;
  members: MemberMetrics[];
  zeroGradients: ZeroGradients;
  masking: MaskingChecks;
  certified: CertifiedAccuracy | null;
  /** What each member of a dual model contributes; null for any other model. */
  dual: DualMembers | null;
  /** The metrics that measure batches, in the order they run on each batch. */
  measured: Metric<unknown>[];
}

/** Attacks whose objective is (targeted) DLR rather than CE. */
const DLR_ATTACKS = new Set(["apgd-dlr", "apgd-t", "aa"]);

export function buildMetrics(record: EvalRecord, means: RunMeans | null): EvalMetrics {
  const h = record.header;
  const headlineEps = h.eps;
  const settings = { restarts: h.settings.restarts, apgdSteps: h.settings.apgdSteps, queries: h.settings.queries };
  const clean = new CleanAccuracy(record);
  const curves = h.attacks.map((name) => {
    const spec = parseAttackSpec(name);
    return h.curveEps.map(
      (eps) =>
        new RobustAccuracy(
          record,
          spec.name,
          eps,
          means === null ? null : wholeModelSource(spec, eps, h.norm, settings, h.curveEps.length > 1),
        ),
    );
  });
  const at = h.curveEps.indexOf(headlineEps);
  const headline = curves.map((c) => c[at] as RobustAccuracy);
  const members = h.members.map((m): MemberMetrics => {
    const attacks = m.attacks.map((a) => {
      const definition = means?.definitions.get(a.id);
      if (means !== null && definition === undefined) throw new Error(`evaluation: no MoE attack definition '${a.id}'`);
      const source =
        definition === undefined
          ? null
          : moeAttackSource(definition, m.member, {
              eps: headlineEps,
              norm: h.norm,
              steps: h.settings.moeSteps,
              restarts: h.settings.restarts,
            });
      return new MoEAttackMetric(record, m.member, a, source);
    });
    return { header: m, routes: new RouteCounts(record, m, headline), attacks };
  });
  // Adaptive attacks on the evaluated MoE itself attack the evaluated model: its worst case includes them.
  const adaptive = members
    .filter((m) => m.header.member === "model")
    .flatMap((m) => m.attacks.filter((a) => a.group === "model"));
  const worst = new WorstCase(
    record,
    [...h.attacks, ...adaptive.map((a) => a.key)],
    [...headline.map((a) => a.column), ...adaptive.map((a) => a.column("robust"))],
  );
  const zeroGradients = new ZeroGradients(
    record,
    { ce: h.attacks.length > 0, dlr: h.attacks.some((a) => DLR_ATTACKS.has(a)) },
    members.flatMap((m) => m.attacks),
  );
  const masking = new MaskingChecks(record, means?.masking ?? null);
  const certify = h.certify ?? null;
  const certified = certify === null ? null : new CertifiedAccuracy(record, certify, means?.certifier ?? null, curves.flat());
  const dual = h.model.kind === "dual" ? new DualMembers(record, headline) : null;
  return {
    clean,
    curves,
    headline,
    worst,
    perClass: new PerClass(record, worst),
    epsCurves: new EpsCurves(record, curves),
    members,
    zeroGradients,
    masking,
    certified,
    dual,
    measured: [
      clean,
      masking,
      ...curves.flat(),
      ...(dual === null ? [] : [dual]),
      ...members.map((m) => m.routes),
      ...members.flatMap((m) => m.attacks),
      zeroGradients,
      ...(certified === null ? [] : [certified]),
    ],
  };
}

function group(m: MemberMetrics, g: MoEAttackGroup, record: EvalRecord) {
  return groupResult(
    record,
    m.attacks.filter((a) => a.group === g),
  );
}

/** The report of a record: every number from the metrics' result(). */
export function reportOf(record: EvalRecord): RobustnessReport {
  if (record.table.rows === 0) throw new RangeError("evaluateRobustness: no samples to evaluate");
  const m = buildMetrics(record, null);
  const h = record.header;
  return {
    schema: REPORT_SCHEMA,
    version: REPORT_VERSION,
    source: { ...h.source },
    model: { ...h.model, members: h.model.members === null ? null : { ...h.model.members } },
    threatModel: { norm: h.norm, eps: h.eps },
    seed: h.seed,
    n: record.table.rows,
    shard: h.shard === null ? null : { ...h.shard, total: h.total },
    confidence: { level: h.confidence, method: "clopper-pearson" },
    classes: [...h.classes],
    clean: m.clean.result(),
    attacks: m.headline.map((a) => a.result()),
    worstCase: m.worst.result(),
    perClass: m.perClass.result(),
    curves: m.epsCurves.result(),
    moe: m.members.map((mm) => ({
      member: mm.header.member,
      attackedAlone: mm.header.attackedAlone,
      numExperts: mm.header.numExperts,
      gating: mm.header.gating,
      k: mm.header.k,
      routerObjective: mm.header.routerObjective,
      ...mm.routes.result(),
      expertAttack: group(mm, "expert", record),
      routerAttack: group(mm, "router", record),
      adaptiveAttack: group(mm, "model", record),
    })),
    zeroGradients: m.zeroGradients.result(),
    masking: m.masking.result(),
    certified: m.certified?.result() ?? null,
    dual: m.dual?.result() ?? null,
    seconds: record.elapsed,
  };
}
