#!/usr/bin/python3
"""One training forward/backward of a robust-moe model's PyTorch twin, in fp32 or under
torch.autocast("cpu", dtype=torch.bfloat16), NCHW or channels-last: the reference for
test/tensor/autocast.test.ts.

  torch_autocast_check.py SPEC PATH
SPEC: as torch_load_check.py (resnet18:<width> | moe:<experts>:<width>:<k>:<renorm>)
PATH: safetensors with the state dict under "w.", images "x" and labels "y" (int64).
Prints, for each of fp32, bf16, fp32-cl, bf16-cl: the loss, the logits and their dtype, and the
gradients of the stem convolution and of the last linear layer (of expert 0 for a MoE); the
model is in train mode, backward runs outside the autocast region, as PyTorch recommends.
"""
import json, os, sys

import torch
import torch.nn.functional as F

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
    if kind == "moe":
        m = M.resnet18_moe(a[0], a[1], k=a[2])
        m.renormalize = bool(a[3])
        return m
    raise SystemExit(f"unknown spec {spec}")


torch.set_num_threads(1)
spec, path = sys.argv[1], sys.argv[2]
loaded = read(path)
tensors = loaded[0] if isinstance(loaded, tuple) else loaded
state = {k[2:]: v for k, v in tensors.items() if k.startswith("w.")}
x, y = tensors["x"], tensors["y"]
out = {}
for mode in ["fp32", "bf16", "fp32-cl", "bf16-cl"]:
    net = build(spec)
    net.load_state_dict(state, strict=True)
    net.train()
    xin = x
    if mode.endswith("-cl"):
        net = net.to(memory_format=torch.channels_last)
        xin = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode.startswith("bf16")):
        logits = net(xin)
        loss = F.cross_entropy(logits, y)
    loss.backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    stem = "conv1.weight" if "conv1.weight" in grads else "experts.0.conv1.weight"
    head = "linear.weight" if "linear.weight" in grads else "experts.0.linear.weight"
    out[mode] = {
        "loss": float(loss),
        "lossDtype": str(loss.dtype).replace("torch.", ""),
        "logits": logits.float().flatten().tolist(),
        "logitsDtype": str(logits.dtype).replace("torch.", ""),
        "stemGrad": grads[stem].flatten().tolist(),
        "headGrad": grads[head].flatten().tolist(),
        "gradDtype": str(grads[stem].dtype).replace("torch.", ""),
    }
print(json.dumps(out))
