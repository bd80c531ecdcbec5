// The radius of a threat model as people write it: '8/255' (a fraction of the 8-bit pixel
// range, how L-inf radii are quoted) or a plain number ('0.5', how L2 radii are quoted).

export class EpsError extends Error {
  override name = "EpsError";
}

const NUMBER = /^[+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Parses '8/255', '0.031' or '0.5' into a finite radius >= 0; throws EpsError naming the text. */
export function parseEps(text: string): number {
  const t = text.trim();
  const parts = t.split("/").map((p) => p.trim());
  if (parts.length > 2 || parts.some((p) => !NUMBER.test(p))) {
    throw new EpsError(`eps must be a number or a fraction like 8/255, got '${text}'`);
  }
  const num = Number(parts[0]);
  const den = parts.length === 2 ? Number(parts[1]) : 1;
  if (den === 0) throw new EpsError(`eps '${text}' divides by zero`);
  const eps = num / den;
  if (!Number.isFinite(eps) || eps < 0) throw new EpsError(`eps must be a finite number >= 0, got '${text}'`);
  return eps;
}

/** '8/255' when eps is a whole number of 1/255 steps, else the number itself (e.g. '0.5'). */
export function formatEps(eps: number): string {
  const steps = eps * 255;
  const whole = Math.round(steps);
  if (whole > 0 && Math.abs(steps - whole) < 1e-9 && eps < 1) return `${whole}/255`;
  return String(eps);
}
