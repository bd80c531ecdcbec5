# The reference side of `npm run bench -- dist`: torch.distributed (gloo) allreduce of
# float32 tensors of the given sizes, timed exactly as bench/dist-worker.ts times ours
# (a barrier, then one allreduce, per repetition). Rank 0 prints {"seconds": {mb: [...]}}.
# Usage: /usr/bin/python3 dist_allreduce.py --rank R --world-size W --store HOST:PORT
#        --mb 10,25,50,100 --reps 5 --warmup 2 --threads 1
import argparse
import json
import time
from datetime import timedelta

import torch
import torch.distributed as dist

p = argparse.ArgumentParser()
p.add_argument("--rank", type=int, required=True)
p.add_argument("--world-size", type=int, required=True)
p.add_argument("--store", required=True)
p.add_argument("--mb", default="10,25,50,100")
p.add_argument("--reps", type=int, default=5)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
dist.init_process_group("gloo", init_method="tcp://" + a.store, rank=a.rank, world_size=a.world_size,
                        timeout=timedelta(seconds=300))
out = {}
for mb in [float(s) for s in a.mb.split(",")]:
    t = torch.ones(round(mb * 1e6 / 4))
    times = []
    for i in range(a.warmup + a.reps):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    key = str(int(mb)) if mb == int(mb) else str(mb)
    out[key] = times
if a.rank == 0:
    print(json.dumps({"seconds": out}), flush=True)
dist.destroy_process_group()
