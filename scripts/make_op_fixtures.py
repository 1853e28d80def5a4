#!/usr/bin/python3
"""Reference values and gradients of torch 1.13 for the ops and losses of issue #9.

Run with Debian's interpreter, which has python3-torch 1.13.1:

    /usr/bin/python3 scripts/make_op_fixtures.py

It writes tests/fixtures/ops/<group>.txt; tests/test_ops_fixtures.cpp reads them
(the tests need no Python) and builds the same function for each case by name.

Each case is a block

    case <name>
    ints <integers...>               optional: labels / indices the function takes
    in <rank> <dims...> <values...>  one line per input, in order
    out <rank> <dims...> <values...> f(inputs)
    seed <rank> <dims...> <values...>  w: the test differentiates sum(w * f(inputs))
    grad <i> <rank> <dims...> <values...>  d sum(w f) / d input i (inputs without one are constants)
    end

in float64, each number written as Python's repr (shortest exact round trip).
"""

import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "ops")
GEN = torch.Generator().manual_seed(20261201)


def rand(*shape, lo=-1.0, hi=1.0):
    return lo + (hi - lo) * torch.rand(tuple(shape), generator=GEN)


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def fmt(x):
    x = x.detach().to(torch.float64)
    vals = x.reshape(-1).tolist()
    for v in vals:
        assert math.isfinite(v), "fixtures must be finite (the C++ reader parses plain numbers)"
    return " ".join([str(x.dim())] + [str(d) for d in x.shape] + [repr(float(v)) for v in vals])


def case(f, name, fn, inputs, grads=None, ints=None):
    """grads: indices of inputs that get a gradient (default: all)."""
    grads = list(range(len(inputs))) if grads is None else grads
    xs = [x.clone().requires_grad_(i in grads) for i, x in enumerate(inputs)]
    y = fn(*xs)
    if y.dtype != torch.float64:
        y = y.to(torch.float64)
    f.write(f"case {name}\n")
    if ints is not None:
        f.write("ints " + " ".join(str(int(v)) for v in ints) + "\n")
    for x in xs:
        f.write("in " + fmt(x) + "\n")
    f.write("out " + fmt(y) + "\n")
    if grads and y.requires_grad:
        w = rand(*y.shape, lo=-2.0, hi=2.0)
        f.write("seed " + fmt(w) + "\n")
        gs = torch.autograd.grad((w * y).sum(), [xs[i] for i in grads], allow_unused=True)
        for i, g in zip(grads, gs):
            g = torch.zeros_like(xs[i]) if g is None else g
            f.write(f"grad {i} " + fmt(g) + "\n")
    f.write("end\n")


def header(f, group):
    f.write(f"# {group}: torch {torch.__version__}, float64; made by scripts/make_op_fixtures.py\n")


def math_group(f):
    ext = t([-1000.0, -2.5, -1.0, -0.0, 0.0, 0.3, 1.0, 4.0, 1000.0])
    case(f, "sin", torch.sin, [ext])
    case(f, "cos", torch.cos, [rand(3, 4, lo=-4, hi=4)])
    case(f, "sin_cos_product", lambda a, b: torch.sin(a) * torch.cos(b), [rand(3, 4, lo=-3, hi=3), rand(4, lo=-3, hi=3)])
    case(f, "log1p", torch.log1p, [t([-0.9, -0.5, 0.0, 1e-12, 0.7, 3.0, 1000.0])])
    case(f, "expm1", torch.expm1, [t([-1000.0, -3.0, -1e-10, 0.0, 1e-10, 0.5, 2.0, 40.0])])
    case(f, "rsqrt", torch.rsqrt, [t([1e-6, 0.25, 1.0, 3.0, 1000.0])])
    bounds = t([-1000.0, -0.5, -0.2, 0.0, 0.25, 0.7, 1000.0])
    case(f, "clamp_min", lambda x: torch.clamp(x, min=0.25), [bounds])
    case(f, "clamp_max", lambda x: torch.clamp(x, max=-0.2), [bounds])
    a = t([[1.0, 2.0, 3.0], [4.0, -5.0, 6.0]])
    b = t([2.0, -5.0, 7.0])
    for op, fn in [("eq", torch.eq), ("ne", torch.ne), ("lt", torch.lt), ("le", torch.le), ("gt", torch.gt), ("ge", torch.ge)]:
        # mask * a + (1 - mask) * b^2: gradients flow through the products only
        case(f, "mask_" + op, lambda x, y, fn=fn: fn(x, y).double() * x + (1 - fn(x, y).double()) * y * y, [a, b])


