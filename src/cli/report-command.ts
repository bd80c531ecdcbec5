// `rmoe report`: an HTML page (and report.json) from run directories, eval reports, a sweep,
// certificates and adversarial examples (docs/REPORT.md).
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { type LabelledPath, writeReport } from "../report/build.js";
import { runCommand, UsageError } from "./eval-command.js";

export const REPORT_SUMMARY = `report RUN_DIR... [--eval FILE.json...] [--sweep FILE] [--certify FILE]... [--adv FILE...] --out DIR
                                             an HTML report with plots (docs/REPORT.md)`;

export const REPORT_USAGE = `usage: rmoe report [LABEL=]RUN_DIR... [--eval [LABEL=]FILE.json...] [--sweep FILE.json]
                   [--certify FILE.json]... [--adv [LABEL=]FILE.safetensors...] --out DIR [options]

Writes DIR/index.html, one self-contained page (no network needed: the plots are inline
SVG), and DIR/report.json with every number the page shows. Sections appear for the inputs
given; the page says which are missing and why.

inputs:
  RUN_DIR              rmoe train run directories: training curves (config.json, metrics.jsonl)
  --eval FILE...       rmoe eval --json reports: SA/RA table, RA-E against RA-R, expert usage,
                       route flips
  --sweep FILE         an alpha sweep (rmoe sweep): the SA/RA trade-off
  --certify FILE       certified accuracy against eps (rmoe certify --out); repeatable: files
                       with the same method and norm share one plot
  --adv FILE...        rmoe attack --out files: a gallery of clean and adversarial images
  LABEL=PATH           names a run or file in legends (default: its file or directory name)

options:
  --out DIR            where to write index.html and report.json (required)
  --title TEXT         the page title (default "robust-moe report")
  --gallery N          images per attack file in the gallery (default 8)

--eval and --adv take every following argument up to the next option (shell globs work:
--eval evals/*.json); a directory among them is a run directory.

Exit codes: 0 written; 1 bad input (the message names the file and the field); 2 usage error.
`;

interface ReportArgs {
  runs: LabelledPath[];
  evals: LabelledPath[];
  adversarial: LabelledPath[];
  sweep: string | null;
  certify: string[];
  out: string | null;
  title: string | undefined;
  gallery: number | undefined;
}

/** 'name=path' names a file, unless the whole text is itself an existing path (a file with '=' in its name). */
function labelled(arg: string): LabelledPath {
  const m = /^([^=/\\]+)=(.+)$/.exec(arg);
  if (m === null || existsSync(arg)) return { path: arg };
  return { path: m[2] as string, label: m[1] as string };
}

function isDirectory(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

export function parseReportArgs(argv: readonly string[]): ReportArgs {
  const a: ReportArgs = {
    runs: [],
    evals: [],
    adversarial: [],
    sweep: null,
    certify: [],
    out: null,
    title: undefined,
    gallery: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith("--")) {
      a.runs.push(labelled(arg));
      continue;
    }
    const name = arg.slice(2);
    if (name === "eval" || name === "adv") {
      const list = name === "eval" ? a.evals : a.adversarial;
      const start = list.length;
      while (i + 1 < argv.length && !(argv[i + 1] as string).startsWith("--")) {
        const v = argv[i + 1] as string;
        // A run directory after the files ends the list: `--eval a.json runs/x` means what it says.
        if (isDirectory(labelled(v).path)) break;
        list.push(labelled(v));
        i++;
      }
      if (list.length === start) throw new UsageError(`rmoe report: --${name} needs at least one file`);
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new UsageError(`rmoe report: option '${arg}' needs a value`);
    switch (name) {
      case "sweep":
        if (a.sweep !== null) throw new UsageError("rmoe report: --sweep is given twice (one sweep file per report)");
        a.sweep = value;
        break;
      case "certify":
        a.certify.push(value);
        break;
      case "out":
        a.out = value;
        break;
      case "title":
        a.title = value;
        break;
      case "gallery": {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1)
          throw new UsageError(`rmoe report: --gallery must be a positive integer, got '${value}'`);
        a.gallery = n;
        break;
      }
      default:
        throw new UsageError(`rmoe report: unknown option '${arg}' (see rmoe report --help)`);
    }
  }
  return a;
}

/** `rmoe report ...`; returns the exit code (0 written, 1 bad input, 2 usage error). */
export async function reportCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(REPORT_USAGE);
    return 0;
  }
  return runCommand("rmoe report", REPORT_USAGE, async () => {
    const a = parseReportArgs(argv);
    if (a.out === null) throw new UsageError("rmoe report: --out DIR is required");
    if (a.runs.length + a.evals.length + a.adversarial.length === 0 && a.sweep === null && a.certify.length === 0)
      throw new UsageError("rmoe report: nothing to report: give run directories, --eval, --sweep, --certify or --adv files");
    const r = await writeReport(a.out, {
      runs: a.runs,
      evals: a.evals,
      adversarial: a.adversarial,
      sweep: a.sweep,
      certify: a.certify,
      command: ["rmoe", "report", ...argv],
      ...(a.title === undefined ? {} : { title: a.title }),
      ...(a.gallery === undefined ? {} : { galleryLimit: a.gallery }),
    });
    const shown = r.json.sections.length;
    const plots = (r.html.match(/<svg /g) ?? []).length;
    process.stdout.write(
      `rmoe report: ${shown} section${shown === 1 ? "" : "s"}, ${plots} plot${plots === 1 ? "" : "s"}, ${r.json.numbers.length} numbers\n` +
        `  page:    ${resolve(r.htmlPath)}\n` +
        `  numbers: ${resolve(r.jsonPath)}\n` +
        r.json.missing.map((m) => `  not shown: ${m.section}: ${m.reason}\n`).join(""),
    );
    return 0;
  });
}
