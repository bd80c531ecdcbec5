import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type AugmentPlan, applySample, assembleBatch, drawSample, makePlan, type SampleDraw } from "../../src/data/augment.js";
import { Rng } from "../../src/data/rng.js";

const C = 2;
const H = 5;
const W = 6;

/** Pixel (c, y, x) = 1 + c*100 + y*10 + x: every value says where it came from; 0 only from padding. */
function image(): Uint8Array {
  const img = new Uint8Array(C * H * W);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) img[c * H * W + y * W + x] = 1 + c * 100 + y * 10 + x;
  return img;
}

function px(img: Uint8Array, plan: AugmentPlan, c: number, y: number, x: number): number {
  return img[c * plan.outHeight * plan.outWidth + y * plan.outWidth + x] as number;
}

function run(plan: AugmentPlan, d: Partial<SampleDraw>): Uint8Array {
  const out = new Uint8Array(C * plan.outHeight * plan.outWidth).fill(77);
  applySample(image(), 0, out, 0, plan, { top: plan.padding, left: plan.padding, flip: false, cy: -1, cx: -1, ...d });
  return out;
}

const src = (c: number, y: number, x: number): number => 1 + c * 100 + y * 10 + x;

describe("augmentation", () => {
  it("identity plan copies the image", () => {
    const plan = makePlan({}, [C, H, W]);
    assert.deepEqual(run(plan, {}), image());
  });

  it("horizontal flip mirrors every row of every channel", () => {
    const plan = makePlan({ flip: true }, [C, H, W]);
    const out = run(plan, { flip: true });
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) assert.equal(px(out, plan, c, y, x), src(c, y, W - 1 - x));
  });

  it("translate (pad then crop) shifts by the drawn offset with zero padding", () => {
    const plan = makePlan({ translate: 2 }, [C, H, W]);
    assert.deepEqual([plan.outHeight, plan.outWidth, plan.padding], [H, W, 2]);
    for (const [top, left] of [
      [0, 0],
      [4, 4],
      [1, 3],
      [2, 2],
    ] as const) {
      const out = run(plan, { top, left });
      const dy = top - 2;
      const dx = left - 2;
      for (let c = 0; c < C; c++) {
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            const sy = y + dy;
            const sx = x + dx;
            const want = sy >= 0 && sy < H && sx >= 0 && sx < W ? src(c, sy, sx) : 0;
            assert.equal(px(out, plan, c, y, x), want, `offset (${top}, ${left}) at c${c} y${y} x${x}`);
          }
        }
      }
    }
  });

  it("random crop with padding takes a window of the padded image, flip applied after", () => {
    const plan = makePlan({ crop: { size: [3, 4], padding: 1 }, flip: true }, [C, H, W]);
    assert.deepEqual([plan.outHeight, plan.outWidth], [3, 4]);
    const out = run(plan, { top: 0, left: 4, flip: true });
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < 3; y++) {
        for (let x = 0; x < 4; x++) {
          const sy = y - 1;
          const sx = 4 + (3 - x) - 1;
          const want = sy >= 0 && sx < W ? src(c, sy, sx) : 0;
          assert.equal(px(out, plan, c, y, x), want, `c${c} y${y} x${x}`);
        }
      }
    }
  });

  it("cutout zeroes a side x side square centred at the drawn pixel, clipped at the borders", () => {
    const S = 16;
    const plan = makePlan({ cutout: 8 }, [1, S, S]);
    const img = new Uint8Array(S * S).fill(200);
    const cases: [number, number, number][] = [
      [8, 8, 64],
      [0, 0, 16],
      [15, 3, 5 * 7],
    ];
    for (const [cy, cx, area] of cases) {
      const out = new Uint8Array(S * S);
      applySample(img, 0, out, 0, plan, { top: 0, left: 0, flip: false, cy, cx });
      let zeros = 0;
      for (let y = 0; y < S; y++) {
        for (let x = 0; x < S; x++) {
          const inside = y >= cy - 4 && y < cy + 4 && x >= cx - 4 && x < cx + 4;
          assert.equal(out[y * S + x], inside ? 0 : 200, `centre (${cy}, ${cx}) at y${y} x${x}`);
          if (out[y * S + x] === 0) zeros++;
        }
      }
      assert.equal(zeros, area);
    }
  });

  it("draws offsets uniformly over all positions and flips about half the images", () => {
    const plan = makePlan({ translate: 2, flip: true, cutout: 4 }, [3, 8, 8]);
    const rng = new Rng(5);
    const tops = new Set<number>();
    let flips = 0;
    for (let i = 0; i < 2000; i++) {
      const d = drawSample(plan, rng);
      tops.add(d.top);
      assert.ok(d.left >= 0 && d.left <= 4 && d.cy >= 0 && d.cy < 8 && d.cx >= 0 && d.cx < 8);
      if (d.flip) flips++;
    }
    assert.deepEqual([...tops].sort(), [0, 1, 2, 3, 4]);
    assert.ok(flips > 900 && flips < 1100, `${flips} flips of 2000`);
  });

  it("a batch depends only on (seed, epoch, batch index)", () => {
    const plan = makePlan({ translate: 2, flip: true, cutout: 3 }, [C, H, W]);
    const images = new Uint8Array(10 * C * H * W);
    for (let i = 0; i < 10; i++) images.set(image(), i * C * H * W);
    const batch = (seed: number, epoch: number, b: number): Uint8Array => {
      const out = new Uint8Array(4 * C * H * W);
      assembleBatch(images, [3, 1, 4, 1], plan, seed, epoch, b, out);
      return out;
    };
    assert.deepEqual(batch(1, 2, 3), batch(1, 2, 3));
    assert.notDeepEqual(batch(1, 2, 3), batch(2, 2, 3));
    assert.notDeepEqual(batch(1, 2, 3), batch(1, 3, 3));
    assert.notDeepEqual(batch(1, 2, 3), batch(1, 2, 4));
  });

  it("rejects bad options", () => {
    assert.throws(() => makePlan({ crop: { size: 4 }, translate: 2 }, [3, 8, 8]), /not both/);
    assert.throws(() => makePlan({ crop: { size: 20, padding: 2 } }, [3, 8, 8]), /does not fit/);
    assert.throws(() => makePlan({ cutout: -1 }, [3, 8, 8]), /non-negative integer/);
  });
});
