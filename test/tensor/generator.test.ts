// Generator objects against PyTorch: test/fixtures/generator-reference.json (written by
// gen_generator_reference.py with Debian's PyTorch 1.13, the LibTorch the addon links) holds
// the draws of torch.Generator().manual_seed(s) and the bytes of torch.Generator.get_state().
// The same seed must give bit-identical numbers, PyTorch's state bytes must load here and
// continue the same stream, and (live, through /usr/bin/python3 when it has torch) states
// written here must load in PyTorch. The rest checks the stream semantics on their own:
// independence of generators and of the global stream, snapshot/restore, and errors.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import {
  type DType,
  defaultGenerator,
  empty,
  Generator,
  getNumThreads,
  manualSeed,
  memoryStats,
  rand,
  randint,
  randLike,
  randn,
  randnLike,
  randperm,
  scope,
  setNumThreads,
  Tensor,
  tensor,
  zeros,
} from "../../src/tensor/index.js";
import { native, type TensorHandle } from "../../src/tensor/native.js";
import { fixturePath } from "../helpers/paths.js";

interface Encoded {
  dtype: "float32" | "float64" | "int64";
  shape: number[];
  data: number[];
}

interface Step {
  fn: string;
  args: unknown[];
  dtype?: DType;
}

interface Stream {
  initial_seed: string;
  state: string;
  draws: Encoded[];
}

interface Fixture {
  meta: { torch_version: string; state_bytes: number };
  sequence: Step[];
  seeds: (Stream & { seed: string })[];
  states: Record<string, Stream & { description: string }>;
}

const SCRIPT = fixturePath("gen_generator_reference.py");
const fixture = JSON.parse(readFileSync(fixturePath("generator-reference.json"), "utf8")) as Fixture;
const startLive = memoryStats().liveTensors;

// Several tests reseed or overwrite the global stream; leave it in a known state.
after(() => manualSeed(0));

function bytes(b64: string): Uint8Array {
  return new Uint8Array(Buffer.from(b64, "base64"));
}

function b64(state: Uint8Array): string {
  return Buffer.from(state).toString("base64");
}

// ---- drawing a fixture step ---------------------------------------------------------------

// Ops without a robust-moe wrapper go through the generic op call, as user code would.
function rawOp(name: string, overload: string, args: (Tensor | number | boolean)[], generator: Generator | undefined): Tensor {
  const { id } = native.op(name, overload);
  const lowered = args.map((a) => (a instanceof Tensor ? a.handle : a));
  const out = native.call(id, lowered, generator === undefined ? undefined : { generator: generator.handle });
  // In-place ops return nothing: the result is their first argument.
  if (out === undefined) return args[0] as Tensor;
  return Tensor.fromHandle(out as TensorHandle);
}

/** One step of the fixture's sequence, drawn from `generator` (or the global stream). */
function draw(step: Step, generator: Generator | undefined): Tensor {
  const a = step.args;
  const dtype = step.dtype ?? "float32";
  const shape = (i: number) => a[i] as number[];
  const num = (i: number) => a[i] as number;
  const o = generator === undefined ? { dtype } : { dtype, generator };
  switch (step.fn) {
    case "rand":
      return rand(shape(0), o);
    case "randn":
      return randn(shape(0), o);
    case "randint":
      return randint(num(0), num(1), shape(2), generator === undefined ? {} : { generator });
    case "randperm":
      return randperm(num(0), generator === undefined ? {} : { generator });
    case "randLike":
      return randLike(zeros(shape(0), { dtype }), generator === undefined ? {} : { generator });
    case "randnLike":
      return randnLike(zeros(shape(0), { dtype }), generator === undefined ? {} : { generator });
    case "uniform_":
      return empty(shape(2), { dtype }).uniform_(num(0), num(1), generator);
    case "normal_":
      return empty(shape(2), { dtype }).normal_(num(0), num(1), generator);
    case "bernoulli_":
      return rawOp("aten::bernoulli_", "float", [empty(shape(1), { dtype }), num(0)], generator);
    case "multinomial":
      return rawOp("aten::multinomial", "", [tensor(a[0] as number[]), num(1), a[2] as boolean], generator);
    case "random_":
      return rawOp("aten::random_", "from", [empty(shape(2), { dtype }), num(0), num(1)], generator);
    default:
      assert.fail(`unknown fixture step ${step.fn}`);
  }
}

