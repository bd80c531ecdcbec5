import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodePng, PngError } from "../../src/data/png.js";
import { encodePng, randomBytes } from "./synth.js";

describe("PNG decoder", () => {
  it("decodes every row filter (None, Sub, Up, Average, Paeth) bit-exactly", () => {
    for (const filter of [0, 1, 2, 3, 4]) {
      const px = randomBytes(13 * 7 * 3, filter);
      const img = decodePng(encodePng(px, 13, 7, { filter: () => filter }), "t.png");
      assert.deepEqual([img.width, img.height, img.channels], [13, 7, 3]);
      assert.deepEqual(img.data, px, `filter ${filter}`);
    }
    const px = randomBytes(40 * 25 * 3, 9);
    assert.deepEqual(decodePng(encodePng(px, 40, 25, { idatSize: 100 }), "mixed.png").data, px, "mixed filters over many IDATs");
  });

  it("decodes greyscale, grey+alpha and RGBA", () => {
    for (const [colour, ch] of [
      [0, 1],
      [4, 2],
      [6, 4],
    ] as const) {
      const px = randomBytes(9 * 5 * ch, colour);
      const img = decodePng(encodePng(px, 9, 5, { colour }), "c.png");
      assert.equal(img.channels, ch);
      assert.deepEqual(img.data, px);
    }
  });

  it("rejects unsupported variants and corrupt files with errors naming the file", () => {
    const good = encodePng(randomBytes(4 * 4 * 3, 1), 4, 4);
    const bad = (bytes: Uint8Array, re: RegExp): void => {
      assert.throws(
        () => decodePng(bytes, "data/bad.png"),
        (e: unknown) => e instanceof PngError && e.message.startsWith("data/bad.png: ") && re.test(e.message),
      );
    };
    bad(encodePng(randomBytes(16 * 3, 1), 4, 4, { interlace: 1 }), /interlaced/);
    bad(encodePng(randomBytes(32 * 3, 1), 4, 4, { bitDepth: 16 }), /bit depth 16/);
    bad(encodePng(randomBytes(16, 1), 4, 4, { colour: 3 }), /colour type 3/);
    bad(Buffer.from("GIF89a not a png at all"), /signature/);
    bad(good.subarray(0, good.length - 20), /truncated/);
    const flipped = Buffer.from(good);
    flipped[60] = (flipped[60] as number) ^ 0xff;
    bad(flipped, /CRC mismatch/);
    bad(encodePng(randomBytes(16 * 3, 1), 4, 4, { filter: () => 7 }), /unknown filter type 7/);
  });
});
