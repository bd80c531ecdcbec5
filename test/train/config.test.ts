// Training configs: the shipped presets read, resolve and hold the values the spec documents;
// a bad preset file or command-line override fails with a ConfigError that names the file
// (or "command line"), the dotted key and what is allowed; fractions like "8/255" parse; the
// cross-field checks name the key that is wrong.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  DEFAULT_CONFIG,
  presetNames,
  presetPath,
  presetsDir,
  readConfigFile,
  resolveConfig,
  type TrainConfig,
} from "../../src/train/config.js";
import { METHOD_NAMES } from "../../src/train/methods/index.js";
import { ConfigError, type Json } from "../../src/train/schema.js";
import { repoRoot, sharedRoot } from "../helpers/paths.js";

const dir = mkdtempSync(join(tmpdir(), "rmoe-train-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

/** Writes a preset file (an object, or raw text) and returns its path. */
function presetFile(content: Json | string): string {
  const path = join(dir, `preset${counter++}.json`);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

/** Asserts fn throws a ConfigError whose message contains every needle (strings verbatim). */
function throwsConfig(fn: () => unknown, ...needles: (string | RegExp)[]): string {
  let error: unknown = null;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error === null ? "no error" : String(error)}`);
  for (const n of needles) {
    if (typeof n === "string") assert.ok(error.message.includes(n), `message ${JSON.stringify(error.message)} lacks ${n}`);
    else assert.match(error.message, n);
  }
  return error.message;
}

/** readConfigFile + resolveConfig, as `rmoe train --preset FILE` does. */
function fromFile(path: string, overrides: [string, string][] = []): TrainConfig {
  return resolveConfig(readConfigFile(path), overrides, path);
}

const OPTIMIZER_KEYS = "name, lr, momentum, nesterov, weightDecay, betas";
const TOP_KEYS = Object.keys(DEFAULT_CONFIG).join(", ");

describe("presets", () => {
  it("ships the four documented presets, in presets/ at the repository root", () => {
    assert.equal(presetsDir(), join(repoRoot, "presets"));
    for (const name of ["ci-tiny", "cpu-cifar10", "paper-cifar10-resnet18", "paper-tinyimagenet-vit"])
      assert.ok(presetNames().includes(name), `preset ${name} missing (have: ${presetNames().join(", ")})`);
    assert.equal(presetPath("ci-tiny"), join(repoRoot, "presets", "ci-tiny.json"));
    throwsConfig(() => presetPath("no-such-preset"), "unknown preset 'no-such-preset'", "ci-tiny", "paper-cifar10-resnet18");
  });

  for (const name of presetNames()) {
    it(`${name} reads and resolves, with a description and only known values`, () => {
      const c = fromFile(presetPath(name));
      assert.ok(c.description.length > 20, `${name}: no description`);
      assert.ok(METHOD_NAMES.includes(c.method));
      assert.ok(c.model.k <= c.model.experts);
      // The JSON file itself holds no key the schema does not know (readConfigFile checked it),
      // and resolving is a pure function of the file: twice gives the same config.
      assert.deepEqual(fromFile(presetPath(name)), c);
    });
  }

  it("paper-cifar10-resnet18 has the values of METHOD.md section 7", () => {
    const c = fromFile(presetPath("paper-cifar10-resnet18"));
    assert.equal(c.method, "rt-er");
    assert.equal(c.data.dataset, "cifar10");
    assert.equal(c.data.trainSize, 0, "the whole training split (less validation)");
    assert.deepEqual(c.data.augment, { flip: true, translate: 2, cutout: 8 });
    assert.equal(c.data.resize, 0);
    assert.equal(c.model.experts, 4);
    assert.equal(c.model.expert, "resnet18");
    assert.equal(c.model.width, 64, "standard ResNet18 width");
    assert.equal(c.model.k, 1);
    assert.equal(c.model.gating, "topk");
    assert.equal(c.model.pretrained, null);
    assert.equal(c.epochs, 130);
    assert.equal(c.batchSize, 512);
    assert.equal(c.optimizer.name, "adam");
    assert.equal(c.optimizer.lr, 1e-4);
    assert.deepEqual(c.optimizer.betas, [0.9, 0.999]);
    assert.equal(c.schedule.name, "cyclic");
    assert.equal(c.schedule.cycleLow, 5e-5);
    assert.equal(c.schedule.halfCycle, 500);
    assert.equal(c.attack.eps, 8 / 255);
    assert.equal(c.attack.stepSize, 2 / 255);
    assert.equal(c.attack.steps, 10);
    assert.equal(c.attack.randomStart, true);
    assert.equal(c.validation.eps, 8 / 255);
    assert.equal(c.validation.stepSize, 2 / 255);
  });

  it("paper-tinyimagenet-vit has the values of METHOD.md section 7", () => {
    const c = fromFile(presetPath("paper-tinyimagenet-vit"));
    assert.equal(c.data.dataset, "tinyimagenet");
    assert.equal(c.data.resize, 224);
    assert.equal(c.model.experts, 4);
    assert.equal(c.model.expert, "vit");
    assert.deepEqual(c.model.vit, { patchSize: 16, dim: 384, depth: 12, heads: 6, mlpRatio: 4 }, "ViT-small/16");
    assert.equal(c.model.k, 1);
    assert.equal(c.epochs, 10);
    assert.equal(c.optimizer.name, "adam");
    assert.equal(c.optimizer.lr, 1e-4);
    assert.equal(c.attack.eps, 2 / 255);
    assert.equal(c.attack.stepSize, 0.5 / 255);
    assert.equal(c.validation.eps, 2 / 255, "validate at the training radius");
  });

  it("ci-tiny and cpu-cifar10 are the small CPU configs their descriptions promise", () => {
    const tiny = fromFile(presetPath("ci-tiny"));
    assert.deepEqual(
      [tiny.model.experts, tiny.model.width, tiny.data.trainSize, tiny.threads, tiny.data.workers],
      [2, 2, 512, 2, 0],
    );
    const cpu = fromFile(presetPath("cpu-cifar10"));
    assert.deepEqual(
      [cpu.model.experts, cpu.model.width, cpu.model.k, cpu.data.trainSize, cpu.threads, cpu.epochs],
      [4, 8, 1, 5000, 2, 6],
    );
    assert.deepEqual([cpu.attack.eps, cpu.attack.stepSize, cpu.attack.steps], [8 / 255, 2 / 255, 3]);
  });

  const methodMd = join(sharedRoot, "spec", "METHOD.md");
  it("the numbers above are the ones METHOD.md section 7 states", {
    skip: existsSync(methodMd) ? false : `${methodMd} is not beside this checkout`,
  }, () => {
    const text = readFileSync(methodMd, "utf8");
    const start = text.indexOf("## 7.");
    assert.ok(start >= 0, "METHOD.md has no section 7");
    const end = text.indexOf("\n## ", start + 1);
    const s7 = text.slice(start, end < 0 ? undefined : end).replace(/\s+/g, " ");
    for (const phrase of [
      "4 x ResNet18 experts, top-1",
      "Adam lr 1e-4",
      "(5e-5..1e-4, half cycle 500 iterations)",
      "batch 512, 130 epochs",
      "random translate (pad 2), cutout 8 px",
      "PGD-10 train",
      "eps 8/255, step 2/255",
      "4 x ViT-small/16 experts",
      "for 10 epochs",
      "resized to 224",
      "eps 2/255",
    ])
      assert.ok(s7.includes(phrase), `METHOD.md section 7 no longer says '${phrase}': update the presets and this test`);
  });
});

describe("preset files: errors name the file, the key and what is allowed", () => {
  it("unknown keys, top-level and nested", () => {
    const top = presetFile({ epoch: 3 });
    throwsConfig(() => readConfigFile(top), `${top}: unknown key 'epoch'`, `(allowed: ${TOP_KEYS})`);
    const nested = presetFile({ optimizer: { name: "sgd", learningRate: 0.1 } });
    throwsConfig(() => readConfigFile(nested), `${nested}: unknown key 'optimizer.learningRate'`, `(allowed: ${OPTIMIZER_KEYS})`);
    const deep = presetFile({ data: { augment: { flip: true, mixup: 1 } } });
    throwsConfig(() => readConfigFile(deep), `${deep}: unknown key 'data.augment.mixup'`, "(allowed: flip, translate, cutout)");
  });

  it("bad values", () => {
    const cases: [Json, string, string][] = [
      [{ optimizer: { lr: "fast" } }, "optimizer.lr", 'must be a number >= 0 (or a fraction like "8/255"), got "fast"'],
      [{ optimizer: { lr: -0.1 } }, "optimizer.lr", "must be a number >= 0"],
      [{ model: { gating: "soft" } }, "model.gating", 'must be one of "topk", "dense", "hard", got "soft"'],
      [{ epochs: 0 }, "epochs", "must be an integer >= 1, got 0"],
      [{ epochs: 2.5 }, "epochs", "must be an integer >= 1, got 2.5"],
      [{ epochs: "10" }, "epochs", 'must be an integer >= 1, got "10"'],
      [{ attack: { eps: "8/0" } }, "attack.eps", 'must be a number >= 0 (or a fraction like "8/255"), got "8/0"'],
      [{ attack: { eps: "-8/255" } }, "attack.eps", "must be a number >= 0"],
      [{ attack: { eps: "8/255/2" } }, "attack.eps", 'must be a number >= 0 (or a fraction like "8/255"), got "8/255/2"'],
      [{ data: { augment: { flip: "yes" } } }, "data.augment.flip", 'must be true or false, got "yes"'],
      [{ optimizer: { betas: [0.9, "x"] } }, "optimizer.betas", "must be a list of numbers >= 0"],
      [{ optimizer: { momentum: 1.5 } }, "optimizer.momentum", "must be a number >= 0 and <= 1, got 1.5"],
      [{ method: "sgd-at" }, "method", `must be one of ${METHOD_NAMES.map((m) => `"${m}"`).join(", ")}`],
      [{ model: { pretrained: 3 } }, "model.pretrained", "must be a string or null, got 3"],
      [{ model: [] }, "model", "must be an object with keys experts, expert, width"],
      [{ data: { valSize: 0 } }, "data.valSize", "must be an integer >= 1"],
    ];
    for (const [content, key, allowed] of cases) {
      const path = presetFile(content);
      throwsConfig(() => readConfigFile(path), `${path}: '${key}' ${allowed}`);
    }
  });

  it("a file that cannot be read or is not JSON", () => {
    const missing = join(dir, "missing.json");
    throwsConfig(() => readConfigFile(missing), `${missing}: cannot read`);
    const broken = presetFile('{ "epochs": 3, }');
    throwsConfig(() => readConfigFile(broken), `${broken}: not valid JSON`);
    const list = presetFile("[1, 2]");
    throwsConfig(() => readConfigFile(list), `${list}: '' must be an object with keys description, method`);
  });

  it('fractions like "8/255" parse to the number; JSON numbers stay as they are', () => {
    const path = presetFile({
      attack: { eps: "8/255", stepSize: " 2 / 255 " },
      validation: { eps: "4/255", stepSize: "0.5/255" },
      optimizer: { lr: "1/10" },
      schedule: { name: "cyclic", cycleLow: 0.05 },
    });
    const c = fromFile(path);
    assert.equal(c.attack.eps, 8 / 255);
    assert.equal(c.attack.stepSize, 2 / 255);
    assert.equal(c.validation.eps, 4 / 255);
    assert.equal(c.validation.stepSize, 0.5 / 255);
    assert.equal(c.optimizer.lr, 0.1);
    assert.equal(c.schedule.cycleLow, 0.05);
    // Fractions are for the fields that say so: an integer field does not take one.
    const steps = presetFile({ attack: { steps: "10/1" } });
    throwsConfig(() => readConfigFile(steps), `${steps}: 'attack.steps' must be an integer >= 0, got "10/1"`);
  });

  it("cross-field checks on a file name the file and the key", () => {
    const k = presetFile({ model: { experts: 2, k: 3 } });
    throwsConfig(() => fromFile(k), `${k}: 'model.k' (3) cannot exceed model.experts (2)`);
    const cyc = presetFile({ optimizer: { lr: 0.01 }, schedule: { name: "cyclic", cycleLow: 0.1 } });
    throwsConfig(() => fromFile(cyc), `${cyc}: 'schedule.cycleLow' (0.1) must not exceed optimizer.lr (0.01)`);
  });
});

describe("command-line overrides", () => {
  const tiny = () => readConfigFile(presetPath("ci-tiny"));
  const src = () => presetPath("ci-tiny");

  it("override the preset, keep the rest of it, and are parsed to the field's type", () => {
    const base = resolveConfig(tiny(), [], src());
    const c = resolveConfig(
      tiny(),
      [
        ["optimizer.lr", "0.01"],
        ["epochs", "3"],
        ["data.augment.cutout", "4"],
        ["optimizer.betas", "0.8,0.99"],
        ["optimizer.nesterov", "true"],
        ["model.gating", "dense"],
        ["attack.eps", "4/255"],
        ["schedule.milestones", "2,3"],
        ["model.pretrained", "null"],
        ["description", "a test"],
      ],
      src(),
    );
    assert.equal(c.optimizer.lr, 0.01);
    assert.equal(c.epochs, 3);
    assert.equal(c.data.augment.cutout, 4);
    assert.deepEqual(c.optimizer.betas, [0.8, 0.99]);
    assert.equal(c.optimizer.nesterov, true);
    assert.equal(c.model.gating, "dense");
    assert.equal(c.attack.eps, 4 / 255);
    assert.deepEqual(c.schedule.milestones, [2, 3]);
    assert.equal(c.model.pretrained, null);
    assert.equal(c.description, "a test");
    // The rest of the preset (and of its groups) is untouched.
    assert.equal(c.optimizer.name, base.optimizer.name);
    assert.equal(c.optimizer.momentum, base.optimizer.momentum);
    assert.equal(c.data.augment.flip, base.data.augment.flip);
    assert.equal(c.data.augment.translate, base.data.augment.translate);
    assert.equal(c.attack.stepSize, base.attack.stepSize);
    assert.equal(c.model.width, 2);
    // The later of two overrides of a key wins; the preset object itself is not changed.
    const preset = tiny();
    const snapshot = JSON.stringify(preset);
    const twice = resolveConfig(
      preset,
      [
        ["epochs", "3"],
        ["epochs", "5"],
      ],
      src(),
    );
    assert.equal(twice.epochs, 5);
    assert.equal(JSON.stringify(preset), snapshot);
    assert.equal(DEFAULT_CONFIG.epochs, 10);
    assert.equal(DEFAULT_CONFIG.optimizer.lr, 0.1);
  });

  it("without a preset they override the defaults; the defaults alone are a valid config", () => {
    assert.deepEqual(resolveConfig(null, []), DEFAULT_CONFIG);
    const c = resolveConfig(null, [["batchSize", "64"]]);
    assert.equal(c.batchSize, 64);
    assert.equal(c.epochs, DEFAULT_CONFIG.epochs);
  });

  it("are type-checked like a file, naming the command line and the key", () => {
    const cases: [string, string, string][] = [
      ["optimizer.lr", "fast", `command line: 'optimizer.lr' must be a number >= 0 (or a fraction like "8/255"), got "fast"`],
      ["model.gating", "soft", `command line: 'model.gating' must be one of "topk", "dense", "hard", got "soft"`],
      ["epochs", "0", "command line: 'epochs' must be an integer >= 1, got 0"],
      ["epochs", "1.5", "command line: 'epochs' must be an integer >= 1, got 1.5"],
      ["epochs", "", `command line: 'epochs' must be an integer >= 1, got ""`],
      ["epochs", "ten", `command line: 'epochs' must be an integer >= 1, got "ten"`],
      ["attack.eps", "8/0", `command line: 'attack.eps' must be a number >= 0`],
      ["model.renormalize", "yes", `command line: 'model.renormalize' must be true or false, got "yes"`],
      ["optimizer.betas", "0.9,x", `command line: 'optimizer.betas' must be a list of numbers >= 0, got "0.9,x"`],
    ];
    for (const [key, raw, message] of cases) throwsConfig(() => resolveConfig(tiny(), [[key, raw]], src()), message);
  });

  it("take the numbers people write: fractions and decimals", () => {
    const c = resolveConfig(
      tiny(),
      [
        ["attack.eps", "8/255"],
        ["attack.stepSize", "2/255"],
        ["validation.eps", "0.5/255"],
        ["optimizer.weightDecay", "5e-4"],
      ],
      src(),
    );
    assert.equal(c.attack.eps, 8 / 255);
    assert.equal(c.attack.stepSize, 2 / 255);
    assert.equal(c.validation.eps, 0.5 / 255);
    assert.equal(c.optimizer.weightDecay, 5e-4);
  });

  it("take exponent notation in fraction fields too (--lr 1e-4)", () => {
    // The paper's rates are written 1e-4 and 5e-5 (METHOD.md section 7); a fraction field must
    // take them as well as a plain number field does.
    const paper = resolveConfig(
      tiny(),
      [
        ["optimizer.lr", "1e-4"],
        ["schedule.name", "cyclic"],
        ["schedule.cycleLow", "5e-5"],
      ],
      src(),
    );
    assert.equal(paper.optimizer.lr, 1e-4);
    assert.equal(paper.schedule.cycleLow, 5e-5);
  });

  it("unknown keys list the keys that exist; a group is not a value", () => {
    throwsConfig(
      () => resolveConfig(tiny(), [["optimizer.learningRate", "0.1"]], src()),
      `command line: unknown key 'optimizer.learningRate' ('optimizer' keys: ${OPTIMIZER_KEYS})`,
    );
    throwsConfig(
      () => resolveConfig(tiny(), [["lr", "0.1"]], src()),
      `command line: unknown key 'lr' (top-level keys: ${TOP_KEYS})`,
    );
    throwsConfig(
      () => resolveConfig(tiny(), [["optimizer", "adam"]], src()),
      `command line: 'optimizer' is a group of settings; set one of its keys (${OPTIMIZER_KEYS})`,
    );
    throwsConfig(() => resolveConfig(tiny(), [["data.augment", "none"]], src()), "'data.augment' is a group of settings", "flip");
    throwsConfig(() => resolveConfig(tiny(), [["epochs.max", "3"]], src()), "command line: 'epochs' has no key 'max'");
  });

  it("cross-field checks fail with the key named", () => {
    const cases: [[string, string][], string][] = [
      [[["model.k", "3"]], "'model.k' (3) cannot exceed model.experts (2)"],
      [[["model.experts", "1"]], "'model.experts' must be at least 2 for rt-er"],
      [
        [
          ["method", "jtdmoe"],
          ["model.experts", "1"],
        ],
        "'model.experts' must be at least 2 for jtdmoe",
      ],
      [
        [
          ["schedule.name", "cyclic"],
          ["optimizer.lr", "0.01"],
          ["schedule.cycleLow", "0.02"],
        ],
        "'schedule.cycleLow' (0.02) must not exceed optimizer.lr (0.01)",
      ],
      [[["optimizer.betas", "0.9"]], "'optimizer.betas' must be two numbers in [0, 1)"],
      [[["optimizer.betas", "0.9,1"]], "'optimizer.betas' must be two numbers in [0, 1)"],
      [[["attack.stepSize", "16/255"]], "'attack.stepSize' is larger than attack.eps"],
      [[["model.pretrained", "vit.safetensors"]], "'model.pretrained' is only for ViT experts"],
    ];
    for (const [overrides, message] of cases) throwsConfig(() => resolveConfig(tiny(), overrides, src()), message);
    // The same settings are fine where they are consistent.
    assert.equal(resolveConfig(tiny(), [["model.k", "2"]], src()).model.k, 2);
    assert.equal(
      resolveConfig(
        tiny(),
        [
          ["method", "standard"],
          ["model.experts", "1"],
        ],
        src(),
      ).model.experts,
      1,
    );
    const cyc = resolveConfig(
      tiny(),
      [
        ["schedule.name", "cyclic"],
        ["schedule.cycleLow", "0.01"],
      ],
      src(),
    );
    assert.deepEqual([cyc.schedule.cycleLow, cyc.optimizer.lr], [0.01, 0.05]);
    // A step larger than eps is allowed when no attack runs.
    assert.equal(
      resolveConfig(
        tiny(),
        [
          ["attack.stepSize", "16/255"],
          ["attack.steps", "0"],
        ],
        src(),
      ).attack.steps,
      0,
    );
  });
});