function values(t: Tensor): number[] {
  return t.toFlatArray();
}

/** Draws the whole sequence; returns plain values so the tensors can be freed. */
function drawAll(steps: Step[], generator: Generator | undefined): number[][] {
  return scope(() => steps.map((s) => values(draw(s, generator))));
}

function assertDraws(actual: number[][], expected: Encoded[], steps: Step[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: number of draws`);
  for (const [i, e] of expected.entries()) {
    const step = steps[i] as Step;
    // Bit-identical: the same generator, algorithm and rounding as PyTorch.
    assert.deepEqual(actual[i], e.data, `${what}: draw ${i}, ${step.fn}(${JSON.stringify(step.args)}) ${step.dtype ?? ""}`);
  }
}

/** At one intra-op thread and at the machine's count: draws must not depend on it. */
function atThreadCounts(fn: (threads: number) => void): void {
  const saved = getNumThreads();
  try {
    for (const n of [...new Set([1, saved])]) {
      setNumThreads(n);
      fn(n);
    }
  } finally {
    setNumThreads(saved);
  }
}

function torchMissing(): string | false {
  const r = spawnSync("/usr/bin/python3", ["-c", "import torch"], { encoding: "utf8", timeout: 60_000 });
  if (r.error !== undefined) return `/usr/bin/python3 cannot run: ${r.error.message}`;
  if (r.status !== 0) return "Debian python3-torch is not installed (/usr/bin/python3 cannot import torch)";
  return false;
}

// ---- the tests ------------------------------------------------------------------------------

describe("Generator against PyTorch", () => {
  it("a fresh generator's state has PyTorch's size", () => {
    const g = new Generator();
    assert.equal(g.getState().length, fixture.meta.state_bytes);
    assert.equal(g.device, "cpu");
    g.dispose();
  });

  for (const s of fixture.seeds) {
    it(`seed ${s.seed}: the same state bytes and draws as torch.Generator().manual_seed(${s.seed})`, () => {
      atThreadCounts((threads) => {
        const g = new Generator({ seed: BigInt(s.seed) });
        assert.equal(g.initialSeed(), BigInt(s.initial_seed));
        assert.equal(b64(g.getState()), s.state, "state right after seeding");
        assertDraws(drawAll(fixture.sequence, g), s.draws, fixture.sequence, `seed ${s.seed} @${threads} threads`);
        // manualSeed restarts the stream, and a seed that fits in a JS number may be one.
        const seed = BigInt(s.seed) <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s.seed) : BigInt(s.seed);
        g.manualSeed(seed);
        assert.equal(b64(g.getState()), s.state, "state after manualSeed");
        assertDraws(drawAll(fixture.sequence, g), s.draws, fixture.sequence, `seed ${s.seed} reseeded`);
        g.dispose();
      });
    });
  }

  for (const [name, s] of Object.entries(fixture.states)) {
    it(`PyTorch state '${name}' loads and continues the same stream`, () => {
      const g = new Generator();
      g.setState(bytes(s.state));
      assert.equal(g.initialSeed(), BigInt(s.initial_seed));
      assert.equal(b64(g.getState()), s.state, "getState returns the bytes it was given");
      assertDraws(drawAll(fixture.sequence, g), s.draws, fixture.sequence, `${name} in a Generator`);
      g.dispose();
    });
  }

  it("torch.get_rng_state() after torch.manual_seed(123) restores the global stream", () => {
    const saved = defaultGenerator.getState();
    const s = fixture.states.default_after_manual_seed_123 as Stream;
    defaultGenerator.setState(bytes(s.state));
    assert.equal(defaultGenerator.initialSeed(), 123n);
    assertDraws(drawAll(fixture.sequence, undefined), s.draws, fixture.sequence, "global stream");
    // ... which is exactly what manualSeed(123) gives here.
    manualSeed(123);
    assert.equal(b64(defaultGenerator.getState()), s.state);
    defaultGenerator.setState(saved);
  });

  const skip = torchMissing();
  it("states written here load in PyTorch and continue the same stream", { skip }, () => {
    const g = new Generator({ seed: 77 });
    // Mid-stream, with a cached normal sample in the state (an odd number of small normals).
    scope(() => {
      rand([9], { generator: g });
      randn([3], { generator: g });
      randn([5], { generator: g, dtype: "float64" });
    });
    const state = g.getState();
    const ours = drawAll(fixture.sequence, g);
    const r = spawnSync("/usr/bin/python3", [SCRIPT, "--continue"], {
      input: JSON.stringify({ state: b64(state), sequence: fixture.sequence }),
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(r.status, 0, `python failed: ${r.stderr}`);
    const theirs = JSON.parse(r.stdout) as { draws: Encoded[]; state: string };
    assertDraws(ours, theirs.draws, fixture.sequence, "PyTorch continuing our state");
    assert.equal(theirs.state, b64(g.getState()), "the states after the same draws are the same bytes");
    g.dispose();
  });
});

describe("Generator streams", () => {
  const steps = fixture.sequence;

  it("two generators are independent streams", () => {
    const a = new Generator({ seed: 5 });
    const b = new Generator({ seed: 5 });
    const ref = new Generator({ seed: 5 });
    const first = scope(() => rand([8], { generator: ref }).toFlatArray());
    const second = scope(() => rand([8], { generator: ref }).toFlatArray());
    scope(() => {
      // Interleaved draws: each generator sees only its own.
      assert.deepEqual(rand([8], { generator: a }).toFlatArray(), first);
      assert.deepEqual(rand([8], { generator: b }).toFlatArray(), first);
      assert.deepEqual(rand([8], { generator: a }).toFlatArray(), second);
      assert.deepEqual(rand([8], { generator: b }).toFlatArray(), second);
      const c = new Generator({ seed: 6 });
      assert.notDeepEqual(rand([8], { generator: c }).toFlatArray(), first);
      c.dispose();
    });
    for (const g of [a, b, ref]) g.dispose();
  });

  it("drawing from a Generator does not advance the global stream", () => {
    manualSeed(11);
    const expected = drawAll(steps, undefined);
    manualSeed(11);
    const before = defaultGenerator.getState();
    const g = new Generator({ seed: 11 });
    const fromGenerator = drawAll(steps, g);
    assert.deepEqual(defaultGenerator.getState(), before, "the global state is untouched");
    // Same seed, same algorithm: the generator's draws are what the global stream gives.
    assert.deepEqual(fromGenerator, expected);
    assert.deepEqual(drawAll(steps, undefined), expected);
    g.dispose();
  });

  it("getState/setState round-trips: identical continuations, also in another generator", () => {
    const g = new Generator({ seed: 99 });
    scope(() => {
      randn([3], { generator: g });
    });
    const state = g.getState();
    const first = drawAll(steps, g);
    g.setState(state);
    assert.deepEqual(drawAll(steps, g), first);
    const h = new Generator().setState(state);
    assert.equal(h.initialSeed(), 99n);
    assert.deepEqual(drawAll(steps, h), first);
    // getState returns a copy: changing it changes nothing.
    const copy = g.getState();
    const kept = g.getState();
    copy.fill(7);
    assert.deepEqual(g.getState(), kept);
    g.dispose();
    h.dispose();
  });

  it("defaultGenerator snapshots and restores the global stream after manualSeed and draws", () => {
    manualSeed(123);
    assert.equal(defaultGenerator.initialSeed(), 123n);
    scope(() => {
      rand([5]);
      randn([3]);
    });
    const snapshot = defaultGenerator.getState();
    const first = drawAll(steps, undefined);
    defaultGenerator.setState(snapshot);
    assert.deepEqual(drawAll(steps, undefined), first);
    // Seeding through defaultGenerator is the global manualSeed on the CPU.
    defaultGenerator.manualSeed(4);
    const viaDefault = drawAll(steps, undefined);
    manualSeed(4);
    assert.deepEqual(drawAll(steps, undefined), viaDefault);
  });

  it("seed() reseeds non-deterministically and reports the seed", () => {
    const g = new Generator({ seed: 1 });
    const s = g.seed();
    assert.equal(typeof s, "bigint");
    assert.equal(g.initialSeed(), s);
    const after = scope(() => rand([4], { generator: g }).toFlatArray());
    const replay = new Generator({ seed: s });
    assert.deepEqual(
      scope(() => rand([4], { generator: replay }).toFlatArray()),
      after,
    );
    g.dispose();
    replay.dispose();
  });

  it("draws with requiresGrad and dtype options keep them", () => {
    const g = new Generator({ seed: 3 });
    scope(() => {
      const t = randn([2, 3], { generator: g, requiresGrad: true, dtype: "float64" });
      assert.equal(t.requiresGrad, true);
      assert.equal(t.dtype, "float64");
      const l = randLike(t, { generator: g });
      assert.deepEqual(l.shape, [2, 3]);
      assert.equal(l.dtype, "float64");
      assert.equal(l.requiresGrad, false);
      assert.equal(randint(0, 5, [4], { generator: g, dtype: "int32" }).dtype, "int32");
    });
    g.dispose();
  });
});

describe("Generator errors", () => {
  it("bad states throw errors naming what was expected, and leave the generator unchanged", () => {
    const g = new Generator({ seed: 2 });
    const state = g.getState();
    assert.throws(() => g.setState(new Uint8Array(10)), /expected a state of 5056 bytes for a cpu generator, got 10/);
    assert.throws(() => g.setState(new Uint8Array(0)), /expected a state of 5056 bytes/);
    assert.throws(() => g.setState([1, 2, 3] as unknown as Uint8Array), /expected a Uint8Array .*got Array/);
    assert.throws(() => g.setState(new Float32Array(1264) as unknown as Uint8Array), /expected a Uint8Array .*got Float32Array/);
    assert.throws(() => g.setState(null as unknown as Uint8Array), /expected a Uint8Array .*got null/);
    assert.throws(() => g.setState("state" as unknown as Uint8Array), /expected a Uint8Array .*got string/);
    // Right size, impossible content: LibTorch's own validation, as an Error.
    assert.throws(() => g.setState(new Uint8Array(5056)), /Generator\.setState: Invalid mt19937 state/);
    assert.deepEqual(g.getState(), state);
    // A Buffer is a Uint8Array and is accepted.
    g.setState(Buffer.from(state));
    assert.deepEqual(g.getState(), state);
    g.dispose();
  });

  it("bad seeds, devices and disposed generators throw", () => {
    assert.throws(() => new Generator({ seed: -1 }), /seed must be a non-negative safe integer or a BigInt below 2\^64, got -1/);
    assert.throws(() => new Generator({ seed: 1.5 }), TypeError);
    assert.throws(() => new Generator({ seed: 2 ** 60 }), TypeError);
    assert.throws(() => new Generator({ seed: 1n << 64n }), TypeError);
    assert.throws(() => new Generator({ device: "cuda" }), /only CPU generators are supported, got device 'cuda'/);
    const g = new Generator({ seed: (1n << 64n) - 1n });
    assert.equal(g.initialSeed(), (1n << 64n) - 1n);
    assert.throws(() => g.manualSeed(-3), TypeError);
    g.dispose();
    g.dispose(); // twice is fine
    assert.equal(g.isDisposed, true);
    assert.throws(() => g.getState(), /already disposed/);
    assert.throws(() => rand([2], { generator: g }), /already disposed/);
    assert.throws(() => scope(() => randLike(zeros([2]), { generator: g })), /already disposed/);
  });

  it("the op call rejects what is not a generator, and a generator where a tensor belongs", () => {
    const g = new Generator({ seed: 1 });
    scope(() => {
      const x = zeros([3]);
      const { id } = native.op("aten::uniform_", "");
      assert.throws(
        () => native.call(id, [x.handle, 0, 1], { generator: x.handle }),
        /'generator' must be a Generator or null, got a tensor/,
      );
      assert.throws(() => native.call(id, [x.handle, 0, 1], { generator: 3 }), /'generator' must be a Generator or null, got 3/);
      assert.throws(() => native.call(id, [g.handle, 0, 1]), /'self' must be a tensor, got a generator/);
      // null is the default generator, as in Python.
      native.call(id, [x.handle, 0, 1], { generator: null });
    });
    g.dispose();
  });

  it("defaultGenerator.dispose() is a no-op: the global generator keeps working", () => {
    defaultGenerator.dispose();
    assert.equal(defaultGenerator.isDisposed, false);
    manualSeed(8);
    assert.equal(defaultGenerator.initialSeed(), 8n);
    scope(() => {
      rand([2]);
    });
  });
});

describe("Generator memory", () => {
  it("leaks no tensors", () => {
    assert.equal(memoryStats().liveTensors, startLive);
  });
});