def activations_group(f):
    ext = t([-1000.0, -30.0, -2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, 30.0, 1000.0])
    case(f, "silu", F.silu, [ext])
    case(f, "mish", F.mish, [ext])
    case(f, "logsigmoid", F.logsigmoid, [ext])
    case(f, "hardtanh", F.hardtanh, [ext])  # grads 0 at exactly -1 and 1
    case(f, "hardtanh_bounds", lambda x: F.hardtanh(x, -0.5, 2.0), [rand(3, 5, lo=-3, hi=3)])
    case(f, "selu", F.selu, [ext])


def stats_group(f):
    x = rand(3, 4, 5, lo=-1.5, hi=1.5)
    case(f, "prod_all", torch.prod, [rand(2, 3, lo=0.5, hi=1.5)])
    case(f, "prod_axis1", lambda v: torch.prod(v, 1), [x])
    z = rand(3, 4)
    z[0, 1] = 0.0
    z[1, 0] = 0.0
    z[1, 3] = 0.0
    case(f, "prod_zeros_axis_m1", lambda v: torch.prod(v, -1), [z])  # one zero and two zeros in a row
    case(f, "var_all", lambda v: torch.var(v), [x])
    case(f, "var_axes_0_2_corr0", lambda v: torch.var(v, (0, 2), correction=0), [x])
    case(f, "var_axis_m1_keep", lambda v: torch.var(v, -1, keepdim=True), [x])
    case(f, "std_axis1", lambda v: torch.std(v, 1), [x])
    case(f, "std_axes_0_1_corr0_keep", lambda v: torch.std(v, (0, 1), correction=0, keepdim=True), [x])
    case(f, "norm2_all", lambda v: torch.linalg.vector_norm(v, 2), [x])
    case(f, "norm2_axis_m1", lambda v: torch.linalg.vector_norm(v, 2, dim=-1), [x])
    case(f, "norm1_axes_0_2", lambda v: torch.linalg.vector_norm(v, 1, dim=(0, 2)), [x])
    case(f, "norminf_axis1_keep", lambda v: torch.linalg.vector_norm(v, math.inf, dim=1, keepdim=True), [x])
    case(f, "norminf_ties", lambda v: torch.linalg.vector_norm(v, math.inf, dim=1),
         [t([[1.0, -3.0, 3.0, 2.0], [0.5, -0.5, 0.5, 0.25]])])
    case(f, "cumsum_axis0", lambda v: torch.cumsum(v, 0), [x])
    case(f, "cumsum_axis_m1", lambda v: torch.cumsum(v, -1), [x])
    big = rand(2, 3, 4, lo=-3, hi=3)
    big[0, 0, 0] = 1000.0
    big[0, 1, 2] = 1000.0
    big[1, 2, 3] = -1000.0
    case(f, "logsumexp_axes_1_2", lambda v: torch.logsumexp(v, (1, 2)), [big])
    case(f, "logsumexp_axes_0_m1_keep", lambda v: torch.logsumexp(v, (0, -1), keepdim=True), [big])
    ties = t([[1.0, 5.0, 5.0, -2.0], [7.0, -2.0, 7.0, -2.0], [0.0, 0.0, 0.0, 0.0]])
    case(f, "argmax_axis1", lambda v: torch.argmax(v, 1).double(), [ties], grads=[])
    case(f, "argmin_axis1", lambda v: torch.argmin(v, 1).double(), [ties], grads=[])
    case(f, "argmax_axis0_keep", lambda v: torch.argmax(v, 0, keepdim=True).double(), [ties], grads=[])
    case(f, "argmin_flat", lambda v: torch.argmin(v).double(), [ties], grads=[])


