#!/usr/bin/env python3
"""The official AutoAttack (fra31/auto-attack) on the reference CNN, for `npm run bench -- autoattack`
and for test/fixtures/autoattack_reference.json.

The official code is not part of this repository: --official names the directory that holds its
`autoattack` package. Runs AutoAttack(norm='Linf', eps=<the fixture's eps_linf>, version='standard',
device='cpu').run_standard_evaluation(x[:n], y[:n], bs=--bs) on the images of
test/fixtures/pgd_reference.safetensors and prints one JSON line: clean and robust accuracy, the
robust accuracy after each attack (parsed from AutoAttack's own log lines), the per-sample robust
flags and the seconds the evaluation took.

  /usr/bin/python3 bench/reference/autoattack.py --official /tmp/aa_official --n 1000 --threads 2

Set ATEN_CPU_CAPABILITY and OMP_WAIT_POLICY as our addon does (the benchmark passes its own).
"""
import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "test", "helpers"))
from torch_safetensors import read  # noqa: E402


def model():
    # test/fixtures/pgd_reference.py's CNN (same state-dict names).
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 1, 1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--official", default="/tmp/aa_official")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--bs", type=int, default=250)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--commit", default="", help="the auto-attack commit, when --official is not a git checkout")
    args = p.parse_args()
    if not os.path.isdir(os.path.join(args.official, "autoattack")):
        sys.exit(f"autoattack.py: no autoattack package under {args.official}")
    sys.path.insert(0, os.path.abspath(args.official))
    from autoattack import AutoAttack

    torch.set_num_threads(args.threads)
    try:
        commit = subprocess.run(["git", "-C", args.official, "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    commit = args.commit or commit
    tensors, meta, _ = read(os.path.join(ROOT, "test", "fixtures", "pgd_reference.safetensors"))
    x, y = tensors.pop("x")[: args.n], tensors.pop("y")[: args.n]
    net = model()
    net.load_state_dict(tensors)
    net.eval()
    eps = float(meta["eps_linf"])
    # AutoAttack prints to stdout too; stdout must carry only the JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        aa = AutoAttack(net, norm="Linf", eps=eps, version="standard", device="cpu")
    # Keep AutoAttack's own log lines (stage accuracies) off stdout, which carries the JSON line.
    lines = []

    def log(s):
        lines.append(s)
        print(s, file=sys.stderr)

    aa.logger.log = log
    start = time.time()
    with contextlib.redirect_stdout(sys.stderr):
        adv = aa.run_standard_evaluation(x, y, bs=args.bs)
    seconds = time.time() - start
    with torch.no_grad():
        clean = net(x).argmax(1) == y
        robust = net(adv).argmax(1) == y
    stages = []
    for s in lines:
        m = re.match(r"robust accuracy after (\S+): ([0-9.]+)% \(total time ([0-9.]+) s\)", s)
        if m:
            stages.append({"attack": m.group(1), "robustAccuracy": float(m.group(2)) / 100,
                           "totalSeconds": float(m.group(3))})
    print(json.dumps({
        "source": "fra31/auto-attack" + (f" at {commit}" if commit else ""),
        "torch": torch.__version__,
        "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY", "default"),
        "threads": torch.get_num_threads(),
        "eps": eps,
        "n": args.n,
        "bs": args.bs,
        "cleanAccuracy": clean.double().mean().item(),
        "robustAccuracy": robust.double().mean().item(),
        "stages": stages,
        "robust": "".join("1" if r else "0" for r in robust.tolist()),
        "seconds": round(seconds, 3),
    }))


if __name__ == "__main__":
    main()
