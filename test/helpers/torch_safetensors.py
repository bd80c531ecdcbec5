#!/usr/bin/env python3
"""Reads and writes safetensors files with torch alone, as an independent implementation
for the interop tests (the safetensors package is not installed here).

  torch_safetensors.py dump PATH   print the file's metadata and tensors as JSON
  torch_safetensors.py make PATH   write a file from torch tensors of every dtype and
                                   print them as JSON, as `dump` would describe them
"""
import hashlib
import json
import math
import struct
import sys

import torch

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
CODES = {v: k for k, v in DTYPES.items()}


def raw_bytes(t):
    # The format is little-endian; so is every machine these tests run on.
    assert sys.byteorder == "little"
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = bytearray(data[8 + n + begin : 8 + n + end])
        dtype = DTYPES[info["dtype"]]
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"])
    return tensors, metadata, 8 + n


def write(path, tensors, metadata=None, data_order=None):
    """Writes tensors with their data in data_order (default: dict order), header keys in dict order."""
    order = data_order or list(tensors)
    chunks, offsets, at = [], {}, 0
    for name in order:
        raw = raw_bytes(tensors[name])
        offsets[name] = [at, at + len(raw)]
        chunks.append(raw)
        at += len(raw)
    header = {} if metadata is None else {"__metadata__": metadata}
    for name, t in tensors.items():
        header[name] = {"dtype": CODES[t.dtype], "shape": list(t.shape), "data_offsets": offsets[name]}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-(8 + len(encoded)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))


def number(v):
    # JSON has no NaN/Infinity and JS numbers cannot hold every int64.
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def describe(t):
    wide = t.to(torch.float64) if t.is_floating_point() else t
    return {
        "dtype": CODES[t.dtype],
        "shape": list(t.shape),
        "sha256": hashlib.sha256(raw_bytes(t)).hexdigest(),
        "values": [number(v) for v in wide.reshape(-1).tolist()],
        "sum": number(float(t.to(torch.float64).sum())),
    }


def sample_tensors():
    torch.manual_seed(0)
    specials = torch.tensor([0.0, -0.0, 1.5, -2.25, float("inf"), float("-inf"), float("nan"), 65504.0, 1e-7])
    return {
        "f32": torch.randn(3, 4),
        "f64": torch.randn(2, 3, dtype=torch.float64) * 1e10,
        "f16": specials.to(torch.float16),
        "bf16": (torch.randn(5) * 1000).to(torch.bfloat16),
        "i64": torch.tensor([2**62 + 1, -(2**63), 2**63 - 1, 0, -1], dtype=torch.int64),
        "i32": torch.tensor([[-(2**31), 2**31 - 1], [7, -7]], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767, 3], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, 0], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 128], dtype=torch.uint8),
        "bool": torch.tensor([[True, False, True]]),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
        "transposed": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),
    }


def main():
    command, path = sys.argv[1], sys.argv[2]
    if command == "dump":
        tensors, metadata, data_start = read(path)
        out = {"metadata": metadata, "dataStart": data_start, "tensors": {k: describe(v) for k, v in tensors.items()}}
    elif command == "make":
        tensors = sample_tensors()
        # Data in reverse name order, so readers cannot assume data order follows key order.
        write(path, tensors, {"source": "torch", "torch": torch.__version__}, sorted(tensors, reverse=True))
        out = {"metadata": {"source": "torch", "torch": torch.__version__}, "tensors": {k: describe(v) for k, v in tensors.items()}}
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(out, allow_nan=False))


if __name__ == "__main__":
    main()