def shapes_group(f):
    x = rand(2, 3, 4)
    case(f, "squeeze_unsqueeze", lambda v: torch.unsqueeze(torch.squeeze(v, 2), 1) * 2.0, [rand(1, 3, 1, 2)])
    case(f, "flip_0_2", lambda v: torch.flip(v, (0, 2)) * v, [x])
    case(f, "pad", lambda v: F.pad(v, (1, 3, 2, 0, 0, 1), value=0.5) ** 2, [x])
    case(f, "slice_step", lambda v: v[:, 1:7:2] * v[:, 0:6:2], [rand(4, 7, 3)])
    idx = torch.tensor([[[2, 0, 1, 1, 3], [0, 0, 3, 2, 1]], [[1, 1, 1, 0, 2], [3, 2, 1, 0, 0]], [[0, 3, 2, 2, 1], [1, 0, 0, 3, 3]]])
    case(f, "gather_axis1", lambda v: torch.gather(v, 1, idx) ** 2, [rand(3, 4, 5)], ints=idx.reshape(-1).tolist())
    sel = torch.tensor([1, 0, 1, 3])
    case(f, "index_select_axis_m1", lambda v: torch.index_select(v, -1, sel) ** 2, [x], ints=sel.tolist())


def losses_group(f):
    x = rand(5, 4, lo=-3, hi=3)
    lab = torch.tensor([1, 0, 3, 2, 1])
    w = t([0.3, 1.0, 2.5, 0.7])
    L = lab.tolist()
    case(f, "ce_weight", lambda v: F.cross_entropy(v, lab, weight=w), [x], ints=L)
    case(f, "ce_ignore", lambda v: F.cross_entropy(v, lab, ignore_index=2), [x], ints=L)
    case(f, "ce_smoothing", lambda v: F.cross_entropy(v, lab, label_smoothing=0.1), [x], ints=L)
    case(f, "ce_smoothing_ignore", lambda v: F.cross_entropy(v, lab, ignore_index=1, label_smoothing=0.3), [x], ints=L)
    case(f, "ce_smoothing_weight_ignore", lambda v: F.cross_entropy(v, lab, weight=w, ignore_index=3, label_smoothing=0.2),
         [x], ints=L)
    case(f, "ce_smoothing_weight_sum", lambda v: F.cross_entropy(v, lab, weight=w, label_smoothing=0.2, reduction="sum"),
         [x], ints=L)
    x3 = rand(2, 4, 3, lo=-3, hi=3)
    x3[0, 1, 2] = 1000.0
    x3[1, 0, 0] = -1000.0
    lab3 = torch.tensor([[0, 3, 1], [2, 2, 0]])
    case(f, "ce_3d_none_smoothing", lambda v: F.cross_entropy(v, lab3, reduction="none", label_smoothing=0.05), [x3],
         ints=lab3.reshape(-1).tolist())
    x4 = rand(2, 3, 2, 2, lo=-2, hi=2)
    lab4 = torch.tensor([[[0, 2], [1, 1]], [[2, 0], [0, 1]]])
    case(f, "ce_4d_weight_ignore", lambda v: F.cross_entropy(v, lab4, weight=t([0.5, 2.0, 1.5]), ignore_index=0), [x4],
         ints=lab4.reshape(-1).tolist())
    case(f, "nll_weight_ignore", lambda v: F.nll_loss(v, lab, weight=w, ignore_index=1), [x], ints=L)
    case(f, "nll_3d_none", lambda v: F.nll_loss(v, lab3, reduction="none"), [x3], ints=lab3.reshape(-1).tolist())
    p = rand(3, 4, lo=0.02, hi=0.98)
    tg = rand(3, 4, lo=0.0, hi=1.0)
    tg[0, 0], tg[1, 1] = 0.0, 1.0
    case(f, "bce_probs", lambda a, b: F.binary_cross_entropy(a, b), [p, tg])
    case(f, "bce_probs_none", lambda a, b: F.binary_cross_entropy(a, b, reduction="none"), [p, tg])
    z = rand(3, 4, lo=-4, hi=4)
    z[0, 0], z[0, 1], z[2, 3] = 1000.0, -1000.0, 0.0
    pw = t([0.5, 1.0, 2.0, 3.5])
    case(f, "bce_logits_pos_weight", lambda a, b, c: F.binary_cross_entropy_with_logits(a, b, pos_weight=c), [z, tg, pw], grads=[0, 1])
    case(f, "bce_logits_pos_weight_sum", lambda a, b, c: F.binary_cross_entropy_with_logits(a, b, pos_weight=c, reduction="sum"),
         [z, tg, pw], grads=[0, 1])
    lp = torch.log_softmax(rand(3, 5, lo=-2, hi=2), 1)
    q = torch.softmax(rand(3, 5, lo=-2, hi=2), 1)
    q[1, 2] = 0.0
    # torch's slope in a zero target is log(0) + 1 - x = -inf (tapegrad gives 0 there), so with the zero
    # target only the input's gradient is compared; kl_div_batchmean checks the target's elsewhere
    case(f, "kl_div_mean", lambda a, b: F.kl_div(a, b, reduction="mean"), [lp, q], grads=[0])
    case(f, "kl_div_none", lambda a, b: F.kl_div(a, b, reduction="none"), [lp, q], grads=[0])
    q2 = torch.softmax(rand(3, 5, lo=-2, hi=2), 1)
    case(f, "kl_div_batchmean", lambda a, b: F.kl_div(a, b, reduction="batchmean"), [lp, q2])
    case(f, "kl_div_log_target_sum", lambda a, b: F.kl_div(a, b, reduction="sum", log_target=True), [lp, torch.log_softmax(q, 1)])
    pr = rand(4, 3, lo=-3, hi=3)
    ta = rand(4, 3, lo=-3, hi=3)
    case(f, "smooth_l1", lambda a, b: F.smooth_l1_loss(a, b), [pr, ta])
    case(f, "smooth_l1_beta_half_sum", lambda a, b: F.smooth_l1_loss(a, b, beta=0.5, reduction="sum"), [pr, ta])
    case(f, "smooth_l1_beta_0_none", lambda a, b: F.smooth_l1_loss(a, b, beta=0.0, reduction="none"), [pr, ta])


