// Minimal typed option parsing: --name value and --flag, with errors naming the option.

export interface OptionSpec {
  type: "int" | "float" | "string" | "flag";
  default?: number | string | boolean;
  min?: number;
}

export type ParsedOptions = Record<string, number | string | boolean | undefined>;

export function parseOptions(argv: readonly string[], spec: Record<string, OptionSpec>, command: string): ParsedOptions {
  const out: ParsedOptions = {};
  for (const [k, s] of Object.entries(spec)) out[k] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith("--")) throw new Error(`${command}: unexpected argument '${arg}'`);
    const name = arg.slice(2);
    const s = spec[name];
    if (s === undefined)
      throw new Error(
        `${command}: unknown option '${arg}' (known: ${Object.keys(spec)
          .map((k) => `--${k}`)
          .join(", ")})`,
      );
    if (s.type === "flag") {
      out[name] = true;
      continue;
    }
    const raw = argv[++i];
    if (raw === undefined) throw new Error(`${command}: option '${arg}' needs a value`);
    if (s.type === "string") {
      out[name] = raw;
      continue;
    }
    const v = Number(raw);
    if (!Number.isFinite(v) || (s.type === "int" && !Number.isInteger(v))) {
      throw new Error(`${command}: option '${arg}' must be ${s.type === "int" ? "an integer" : "a number"}, got '${raw}'`);
    }
    if (s.min !== undefined && v < s.min) throw new Error(`${command}: option '${arg}' must be at least ${s.min}, got ${v}`);
    out[name] = v;
  }
  return out;
}
