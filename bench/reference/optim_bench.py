#!/usr/bin/python3
"""PyTorch side of `npm run bench -- optim`: optimizer steps on ResNet18's parameters.

usage: /usr/bin/python3 optim_bench.py --optimizer sgd|adam|adamw --width 64 [--steps 20] [--warmup 5] [--threads 2]
Each parameter gets a fixed random gradient; a step is optimizer.step() alone (no model
forward/backward), so this measures the optimizer's arithmetic and per-tensor overhead.
Prints one JSON line in the form of ../shared/reference/bench.py; "imgs_per_s" is steps/s here.
Options: SGD lr 0.01 momentum 0.9 weight decay 5e-4; Adam/AdamW lr 1e-3 weight decay 5e-4.
"""
import argparse, json, os, resource, statistics, sys, time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "reference"))
from models import ResNet18  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a, _ = ap.parse_known_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = ResNet18(10, a.width)
    params = list(net.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    if a.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    elif a.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=1e-3, weight_decay=5e-4)
    else:
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=5e-4)
    for _ in range(a.warmup):
        opt.step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "model": "resnet18", "width": a.width, "mode": a.optimizer, "batch": None,
        "params": sum(p.numel() for p in params), "imgs_per_s": round(1 / med, 2),
        "step_s": [round(t, 5) for t in times],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
