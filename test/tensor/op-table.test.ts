// Every op robust-moe calls must resolve in the installed LibTorch: a LibTorch upgrade
// that renames or drops an overload fails here, loudly, instead of deep inside training.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { engineInfo, memoryStats, OP_TABLE, type OpName, opSchema } from "../../src/tensor/index.js";
import { native } from "../../src/tensor/native.js";

const startTensors = memoryStats().liveTensors;

describe("op table", () => {
  const entries = Object.entries(OP_TABLE) as [OpName, string][];

  it("is not empty and names only aten ops, each once", () => {
    assert.ok(entries.length > 100, `only ${entries.length} entries`);
    for (const [name, full] of entries) {
      assert.match(full, /^aten::[a-z_0-9]+(\.[A-Za-z_0-9]+)?$/, `${name}: '${full}' is not an aten schema name`);
    }
    const seen = new Map<string, string>();
    for (const [name, full] of entries) {
      assert.equal(seen.get(full), undefined, `${name} and ${seen.get(full)} both map to ${full}`);
      seen.set(full, name);
    }
  });

  for (const [name, full] of entries) {
    it(`${name} -> ${full}`, () => {
      let schema: string;
      try {
        schema = opSchema(name);
      } catch (e) {
        assert.fail(`${full} does not resolve in LibTorch ${engineInfo().torchVersion}: ${(e as Error).message}`);
      }
      assert.ok(schema.startsWith(`${full}(`), `schema of ${name} is '${schema}', expected it to start with '${full}('`);
      assert.match(schema, /\) -> /, `schema of ${name} has no return type: '${schema}'`);
    });
  }

  it("in-place table entries write into their first argument", () => {
    for (const [name, full] of entries) {
      if (!name.endsWith("_")) continue;
      assert.match(opSchema(name), /^[^(]+\(Tensor\(a!\) self/, `${name} (${full}) is not an in-place op on self`);
    }
  });

  it("a name or overload LibTorch does not have fails loudly", () => {
    assert.throws(() => native.op("aten::no_such_op", ""), /LibTorch [\d.]+ has no operator aten::no_such_op/);
    assert.throws(() => native.op("aten::add", "NoSuchOverload"), /has no operator aten::add\.NoSuchOverload/);
  });

  it("created no tensors", () => {
    assert.equal(memoryStats().liveTensors, startTensors);
  });
});
