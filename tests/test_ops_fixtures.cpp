// The issue #9 ops and losses against torch 1.13.1 in float64: values and
// gradients to 1e-10, from tests/fixtures/ops/ (scripts/make_op_fixtures.py).

#include <cmath>
#include <limits>

#include <doctest/doctest.h>
#include <xtensor/xadapt.hpp>

#include "autograd/ops.hpp"
#include "tests/op_fixtures.hpp"

using namespace tapegrad;
using tapegrad::testing::check_op_fixtures;
using tapegrad::testing::fixture_fn;
using args = std::vector<tensor<double>>;
using ints = std::vector<std::size_t>;
using fns = std::map<std::string, fixture_fn>;

namespace {
template <class F> fixture_fn un(F f) {
    return [f](const args& x, const ints&) { return f(x[0]); };
}
const double inf = std::numeric_limits<double>::infinity();
}  // namespace

TEST_CASE("torch fixtures: elementwise math and comparisons") {
    fns f = {
        {"sin", un([](auto& x) { return tapegrad::sin(x); })},
        {"cos", un([](auto& x) { return tapegrad::cos(x); })},
        {"sin_cos_product", [](const args& x, const ints&) { return tapegrad::sin(x[0]) * tapegrad::cos(x[1]); }},
        {"log1p", un([](auto& x) { return tapegrad::log1p(x); })},
        {"expm1", un([](auto& x) { return tapegrad::expm1(x); })},
        {"rsqrt", un([](auto& x) { return rsqrt(x); })},
        {"clamp_min", un([](auto& x) { return clamp_min(x, 0.25); })},
        {"clamp_max", un([](auto& x) { return clamp_max(x, -0.2); })},
    };
    using cmp = tensor<double> (*)(const tensor<double>&, const tensor<double>&);
    for (auto [name, op] : std::vector<std::pair<const char*, cmp>>{
             {"eq", &eq<double>}, {"ne", &ne<double>}, {"lt", &lt<double>}, {"le", &le<double>}, {"gt", &gt<double>}, {"ge", &ge<double>}})
        f[std::string("mask_") + name] = [op = op](const args& x, const ints&) {
            tensor<double> m = op(x[0], x[1]);
            return m * x[0] + (1.0 - m) * x[1] * x[1];
        };
    check_op_fixtures("math", f);
}

TEST_CASE("torch fixtures: activations") {
    check_op_fixtures("activations", {
        {"silu", un([](auto& x) { return silu(x); })},
        {"mish", un([](auto& x) { return mish(x); })},
        {"logsigmoid", un([](auto& x) { return logsigmoid(x); })},
        {"hardtanh", un([](auto& x) { return hardtanh(x); })},
        {"hardtanh_bounds", un([](auto& x) { return hardtanh(x, -0.5, 2.0); })},
        {"selu", un([](auto& x) { return selu(x); })},
    });
}

TEST_CASE("torch fixtures: reductions and statistics") {
    check_op_fixtures("stats", {
        {"prod_all", un([](auto& x) { return prod(x); })},
        {"prod_axis1", un([](auto& x) { return prod(x, {1}); })},
        {"prod_zeros_axis_m1", un([](auto& x) { return prod(x, {-1}); })},
        {"var_all", un([](auto& x) { return var(x); })},
        {"var_axes_0_2_corr0", un([](auto& x) { return var(x, {0, 2}, 0); })},
        {"var_axis_m1_keep", un([](auto& x) { return var(x, {-1}, 1, true); })},
        {"std_axis1", un([](auto& x) { return std_dev(x, {1}); })},
        {"std_axes_0_1_corr0_keep", un([](auto& x) { return std_dev(x, {0, 1}, 0, true); })},
        {"norm2_all", un([](auto& x) { return norm(x); })},
        {"norm2_axis_m1", un([](auto& x) { return norm(x, 2, {-1}); })},
        {"norm1_axes_0_2", un([](auto& x) { return norm(x, 1, {0, 2}); })},
        {"norminf_axis1_keep", un([](auto& x) { return norm(x, inf, {1}, true); })},
        {"norminf_ties", un([](auto& x) { return norm(x, inf, {1}); })},
        {"cumsum_axis0", un([](auto& x) { return cumsum(x, 0); })},
        {"cumsum_axis_m1", un([](auto& x) { return cumsum(x, -1); })},
        {"logsumexp_axes_1_2", un([](auto& x) { return logsumexp(x, {1, 2}); })},
        {"logsumexp_axes_0_m1_keep", un([](auto& x) { return logsumexp(x, {0, -1}, true); })},
        {"argmax_axis1", un([](auto& x) { return argmax(x, 1); })},
        {"argmin_axis1", un([](auto& x) { return argmin(x, 1); })},
        {"argmax_axis0_keep", un([](auto& x) { return argmax(x, 0, true); })},
        {"argmin_flat", un([](auto& x) { return argmin(x); })},
    });
}

