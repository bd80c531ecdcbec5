// The image gallery: clean and adversarial images from an `rmoe attack` file
// (src/eval/adversarial-examples.ts), with the label, both predictions and the routed expert.
// The attack file holds images, labels and predictions but no routes, so the routes come
// from tensors `route_clean` / `route_adv` when a file has them, else from the checkpoint
// named in its metadata: the MoE's router is run on x and x_adv (cheap: one router forward).
// A checkpoint that is gone or has changed since the attack (its predictions on x differ from
// the file's) gives no routes and a note saying why, never wrong ones.
import { existsSync } from "node:fs";
import { CIFAR10_CLASSES } from "../data/cifar10.js";
import { loadCheckpoint } from "../io/checkpoint.js";
import { loadSafetensors } from "../io/safetensors.js";
import { DualModel } from "../models/dual.js";
import { MoE } from "../models/moe.js";
import { noGrad } from "../tensor/autograd.js";
import { dispose, scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { ReportInputError } from "./json-reader.js";
import { chwToBytes, encodePng, pngDataUri } from "./png-encode.js";

/** The top-1 expert of one MoE ('model', or a dual model's 'standard' / 'robust' member). */
export interface RouteOf {
  member: string;
  expert: number;
}

export interface GalleryItem {
  /** Position in the attack file. */
  index: number;
  label: number;
  predClean: number;
  predAdv: number;
  /** Top-1 expert per MoE at x and at x_adv; null when unknown (see GalleryInput.routeNote). */
  routeClean: RouteOf[] | null;
  routeAdv: RouteOf[] | null;
  /** max |x_adv - x| over the image. */
  linf: number;
  /** PNG data URIs: the clean image, the adversarial one, and the perturbation (mid-grey = 0). */
  clean: string;
  adv: string;
  perturbation: string;
}

export interface GalleryInput {
  file: string;
  label: string;
  attack: string;
  attackName: string | null;
  eps: number | null;
  epsText: string | null;
  norm: string | null;
  /** Samples in the file (the gallery shows the first `items.length`). */
  n: number;
  cleanAccuracy: number | null;
  robustAccuracy: number | null;
  checkpoint: string | null;
  dataset: string | null;
  split: string | null;
  seed: string | null;
  alpha: number | null;
  /** Class names, index = label; null: the labels are shown as numbers. */
  classes: string[] | null;
  /** Where the routes came from; null with routeNote saying why there are none. */
  routes: "file" | "checkpoint" | null;
  routeNote: string | null;
  /** What the perturbation images are scaled to: 'eps' (L-inf: white = +eps) or 'max' (per image). */
  perturbationScale: "eps" | "max";
  items: GalleryItem[];
}

export const ADVERSARIAL_KEY = "robust-moe.adversarial";
const REQUIRED = ["x_adv", "x", "y", "pred_clean", "pred_adv"] as const;

function num(meta: Record<string, string>, key: string): number | null {
  const v = meta[key];
  if (v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** Top-1 routes of every MoE of the model at x: [member, [N] experts]. */
function routesOf(model: MoE | DualModel, x: Tensor): { member: string; experts: number[] }[] {
  const moes: [string, MoE][] =
    model instanceof MoE
      ? [["model", model]]
      : (
          [
            ["standard", model.standard],
            ["robust", model.robust],
          ] as [string, unknown][]
        ).filter((e): e is [string, MoE] => e[1] instanceof MoE);
  return moes.map(([member, moe]) => ({
    member,
    experts: noGrad(() => scope(() => moe.gates(x).indices.select(1, 0).toFlatArray())),
  }));
}

interface Routes {
  clean: { member: string; experts: number[] }[] | null;
  adv: { member: string; experts: number[] }[] | null;
  source: "file" | "checkpoint" | null;
  note: string | null;
}

function routesFromFile(tensors: Map<string, Tensor>, n: number, file: string): Routes | null {
  const rc = tensors.get("route_clean");
  const ra = tensors.get("route_adv");
  if (rc === undefined || ra === undefined) return null;
  // [N] for a MoE, [N, M] for M MoE members (a dual model: standard, robust).
  const read = (t: Tensor, name: string): { member: string; experts: number[] }[] => {
    if (t.shape[0] !== n || t.shape.length > 2)
      throw new ReportInputError(file, name, `must have shape [${n}] or [${n}, M], got [${t.shape}]`);
    if (t.shape.length === 1) return [{ member: "model", experts: t.toFlatArray() }];
    const m = t.shape[1] as number;
    const flat = t.toFlatArray();
    const names = m === 2 ? ["standard", "robust"] : Array.from({ length: m }, (_, i) => `member ${i}`);
    return names.map((member, j) => ({ member, experts: Array.from({ length: n }, (_, i) => flat[i * m + j] as number) }));
  };
  return { clean: read(rc, "route_clean"), adv: read(ra, "route_adv"), source: "file", note: null };
}

function routesFromCheckpoint(
  checkpoint: string | null,
  alpha: number | null,
  x: Tensor,
  xAdv: Tensor,
  predClean: readonly number[],
): Routes {
  const none = (note: string): Routes => ({ clean: null, adv: null, source: null, note });
  if (checkpoint === null) return none("the attack file names no checkpoint, so the routed experts are unknown");
  if (!existsSync(checkpoint))
    return none(`the checkpoint ${checkpoint} is not on this machine, so the routed experts are unknown`);
  let loaded: ReturnType<typeof loadCheckpoint>;
  try {
    loaded = loadCheckpoint(checkpoint);
  } catch (e) {
    return none(`the checkpoint could not be loaded (${(e as Error).message}), so the routed experts are unknown`);
  }
  const model = loaded.model;
  try {
    if (
      !(model instanceof MoE) &&
      !(model instanceof DualModel && (model.standard instanceof MoE || model.robust instanceof MoE))
    )
      return none(`the model (${model.constructor.name}) has no router`);
    model.eval();
    if (model instanceof DualModel && alpha !== null) model.alpha = alpha;
    // The file's predictions are the attacked model's: if this checkpoint disagrees, it is not
    // that model any more (retrained since), and its routes would describe another model.
    const pred = noGrad(() => scope(() => model.forward(x).argmax(1).toFlatArray()));
    const differ = pred.filter((p, i) => p !== predClean[i]).length;
    if (differ > 0)
      return none(
        `the checkpoint ${checkpoint} predicts ${differ} of ${pred.length} clean images differently from the attack file: it has changed since the attack, so its routes are not shown`,
      );
    return { clean: routesOf(model, x), adv: routesOf(model, xAdv), source: "checkpoint", note: null };
  } finally {
    model.dispose();
  }
}

/**
 * Reads an `rmoe attack` file and renders the first `limit` samples. `classesFor` gives class
 * names for a dataset other than CIFAR-10 (from the eval reports), or null.
 */
export function readGallery(
  file: string,
  label: string,
  limit: number,
  classesFor: (dataset: string | null) => string[] | null,
): GalleryInput {
  if (!existsSync(file)) throw new ReportInputError(file, "", "no such file");
  let contents: ReturnType<typeof loadSafetensors>;
  try {
    contents = loadSafetensors(file);
  } catch (e) {
    throw new ReportInputError(file, "", `is not a safetensors file of adversarial examples (${(e as Error).message})`);
  }
  const { tensors, metadata } = contents;
  try {
    if (metadata[ADVERSARIAL_KEY] !== "1")
      throw new ReportInputError(file, ADVERSARIAL_KEY, "is missing from the metadata: not a file written by rmoe attack");
    for (const name of REQUIRED)
      if (!tensors.has(name)) throw new ReportInputError(file, name, "is missing (rmoe attack writes it)");
    const x = tensors.get("x") as Tensor;
    const xAdv = tensors.get("x_adv") as Tensor;
    if (x.shape.length !== 4 || (x.shape[1] !== 1 && x.shape[1] !== 3))
      throw new ReportInputError(file, "x", `must have shape [N, 1 or 3, H, W], got [${x.shape}]`);
    if (xAdv.shape.join() !== x.shape.join())
      throw new ReportInputError(file, "x_adv", `must have the shape of x [${x.shape}], got [${xAdv.shape}]`);
    const [n, c, h, w] = x.shape as [number, 1 | 3, number, number];
    const vec = (name: string): number[] => {
      const t = tensors.get(name) as Tensor;
      if (t.shape.length !== 1 || t.shape[0] !== n)
        throw new ReportInputError(file, name, `must have shape [${n}], got [${t.shape}]`);
      return t.toFlatArray();
    };
    const y = vec("y");
    const predClean = vec("pred_clean");
    const predAdv = vec("pred_adv");
    const k = Math.min(limit, n);
    const alpha = num(metadata, "alpha");
    const checkpoint = metadata.checkpoint ?? null;
    const [xs, advs] = scope((): [Tensor, Tensor] => [
      x.narrow(0, 0, k).float().contiguous(),
      xAdv.narrow(0, 0, k).float().contiguous(),
    ]);
    try {
      const routes = routesFromFile(tensors, n, file) ?? routesFromCheckpoint(checkpoint, alpha, xs, advs, predClean.slice(0, k));
      const cleanValues = xs.toFlatArray();
      const advValues = advs.toFlatArray();
      const eps = num(metadata, "eps");
      const norm = metadata.norm ?? null;
      const scaleToEps = norm === "linf" && eps !== null && eps > 0;
      const size = c * h * w;
      const items: GalleryItem[] = [];
      for (let i = 0; i < k; i++) {
        const off = i * size;
        let linf = 0;
        for (let j = 0; j < size; j++)
          linf = Math.max(linf, Math.abs((advValues[off + j] as number) - (cleanValues[off + j] as number)));
        // Mid-grey is no change; white and black are +-eps (L-inf) or the image's largest change.
        const scale = scaleToEps ? (eps as number) : linf > 0 ? linf : 1;
        const delta = new Float64Array(size);
        for (let j = 0; j < size; j++)
          delta[j] = 0.5 + ((advValues[off + j] as number) - (cleanValues[off + j] as number)) / (2 * scale);
        const route = (r: { member: string; experts: number[] }[] | null): RouteOf[] | null =>
          r === null ? null : r.map((m) => ({ member: m.member, expert: m.experts[i] as number }));
        items.push({
          index: i,
          label: y[i] as number,
          predClean: predClean[i] as number,
          predAdv: predAdv[i] as number,
          routeClean: route(routes.clean),
          routeAdv: route(routes.adv),
          linf,
          clean: pngDataUri(encodePng(w, h, c, chwToBytes(cleanValues, off, c, h, w))),
          adv: pngDataUri(encodePng(w, h, c, chwToBytes(advValues, off, c, h, w))),
          perturbation: pngDataUri(encodePng(w, h, c, chwToBytes(delta, 0, c, h, w))),
        });
      }
      const dataset = metadata.dataset ?? null;
      return {
        file,
        label,
        attack: metadata.attack ?? "?",
        attackName: metadata.attack_name ?? null,
        eps,
        epsText: metadata.eps_text ?? null,
        norm,
        n,
        cleanAccuracy: num(metadata, "clean_accuracy"),
        robustAccuracy: num(metadata, "robust_accuracy"),
        checkpoint,
        dataset,
        split: metadata.split ?? null,
        seed: metadata.seed ?? null,
        alpha,
        classes: dataset === "cifar10" ? [...CIFAR10_CLASSES] : classesFor(dataset),
        routes: routes.source,
        routeNote: routes.note,
        perturbationScale: scaleToEps ? "eps" : "max",
        items,
      };
    } finally {
      dispose([xs, advs]);
    }
  } finally {
    dispose([...tensors.values()]);
  }
}
