import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { arange, scope } from "../../src/tensor/index.js";

describe("memory layout", () => {
  it("stride() and memoryFormat follow PyTorch for NCHW, NHWC and strided views", () =>
    scope(() => {
      const x = arange(0, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5);
      assert.deepEqual(x.stride(), [60, 20, 5, 1]);
      assert.equal(x.memoryFormat, "contiguous");
      const nhwc = x.contiguous("channelsLast");
      // Channels move fastest: torch.channels_last strides for [2, 3, 4, 5].
      assert.deepEqual(nhwc.stride(), [60, 1, 15, 3]);
      assert.equal(nhwc.memoryFormat, "channelsLast");
      // Same values: only the layout changed.
      assert.deepEqual(nhwc.contiguous().toFlatArray(), x.toFlatArray());
      const t = x.transpose(2, 3);
      assert.deepEqual(t.stride(), [60, 20, 1, 5]);
      assert.equal(t.memoryFormat, null);
      assert.deepEqual(x.select(1, 0).stride(), [60, 5, 1]);
    }));
});