def matmul_group(f):
    T = lambda v: v.transpose(-1, -2)
    case(f, "mm_vec_vec", torch.matmul, [rand(5), rand(5)])
    case(f, "mm_mat_vec", torch.matmul, [rand(2, 3, 4), rand(4)])
    case(f, "mm_vec_nd", torch.matmul, [rand(3), rand(2, 3, 4)])
    case(f, "mm_attention", torch.matmul, [rand(2, 3, 4, 5), rand(2, 3, 5, 4)])
    case(f, "mm_q_kT", lambda q, k: torch.matmul(q, T(k)), [rand(2, 3, 4, 5), rand(2, 3, 4, 5)])
    case(f, "mm_broadcast", torch.matmul, [rand(2, 1, 4, 3), rand(5, 3, 2)])
    case(f, "mm_2d_3d", torch.matmul, [rand(3, 4), rand(2, 4, 5)])
    case(f, "mm_ta_tb", lambda a, b: torch.matmul(T(a), T(b)), [rand(2, 2, 3, 4), rand(4, 3)])


def conv_group(f):
    """Issue #12: conv2d, pooling, flatten; its own generator, so the other groups stay as they are."""
    global GEN
    GEN = torch.Generator().manual_seed(20261202)
    x = rand(2, 3, 7, 6)
    case(f, "conv_basic", lambda a, w, b: F.conv2d(a, w, b), [x, rand(4, 3, 3, 3), rand(4)])
    case(f, "conv_stride2_pad1", lambda a, w, b: F.conv2d(a, w, b, stride=2, padding=1), [x, rand(5, 3, 3, 3), rand(5)])
    case(f, "conv_stride_2x1_pad_1x2", lambda a, w: F.conv2d(a, w, stride=(2, 1), padding=(1, 2)), [x, rand(2, 3, 2, 3)])
    case(f, "conv_dilation2", lambda a, w, b: F.conv2d(a, w, b, dilation=2, padding=2), [x, rand(4, 3, 3, 3), rand(4)])
    case(f, "conv_groups3", lambda a, w, b: F.conv2d(a, w, b, groups=3, padding=1), [rand(2, 6, 5, 5), rand(9, 2, 3, 3), rand(9)])
    case(f, "conv_depthwise", lambda a, w: F.conv2d(a, w, groups=4, stride=2), [rand(1, 4, 6, 7), rand(4, 1, 3, 2)])
    case(f, "conv_same_odd", lambda a, w: F.conv2d(a, w, padding="same"), [x, rand(2, 3, 3, 5)])
    case(f, "conv_same_even_dilated", lambda a, w: F.conv2d(a, w, padding="same", dilation=(1, 2)), [x, rand(2, 3, 4, 2)])
    case(f, "conv_1x1", lambda a, w: F.conv2d(a, w), [x, rand(5, 3, 1, 1)])
    case(f, "conv_extremes", lambda a, w: F.conv2d(a, w, padding=1),
         [t([[[[1000.0, -1000.0, 0.0], [0.0, 0.0, 0.0], [-1000.0, 1000.0, 0.5]]]]), rand(2, 1, 2, 2)])
    case(f, "max_pool_2", lambda a: F.max_pool2d(a, 2), [x])
    case(f, "max_pool_3_s2_p1", lambda a: F.max_pool2d(a, 3, stride=2, padding=1), [x])
    case(f, "max_pool_2x3_s1", lambda a: F.max_pool2d(a, (2, 3), stride=1), [x])
    # ties: equal values in a window; the gradient goes to the first in row-major order
    ties = t([[[[1.0, 1.0, 0.0, 2.0], [1.0, 0.5, 2.0, 2.0], [-1.0, -1.0, 3.0, 3.0], [-1.0, -1.0, 3.0, 3.0]]]])
    case(f, "max_pool_ties", lambda a: F.max_pool2d(a, 2), [ties])
    case(f, "max_pool_ties_overlap", lambda a: F.max_pool2d(a, 2, stride=1), [ties])
    case(f, "avg_pool_2", lambda a: F.avg_pool2d(a, 2), [x])
    case(f, "avg_pool_3_s2_p1", lambda a: F.avg_pool2d(a, 3, stride=2, padding=1), [x])
    case(f, "adaptive_avg_1x1", lambda a: F.adaptive_avg_pool2d(a, 1), [x])
    case(f, "flatten", lambda a: torch.flatten(a, 1), [x])
    case(f, "conv_pool_net", lambda a, w1, b1, w2: torch.flatten(
        F.max_pool2d(torch.relu(F.conv2d(torch.tanh(F.conv2d(a, w1, b1, padding=1)), w2, stride=1)), 2), 1),
         [rand(2, 1, 8, 8), rand(3, 1, 3, 3), rand(3), rand(4, 3, 3, 3)])


