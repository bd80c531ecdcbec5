#!/usr/bin/python3
"""Loads a robust-moe checkpoint into its PyTorch twin with load_state_dict(strict=True).

  torch_load_check.py SPEC PATH
SPEC: resnet18:<width> | vit:<patch>:<dim>:<depth>:<heads> | moe:<experts>:<width>:<k>:<renorm 0|1>
PATH: a safetensors file with the state dict under "w." and an input "x".
Prints {"logits": [...]} of the twin in eval mode, or fails loudly on any key/shape mismatch.
"""
import json, os, sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "reference"))
sys.path.insert(0, HERE)
import models as M  # noqa: E402
from torch_safetensors import read  # noqa: E402


def build(spec):
    kind, *a = spec.split(":")
    a = [int(v) for v in a]
    if kind == "resnet18":
        return M.ResNet18(10, a[0])
    if kind == "vit":
        return M.ViT(10, img=32, patch=a[0], dim=a[1], depth=a[2], heads=a[3])
    if kind == "moe":
        m = M.resnet18_moe(a[0], a[1], k=a[2])
        m.renormalize = bool(a[3])
        return m
    raise SystemExit(f"unknown spec {spec}")


spec, path = sys.argv[1], sys.argv[2]
loaded = read(path)
tensors = loaded[0] if isinstance(loaded, tuple) else loaded
net = build(spec)
net.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("w.")}, strict=True)
net.eval()
with torch.no_grad():
    out = net(tensors["x"])
print(json.dumps({"logits": out.flatten().tolist()}))