TEST_CASE("torch fixtures: shape ops") {
    check_op_fixtures("shapes", {
        {"squeeze_unsqueeze", un([](auto& x) { return unsqueeze(squeeze(x, {2}), 1) * 2.0; })},
        {"flip_0_2", un([](auto& x) { return flip(x, {0, 2}) * x; })},
        {"pad", un([](auto& x) {
             tensor<double> p = pad(x, {{0, 1}, {2, 0}, {1, 3}}, 0.5);
             return p * p;
         })},
        {"slice_step", un([](auto& x) { return slice(x, 1, 1, 7, 2) * slice(x, 1, 0, 6, 2); })},
        {"gather_axis1", [](const args& x, const ints& i) {
             xt::xarray<std::size_t> idx = xt::adapt(i, std::vector<std::size_t>{3, 2, 5});
             tensor<double> g = gather(x[0], 1, idx);
             return g * g;
         }},
        {"index_select_axis_m1", [](const args& x, const ints& i) {
             tensor<double> g = index_select(x[0], -1, i);
             return g * g;
         }},
    });
}

TEST_CASE("torch fixtures: losses") {
    const std::vector<double> w{0.3, 1.0, 2.5, 0.7};
    auto ce = [](class_loss_options o) {
        return fixture_fn([o](const args& x, const ints& l) { return cross_entropy(x[0], l, o); });
    };
    auto nl = [](class_loss_options o) {
        return fixture_fn([o](const args& x, const ints& l) { return nll(x[0], l, o); });
    };
    auto opts = [](std::vector<double> weight, long long ignore, double smoothing, reduction r) {
        class_loss_options o;
        o.weight = std::move(weight), o.ignore_index = ignore, o.label_smoothing = smoothing, o.r = r;
        return o;
    };
    auto kl = [](reduction r, bool batchmean, bool log_target) {
        kl_div_options o;
        o.r = r, o.batchmean = batchmean, o.log_target = log_target;
        return fixture_fn([o](const args& x, const ints&) { return kl_div(x[0], x[1], o); });
    };
    check_op_fixtures("losses", {
        {"ce_weight", ce(opts(w, -100, 0, reduction::mean))},
        {"ce_ignore", ce(opts({}, 2, 0, reduction::mean))},
        {"ce_smoothing", ce(opts({}, -100, 0.1, reduction::mean))},
        {"ce_smoothing_ignore", ce(opts({}, 1, 0.3, reduction::mean))},
        {"ce_smoothing_weight_ignore", ce(opts(w, 3, 0.2, reduction::mean))},
        {"ce_smoothing_weight_sum", ce(opts(w, -100, 0.2, reduction::sum))},
        {"ce_3d_none_smoothing", ce(opts({}, -100, 0.05, reduction::none))},
        {"ce_4d_weight_ignore", ce(opts({0.5, 2.0, 1.5}, 0, 0, reduction::mean))},
        {"nll_weight_ignore", nl(opts(w, 1, 0, reduction::mean))},
        {"nll_3d_none", nl(opts({}, -100, 0, reduction::none))},
        {"bce_probs", [](const args& x, const ints&) { return binary_cross_entropy(x[0], x[1]); }},
        {"bce_probs_none", [](const args& x, const ints&) { return binary_cross_entropy(x[0], x[1], reduction::none); }},
        {"bce_logits_pos_weight", [](const args& x, const ints&) { return bce_with_logits(x[0], x[1], x[2]); }},
        {"bce_logits_pos_weight_sum", [](const args& x, const ints&) { return bce_with_logits(x[0], x[1], x[2], reduction::sum); }},
        {"kl_div_mean", kl(reduction::mean, false, false)},
        {"kl_div_batchmean", kl(reduction::mean, true, false)},
        {"kl_div_none", kl(reduction::none, false, false)},
        {"kl_div_log_target_sum", kl(reduction::sum, false, true)},
        {"smooth_l1", [](const args& x, const ints&) { return smooth_l1(x[0], x[1]); }},
        {"smooth_l1_beta_half_sum", [](const args& x, const ints&) { return smooth_l1(x[0], x[1], 0.5, reduction::sum); }},
        {"smooth_l1_beta_0_none", [](const args& x, const ints&) { return smooth_l1(x[0], x[1], 0.0, reduction::none); }},
    });
}

TEST_CASE("torch fixtures: matmul with vectors and broadcast batch axes") {
    auto mm = [](bool ta, bool tb) {
        return fixture_fn([ta, tb](const args& x, const ints&) { return matmul(x[0], x[1], ta, tb); });
    };
    check_op_fixtures("matmul", {
        {"mm_vec_vec", mm(false, false)},
        {"mm_mat_vec", mm(false, false)},
        {"mm_vec_nd", mm(false, false)},
        {"mm_attention", mm(false, false)},
        {"mm_q_kT", mm(false, true)},
        {"mm_broadcast", mm(false, false)},
        {"mm_2d_3d", mm(false, false)},
        {"mm_ta_tb", mm(true, true)},
    });
}
