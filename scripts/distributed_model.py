#!/usr/bin/env python3
"""Scaling model of data-parallel training (docs/distributed.md): ring
all-reduce time 2(N-1)/N * bytes / bandwidth + 2(N-1) * latency per bucket,
against the compute of one step, for the MLP and a small CNN on 10 and 100
Gbit/s networks at 2..64 ranks. Plain Python, no dependencies:
    python3 scripts/distributed_model.py
"""

# name, parameters, float32 bytes, step seconds at batch 256 on one core,
# share of the step that is backward after the largest gradient is ready (what overlap can hide behind)
MLP_PARAMS = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
# CNN (PyTorch's MNIST example): conv 1->32 3x3, conv 32->64 3x3, 2x2 max-pool, fc 9216->128, fc 128->10
CNN_PARAMS = (9 * 32 + 32) + (9 * 32 * 64 + 64) + (9216 * 128 + 128) + (128 * 10 + 10)
# Forward FLOPs per example: conv1 26*26*32*9*2, conv2 24*24*64*32*9*2, fc1 2*9216*128, fc2 2*128*10; backward ~2x forward.
CNN_FWD_FLOPS = 26 * 26 * 32 * 9 * 2 + 24 * 24 * 64 * 32 * 9 * 2 + 2 * 9216 * 128 + 2 * 128 * 10
CNN_STEP_S = 3 * CNN_FWD_FLOPS * 256 / 70e9  # 70 GFLOP/s: half the measured single-thread sgemm rate
MODELS = [
    # The MLP: relu256/adam, 4.9 ms per step measured (README). Its largest gradient (layer 1,
    # 85% of the bytes) is the LAST one backward produces, so overlap can hide almost nothing.
    ("MLP 784-256-128-10", MLP_PARAMS, 4.9e-3, 0.0),
    # The CNN: fc1 (98% of the bytes) is finished early in backward; conv2's and conv1's
    # backward (~90% of the backward FLOPs, ~60% of the step) still follow and can hide it.
    ("CNN 32c3-64c3-fc128", CNN_PARAMS, CNN_STEP_S, 0.6),
]
NETWORKS = [("10 Gbit/s (TCP, 15 us)", 10e9 / 8, 15e-6), ("100 Gbit/s (RDMA, 2 us)", 100e9 / 8, 2e-6)]
RANKS = [2, 4, 8, 16, 32, 64]


def allreduce_s(nbytes, n, bw, lat, buckets=1):
    return 2 * (n - 1) / n * nbytes / bw + 2 * (n - 1) * lat * buckets


def table(name, params, step_s, hideable, weak):
    nbytes = 4 * params
    out = []
    for net, bw, lat in NETWORKS:
        row_eff, row_ov, row_comm = [], [], []
        for n in RANKS:
            comp = step_s if weak else step_s / n  # weak: 256 rows per rank; strong: 256 rows in all
            comm = allreduce_s(nbytes, n, bw, lat)
            exposed = max(0.0, comm - hideable * comp)
            row_comm.append(f"{comm * 1e3:.2f}")
            row_eff.append(f"{comp / (comp + comm):.0%}")
            row_ov.append(f"{comp / (comp + exposed):.0%}")
        out.append((net, row_comm, row_eff, row_ov))
    return nbytes, out


def main():
    for weak in (False, True):
        print("## " + ("weak scaling: 256 rows per rank" if weak else "strong scaling: global batch 256"))
        for name, params, step_s, hide in MODELS:
            nbytes, rows = table(name, params, step_s, hide, weak)
            print(f"\n{name}: {params} parameters, {nbytes / 1e6:.2f} MB of float32 gradients, "
                  f"{step_s * 1e3:.1f} ms per step of 256 rows on one core\n")
            print("| network | | " + " | ".join(f"N={n}" for n in RANKS) + " |")
            print("|---|---|" + "---:|" * len(RANKS))
            for net, comm, eff, ov in rows:
                print(f"| {net} | all-reduce ms | " + " | ".join(comm) + " |")
                print(f"| | efficiency, no overlap | " + " | ".join(eff) + " |")
                print(f"| | efficiency, overlap | " + " | ".join(ov) + " |")
        print()
    # Bucketing: the latency term grows with the number of buckets.
    print("latency cost of one bucket per tensor instead of one bucket, MLP (6 tensors), N=64:")
    for net, bw, lat in NETWORKS:
        one = allreduce_s(4 * MLP_PARAMS, 64, bw, lat, 1)
        six = allreduce_s(4 * MLP_PARAMS, 64, bw, lat, 6)
        print(f"  {net}: {one * 1e3:.2f} ms vs {six * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
