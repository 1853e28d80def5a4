// The losses of issue #9: cross_entropy/nll with class weights, ignore_index,
// label smoothing and N-D inputs; binary_cross_entropy; bce_with_logits with
// pos_weight; kl_div; smooth_l1. gradcheck + gradgradcheck, closed forms, extremes
// and errors (values against torch are in test_ops_fixtures.cpp).

#include <cmath>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;
using labels_t = std::vector<std::size_t>;

namespace {
class_loss_options opts(std::vector<double> w, long long ignore, double smoothing, reduction r = reduction::mean) {
    class_loss_options o;
    o.weight = std::move(w), o.ignore_index = ignore, o.label_smoothing = smoothing, o.r = r;
    return o;
}
}  // namespace

TEST_CASE("cross_entropy with options: default options equal the plain overload") {
    xarray<double> x = uniform({4, 3}, -2, 2, 401);
    labels_t l{0, 2, 1, 2};
    for (reduction r : {reduction::mean, reduction::sum, reduction::none}) {
        xarray<double> a = cross_entropy(tensor<double>(x), l, r).value();
        xarray<double> b = cross_entropy(tensor<double>(x), l, opts({}, -100, 0, r)).value();
        CHECK(xt::allclose(a, b, 1e-14, 0));
    }
}

TEST_CASE("cross_entropy: weights, ignore_index and smoothing, gradcheck and gradgradcheck") {
    xarray<double> x = uniform({5, 4}, -2, 2, 411);
    labels_t l{1, 0, 3, 2, 1};
    const std::vector<class_loss_options> cases = {
        opts({0.3, 1.0, 2.5, 0.7}, -100, 0), opts({}, 2, 0), opts({}, -100, 0.1), opts({0.3, 1.0, 2.5, 0.7}, 3, 0.2),
        opts({}, 1, 0.3, reduction::sum), opts({0.3, 1.0, 2.5, 0.7}, 0, 0.4, reduction::none)};
    for (const auto& o : cases) expect_grads([l, o](const args& t) { return cross_entropy(t[0], l, o); }, {x}, true);
    // ignored rows get no gradient at all
    tensor<double> w(x, true);
    cross_entropy(w, l, opts({}, 1, 0.2)).backward();
    for (std::size_t c = 0; c < 4; ++c) {
        CHECK(w.grad()(0, c) == 0.0);
        CHECK(w.grad()(4, c) == 0.0);
    }
    // closed form: one row, uniform logits, smoothing e: loss = log C whatever e
    CHECK(cross_entropy(tensor<double>(xt::zeros<double>({1, 4})), labels_t{2}, opts({}, -100, 0.3)).item() ==
          doctest::Approx(std::log(4.0)));
}

TEST_CASE("cross_entropy and nll on [N, C, d1, d2] inputs, classes on axis 1") {
    xarray<double> x = uniform({2, 3, 2, 2}, -2, 2, 421);
    labels_t l{0, 2, 1, 1, 2, 0, 0, 1};
    auto none = cross_entropy(tensor<double>(x), l, opts({}, -100, 0, reduction::none));
    CHECK(none.shape() == shape_t{2, 2, 2});
    // position (n=1, i=0, j=1) with label 0: logsumexp over classes minus x[1, 0, 0, 1]
    double m = std::log(std::exp(x(1, 0, 0, 1)) + std::exp(x(1, 1, 0, 1)) + std::exp(x(1, 2, 0, 1)));
    CHECK(none.value()(1, 0, 1) == doctest::Approx(m - x(1, 0, 0, 1)));
    expect_grads([l](const args& t) { return cross_entropy(t[0], l, opts({0.5, 2.0, 1.5}, 0, 0.1)); }, {x}, true);
    expect_grads([l](const args& t) { return nll(t[0], l, opts({0.5, 2.0, 1.5}, 2, 0, reduction::sum)); }, {x}, true);
    // +-1000 logits stay finite
    x(0, 1, 0, 0) = 1000, x(1, 2, 1, 1) = -1000;
    CHECK(std::isfinite(cross_entropy(tensor<double>(x), l, opts({}, -100, 0.1)).item()));
}