def nn_conv_group(f):
    """Issue #12: BatchNorm2d (training and eval) for nn/conv_layers; reseeded, so it is the same whichever groups run."""
    GEN.manual_seed(20261202)
    x = rand(3, 2, 4, 5)
    w, b = rand(2, lo=0.5, hi=1.5), rand(2)
    train = lambda a, g, c: F.batch_norm(a, None, None, g, c, training=True, eps=1e-5)
    case(f, "bn2d_train", train, [x, w, b])
    case(f, "bn2d_train_no_affine", lambda a: F.batch_norm(a, None, None, training=True, eps=1e-5), [x])
    # +-1000 in one channel, a constant channel (variance 0: the output is 0, scaled by 1/sqrt(eps) in the gradient)
    ext = rand(2, 2, 3, 3)
    ext[:, 0] = t([[1000.0, -1000.0, 0.0], [0.0, 1000.0, -1000.0], [0.5, 0.0, -0.5]])
    ext[:, 1] = 0.25
    case(f, "bn2d_train_extremes", train, [ext, w, b])
    rm, rv = rand(2), rand(2, lo=0.5, hi=2.0)
    case(f, "bn2d_eval", lambda a, g, c, m, v: F.batch_norm(a, m, v, g, c, training=False, eps=1e-5),
         [x, w, b, rm, rv], grads=[0, 1, 2])
    # the running statistics after one training step from (0, 1), momentum 0.1: [mean..., var...]
    def running(a):
        m, v = torch.zeros(2), torch.ones(2)
        F.batch_norm(a, m, v, training=True, momentum=0.1, eps=1e-5)
        return torch.cat([m, v])
    case(f, "bn2d_running", running, [x], grads=[])


def write(group, fill):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, group + ".txt")
    with open(path, "w") as f:
        header(f, group)
        fill(f)
    print("wrote", os.path.relpath(path))


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["nn_conv"]:  # python3 scripts/make_op_fixtures.py nn_conv
        write("nn_conv", nn_conv_group)
        sys.exit(0)
    if sys.argv[1:] == ["conv"]:  # only the conv group (python3 scripts/make_op_fixtures.py conv)
        write("conv", conv_group)
        sys.exit(0)
    write("math", math_group)
    write("activations", activations_group)
    write("stats", stats_group)
    write("shapes", shapes_group)
    write("losses", losses_group)
    write("matmul", matmul_group)
    write("conv", conv_group)
    write("nn_conv", nn_conv_group)
