#!/usr/bin/python3
"""Reference trajectories of torch.optim for tapegrad's optimizer tests.

Run with Debian's interpreter, which has python3-torch 1.13.1:

    /usr/bin/python3 scripts/make_optim_fixtures.py

It writes tests/fixtures/optim/problem.txt and one <case>.txt per optimizer or
schedule, and (with NumPy) the checkpoints in tests/fixtures/checkpoint/ that
tests/test_checkpoint.cpp must load: .npz files written by numpy.savez, so the
C++ reader is tested against NumPy's writer as well as its own. The C++ tests (tests/test_optim_pytorch.cpp) read them and need no
Python.

The problem: two float64 parameters, p0 of shape [5] and p1 of shape [2, 3],
and a fixed loss with a closed-form elementwise gradient

    loss = sum(a/2 (p - c)^2 + b/4 p^4)      grad = a * (p - c) + b * p^3

so the C++ side computes exactly the same gradient with no autodiff in the way.
Each case runs 20 steps of: set grads, optimizer.step(), scheduler.step().
Each fixture line is "step lr <p0 values> <p1 values>" after that step
(line 0: the initial values and the lr after the scheduler's construction),
printed with 17 significant digits.

Each case file also states the optimizer and scheduler with their options on
its 'optimizer' and 'scheduler' lines; the C++ test builds the same ones from
those lines, so the options live in one place (this script).
"""

import os
import sys

import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "optim")
STEPS = 20

# The problem (elementwise coefficients; optimum near c, away from zero).
P0 = [1.5, -1.25, 0.75, 2.0, -0.5]
P1 = [[-1.0, 0.5, 1.75], [-2.0, 1.25, -0.8]]
A = [0.9, 1.7, 0.6, 1.2, 2.0, 0.8, 1.1, 1.4, 0.7, 1.9, 1.3]
B = [0.05, 0.1, 0.02, 0.08, 0.03, 0.06, 0.04, 0.09, 0.01, 0.07, 0.05]
C = [1.2, -0.9, 1.1, 1.6, -1.3, -1.5, 0.9, 1.4, -1.7, 0.8, -1.1]


def grad(p, a, b, c):
    return a * (p - c) + b * p * p * p


CASES = [
    ("sgd_plain", "sgd", dict(lr=0.05), None),
    ("sgd_momentum", "sgd", dict(lr=0.05, momentum=0.9), None),
    ("sgd_dampening", "sgd", dict(lr=0.05, momentum=0.9, dampening=0.3), None),
    ("sgd_nesterov", "sgd", dict(lr=0.05, momentum=0.9, nesterov=True), None),
    ("sgd_weight_decay", "sgd", dict(lr=0.05, momentum=0.5, weight_decay=0.1), None),
    ("adam", "adam", dict(lr=0.1), None),
    ("adam_weight_decay", "adam", dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05), None),
    ("adam_amsgrad", "adam", dict(lr=0.1, amsgrad=True), None),
    ("adamw", "adamw", dict(lr=0.1, weight_decay=0.1), None),
    ("adamw_amsgrad", "adamw", dict(lr=0.1, weight_decay=0.05, amsgrad=True), None),
    ("rmsprop", "rmsprop", dict(lr=0.01), None),
    ("rmsprop_momentum", "rmsprop", dict(lr=0.01, alpha=0.9, momentum=0.9, weight_decay=0.01), None),
    ("rmsprop_centered", "rmsprop", dict(lr=0.01, momentum=0.5, centered=True), None),
    ("adagrad", "adagrad", dict(lr=0.1), None),
    ("adagrad_decay", "adagrad", dict(lr=0.2, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1), None),
    ("sched_step_lr", "sgd", dict(lr=0.05, momentum=0.9), ("step_lr", dict(step_size=5, gamma=0.5))),
    ("sched_exponential_lr", "sgd", dict(lr=0.05, momentum=0.9), ("exponential_lr", dict(gamma=0.9))),
    ("sched_cosine_annealing_lr", "sgd", dict(lr=0.05, momentum=0.9),
     ("cosine_annealing_lr", dict(t_max=7, eta_min=0.001))),
    ("sched_linear_warmup", "adam", dict(lr=0.1),
     ("linear_warmup", dict(start_factor=0.25, end_factor=1.0, total_iters=6))),
]

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def make_scheduler(opt, kind, o):
    s = torch.optim.lr_scheduler
    if kind == "step_lr":
        return s.StepLR(opt, step_size=o["step_size"], gamma=o["gamma"])
    if kind == "exponential_lr":
        return s.ExponentialLR(opt, gamma=o["gamma"])
    if kind == "cosine_annealing_lr":
        return s.CosineAnnealingLR(opt, T_max=o["t_max"], eta_min=o["eta_min"])
    if kind == "linear_warmup":
        return s.LinearLR(opt, start_factor=o["start_factor"], end_factor=o["end_factor"],
                          total_iters=o["total_iters"])
    raise ValueError(kind)