TEST_CASE("cross_entropy and nll errors name the op and the sizes") {
    tensor<double> x(uniform({2, 3, 4}, -1, 1, 431));
    CHECK_THROWS_WITH_AS(cross_entropy(x, labels_t{0, 1}, opts({}, -100, 0)),
                         doctest::Contains("cross_entropy: 2 labels for scores of shape [2, 3, 4]"), shape_error);
    CHECK_THROWS_WITH_AS(nll(x, labels_t(8, 0), opts({1, 2}, -100, 0)), doctest::Contains("nll: 2 class weights for 3 classes"),
                         shape_error);
    CHECK_THROWS_WITH_AS(cross_entropy(x, labels_t(8, 3), opts({}, -100, 0)),
                         doctest::Contains("cross_entropy: label 3 at position 0 is out of range for 3 classes"),
                         std::out_of_range);
    CHECK_THROWS_WITH_AS(cross_entropy(x, labels_t(8, 0), opts({}, -100, 1.5)),
                         doctest::Contains("label_smoothing must be in [0, 1]"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(nll(x, labels_t(8, 0), opts({}, -100, 0.1)), doctest::Contains("nll: label_smoothing"),
                         std::invalid_argument);
    // every label ignored: mean is 0 / 0 = NaN, as PyTorch
    CHECK(std::isnan(cross_entropy(x, labels_t(8, 1), opts({}, 1, 0)).item()));
}

TEST_CASE("binary_cross_entropy on probabilities") {
    xarray<double> p = uniform({3, 4}, 0.05, 0.95, 441), t = uniform({3, 4}, 0, 1, 442);
    expect_grads([](const args& a) { return binary_cross_entropy(a[0], a[1]); }, {p, t}, true);
    expect_grads([](const args& a) { return binary_cross_entropy(a[0], a[1], reduction::sum); }, {p, t}, true);
    CHECK(binary_cross_entropy(tensor<double>::scalar(0.25), tensor<double>::scalar(1.0)).item() ==
          doctest::Approx(-std::log(0.25)));
    // p = 0 or 1 against the wrong target: each log clamped at -100, finite slopes
    tensor<double> q(xarray<double>{0.0, 1.0}, true);
    auto loss = binary_cross_entropy(q, tensor<double>(xarray<double>{1.0, 0.0}), reduction::sum);
    CHECK(loss.item() == doctest::Approx(200.0));
    loss.backward();
    CHECK(std::isfinite(q.grad()(0)));
    CHECK(std::isfinite(q.grad()(1)));
    CHECK_THROWS_WITH_AS(binary_cross_entropy(tensor<double>(xarray<double>{1.5}), tensor<double>(xarray<double>{1.0})),
                         doctest::Contains("binary_cross_entropy: probability 1.5"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(binary_cross_entropy(tensor<double>(p), tensor<double>(xarray<double>{1.0})),
                         doctest::Contains("binary_cross_entropy: prediction shape [3, 4] and target shape [1]"), shape_error);
}

TEST_CASE("bce_with_logits with pos_weight") {
    xarray<double> z = uniform({3, 4}, -4, 4, 451), t = uniform({3, 4}, 0, 1, 452);
    xarray<double> pw{0.5, 1.0, 2.0, 3.5};
    expect_grads([](const args& a) { return bce_with_logits(a[0], a[1], a[2]); }, {z, t, pw}, true);
    // pos_weight 1 is the plain loss
    CHECK(bce_with_logits(tensor<double>(z), tensor<double>(t), tensor<double>(xt::ones<double>({4}))).item() ==
          doctest::Approx(bce_with_logits(tensor<double>(z), tensor<double>(t)).item()).epsilon(1e-14));
    // closed form at z = 0: (1 + (pw - 1) t) log 2
    CHECK(bce_with_logits(tensor<double>::scalar(0.0), tensor<double>::scalar(1.0), tensor<double>::scalar(3.0)).item() ==
          doctest::Approx(3 * std::log(2.0)));
    // +-1000: finite value and slopes
    tensor<double> e(xarray<double>{1000.0, -1000.0}, true);
    auto l = bce_with_logits(e, tensor<double>(xarray<double>{0.0, 1.0}), tensor<double>(xarray<double>{2.0}), reduction::sum);
    CHECK(l.item() == doctest::Approx(1000.0 + 2000.0));
    l.backward();
    CHECK(e.grad() == xarray<double>{1.0, -2.0});
    CHECK_THROWS_WITH_AS(bce_with_logits(tensor<double>(z), tensor<double>(t), tensor<double>(xarray<double>{1.0, 2.0})),
                         doctest::Contains("bce_with_logits: shapes [3, 4] and [2] cannot be broadcast"), shape_error);
    CHECK_THROWS_WITH_AS(bce_with_logits(tensor<double>(z), tensor<double>(t), tensor<double>(xt::ones<double>({2, 3, 4}))),
                         doctest::Contains("pos_weight of shape [2, 3, 4] does not broadcast"), shape_error);
}

TEST_CASE("kl_div: reductions, log targets, zero targets") {
    xarray<double> x = uniform({3, 5}, -3, -0.1, 461), t = uniform({3, 5}, 0.05, 1, 462);
    kl_div_options mean, batch, none, logt;
    batch.batchmean = true;
    none.r = reduction::none;
    logt.log_target = true;
    logt.r = reduction::sum;
    for (const auto& o : {mean, batch, none})
        expect_grads([o](const args& a) { return kl_div(a[0], a[1], o); }, {x, t}, true);
    expect_grads([logt](const args& a) { return kl_div(a[0], a[1], logt); }, {x, xarray<double>(xt::log(t))}, true);
    // batchmean = sum / N; mean = sum / (N C)
    double s = kl_div(tensor<double>(x), tensor<double>(t), kl_div_options{reduction::sum, false, false}).item();
    CHECK(kl_div(tensor<double>(x), tensor<double>(t), batch).item() == doctest::Approx(s / 3));
    CHECK(kl_div(tensor<double>(x), tensor<double>(t)).item() == doctest::Approx(s / 15));
    // a zero target adds 0 and gives both slopes 0 there (no 0 log 0 = NaN)
    tensor<double> a(xarray<double>{-1.0, -2.0}, true), b(xarray<double>{0.0, 0.5}, true);
    auto l = kl_div(a, b, kl_div_options{reduction::sum, false, false});
    CHECK(l.item() == doctest::Approx(0.5 * (std::log(0.5) + 2.0)));
    l.backward();
    CHECK(a.grad() == xarray<double>{0.0, -0.5});
    CHECK(b.grad()(0) == 0.0);
    CHECK(b.grad()(1) == doctest::Approx(std::log(0.5) + 1 + 2));
    CHECK_THROWS_WITH_AS(kl_div(tensor<double>(x), tensor<double>(xarray<double>{1.0})), doctest::Contains("kl_div: prediction shape"),
                         shape_error);
}

TEST_CASE("smooth_l1: quadratic inside beta, linear outside, l1 at beta 0") {
    xarray<double> p = uniform({4, 3}, -3, 3, 471), t = uniform({4, 3}, -3, 3, 472);
    for (double beta : {1.0, 0.5})
        expect_grads([beta](const args& a) { return smooth_l1(a[0], a[1], beta); }, {p, t}, true);
    tensor<double> d(xarray<double>{0.2, -3.0, 1000.0});
    tensor<double> z = tensor<double>::zeros({3});
    CHECK(xt::allclose(smooth_l1(d, z, 0.5, reduction::none).value(), xarray<double>{0.04, 3.0 - 0.25, 1000.0 - 0.25}, 1e-15, 0));
    CHECK(smooth_l1(d, z, 0.0, reduction::none).value() == xarray<double>{0.2, 3.0, 1000.0});
    CHECK_THROWS_WITH_AS(smooth_l1(d, z, -1.0), doctest::Contains("smooth_l1: beta must be >= 0"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(smooth_l1(d, tensor<double>::zeros({2})), doctest::Contains("smooth_l1: prediction shape [3]"),
                         shape_error);
}
