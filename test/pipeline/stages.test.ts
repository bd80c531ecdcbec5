// The pipeline runner's decisions: which stages are done, which run, and which are skipped
// because every stage that reads their output is done (results kept without their checkpoints).
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runStages, type Stage, stageStates } from "../../src/pipeline/stages.js";

const dir = mkdtempSync(join(tmpdir(), "rmoe-stages-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const stage = (output: string, inputs?: string[]): Stage => ({
  id: output,
  title: output,
  weight: 1,
  output,
  // `rmoe help` exits 0; its text lands in the output (stdoutTo), so a run leaves the file.
  args: () => ["help"],
  stdoutTo: output,
  ...(inputs === undefined ? {} : { inputs }),
});

// train A -> eval A; train B -> eval B and sweep(A, B); cert(B)
const plan = [
  stage("a.model"),
  stage("b.model"),
  stage("eval-a.json", ["a.model"]),
  stage("eval-b.json", ["b.model"]),
  stage("sweep.json", ["a.model", "b.model"]),
  stage("cert-b.json", ["b.model"]),
];
const states = (present: string[]) => stageStates(plan, (f) => present.includes(f));

describe("pipeline stages", () => {
  it("nothing there: everything runs", () => {
    assert.deepEqual(states([]), Array(6).fill("to-run"));
  });

  it("a model whose readers are all done is not needed; one with a pending reader runs", () => {
    assert.deepEqual(states(["eval-a.json", "sweep.json"]), ["not-needed", "to-run", "done", "to-run", "done", "to-run"]);
    assert.deepEqual(states(["eval-a.json", "eval-b.json", "sweep.json", "cert-b.json"]), [
      "not-needed",
      "not-needed",
      "done",
      "done",
      "done",
      "done",
    ]);
    // The sweep still needs A even though A's own evaluation is done.
    assert.deepEqual(states(["eval-a.json", "eval-b.json", "cert-b.json"])[0], "to-run");
  });

  it("a stage nobody reads runs whenever its output is missing; an existing output is done", () => {
    assert.deepEqual(
      stageStates([stage("x"), stage("y")], (f) => f === "y"),
      ["to-run", "done"],
    );
  });

  it("runStages skips the stages that are not needed and runs the others", async () => {
    const out = join(dir, "run");
    mkdirSync(out, { recursive: true });
    const f = (name: string) => join(out, name);
    const real = [
      stage(f("a.model")),
      stage(f("b.model")),
      stage(f("eval-a.json"), [f("a.model")]),
      stage(f("eval-b.json"), [f("b.model")]),
    ];
    writeFileSync(f("eval-a.json"), "kept\n");
    const lines: string[] = [];
    await runStages("test", real, (l) => lines.push(l));
    assert.equal(existsSync(f("a.model")), false, "A's training was skipped");
    assert.equal(existsSync(f("b.model")), true);
    assert.equal(existsSync(f("eval-b.json")), true);
    assert.equal(readFileSync(f("eval-a.json"), "utf8"), "kept\n");
    assert.match(lines[0] as string, /stage 1\/4: .*a\.model: skipped, every stage that reads its output is done/);
    assert.match(lines[2] as string, /stage 3\/4: .*eval-a\.json: done before, skipped/);
  });
});