def fmt(v):
    return "%.17g" % v


def options_line(o):
    parts = []
    for k, v in o.items():
        if k == "betas":
            parts += ["beta1=" + fmt(v[0]), "beta2=" + fmt(v[1])]
        elif isinstance(v, bool):
            parts.append("%s=%d" % (k, int(v)))
        else:
            parts.append("%s=%s" % (k, fmt(v)))
    return " ".join(parts)


def run(name, opt_kind, opt_opts, sched):
    a, b, c = (torch.tensor(v) for v in (A, B, C))
    p0 = torch.tensor(P0, requires_grad=True)
    p1 = torch.tensor(P1, requires_grad=True)
    opt = OPTIMIZERS[opt_kind]([p0, p1], **opt_opts)
    scheduler = make_scheduler(opt, *sched) if sched else None
    lines = []

    def record(step):
        flat = torch.cat([p0.detach().reshape(-1), p1.detach().reshape(-1)])
        lines.append(" ".join([str(step), fmt(opt.param_groups[0]["lr"])] + [fmt(v) for v in flat.tolist()]))

    record(0)
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        flat = torch.cat([p0.detach().reshape(-1), p1.detach().reshape(-1)])
        g = grad(flat, a, b, c)
        p0.grad = g[:5].clone()
        p1.grad = g[5:].reshape(2, 3).clone()
        opt.step()
        if scheduler:
            scheduler.step()
        record(step)
    with open(os.path.join(OUT, name + ".txt"), "w") as f:
        f.write("# %s: torch %s, float64, %d steps; made by scripts/make_optim_fixtures.py\n"
                % (name, torch.__version__, STEPS))
        f.write("# columns: step lr p0[0..4] p1[0..5] (values after the step)\n")
        f.write("optimizer %s %s\n" % (opt_kind, options_line(opt_opts)))
        f.write("scheduler %s\n" % ((sched[0] + " " + options_line(sched[1])) if sched else "none"))
        f.write("\n".join(lines) + "\n")


def make_npz_fixtures():
    """np.savez checkpoints of nn::mlp({3, 4, 2}): names 0.weight [4, 3], 0.bias [4],
    2.weight [2, 4], 2.bias [2]; element k of each array (row-major) is
    (k - 5) / 8 + offset, exact in float32 and float64, so the test can recompute it."""
    import numpy as np
    out = os.path.join(os.path.dirname(OUT), "checkpoint")
    os.makedirs(out, exist_ok=True)
    shapes = {"0.weight": (4, 3), "0.bias": (4,), "2.weight": (2, 4), "2.bias": (2,)}
    offsets = {"0.weight": 0.0, "0.bias": 1.0, "2.weight": 2.0, "2.bias": 3.0}

    def arrays(dtype):
        return {k: ((np.arange(int(np.prod(s))) - 5) / 8 + offsets[k]).reshape(s).astype(dtype)
                for k, s in shapes.items()}

    np.savez(os.path.join(out, "numpy_mlp_f64.npz"), **arrays(np.float64))
    np.savez(os.path.join(out, "numpy_mlp_f32.npz"), **arrays(np.float32))
    np.savez_compressed(os.path.join(out, "numpy_mlp_f64_compressed.npz"), **arrays(np.float64))


def main():
    make_npz_fixtures()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "problem.txt"), "w") as f:
        f.write("# grad = a * (p - c) + b * p^3 elementwise; p = concat(p0 [5], p1 [2, 3] row-major)\n")
        for key, vals in (("init", P0 + [v for row in P1 for v in row]), ("a", A), ("b", B), ("c", C)):
            f.write(key + " " + " ".join(fmt(v) for v in vals) + "\n")
    for case in CASES:
        run(*case)
    print("wrote %d cases to %s" % (len(CASES), os.path.normpath(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
