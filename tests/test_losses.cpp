// Losses: closed-form values, reductions, gradcheck, and bad targets.

#include <cmath>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;

TEST_CASE("mse, l1 and huber match their closed forms for each reduction") {
    xarray<double> p{{0.5, -1.0}, {2.0, 0.0}}, t{{0.0, 1.0}, {0.5, 0.0}};
    tensor<double> tp(p), tt(t);
    // differences 0.5, -2, 1.5, 0
    CHECK(mse(tp, tt).item() == doctest::Approx((0.25 + 4 + 2.25) / 4));
    CHECK(mse(tp, tt, reduction::sum).item() == doctest::Approx(6.5));
    CHECK(mse(tp, tt, reduction::none).value() == xarray<double>{{0.25, 4}, {2.25, 0}});
    CHECK(l1(tp, tt).item() == doctest::Approx(4.0 / 4));
    // huber delta 1: 0.5*0.25, 1*(2-0.5), 1*(1.5-0.5), 0
    CHECK(huber(tp, tt, 1.0, reduction::sum).item() == doctest::Approx(0.125 + 1.5 + 1.0));
    xarray<double> a = uniform({3, 4}, -2, 2, 1), b = uniform({3, 4}, -2, 2, 2);
    for (auto r : {reduction::mean, reduction::sum, reduction::none}) {
        expect_grads([r](const args& x) { return mse(x[0], x[1], r); }, {a, b}, true);
        expect_grads([r](const args& x) { return l1(x[0], x[1], r); }, {a, b});
        expect_grads([r](const args& x) { return huber(x[0], x[1], 0.7, r); }, {a, b}, true);
    }
}

TEST_CASE("cross_entropy with class labels equals nll of log_softmax and the closed form") {
    xarray<double> z = uniform({4, 5}, -3, 3, 3);
    std::vector<std::size_t> y{0, 4, 2, 2};
    double expected = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        double s = 0;
        for (std::size_t j = 0; j < 5; ++j) s += std::exp(z(i, j));
        expected += std::log(s) - z(i, y[i]);
    }
    tensor<double> tz(z);
    CHECK(cross_entropy(tz, y).item() == doctest::Approx(expected / 4));
    CHECK(cross_entropy(tz, y, reduction::sum).item() == doctest::Approx(expected));
    CHECK(nll(log_softmax(tz, 1), y).item() == doctest::Approx(expected / 4));
    for (auto r : {reduction::mean, reduction::sum, reduction::none}) {
        expect_grads([y, r](const args& x) { return cross_entropy(x[0], y, r); }, {z}, true);
        expect_grads([y, r](const args& x) { return nll(x[0], y, r); }, {z}, true);
    }
    // gradient is (softmax - onehot) / N
    tensor<double> w(z, true);
    cross_entropy(w, y).backward();
    auto p = softmax(tensor<double>(z), 1).value();
    CHECK(w.grad()(1, 4) == doctest::Approx((p(1, 4) - 1) / 4));
    CHECK(w.grad()(1, 0) == doctest::Approx(p(1, 0) / 4));
}

TEST_CASE("mse and cross_entropy are one fused node each and match their composite forms") {
    xarray<double> z = uniform({3, 6}, -4, 4, 11);
    xarray<double> t = uniform({3, 6}, 0, 1, 12);
    std::vector<std::size_t> y{5, 0, 3};
    for (auto r : {reduction::mean, reduction::sum}) {
        tensor<double> a(z, true), b(z, true);
        tape<double>::current().reset();
        tensor<double> fused = mse(a, tensor<double>(t), r);
        CHECK(tape<double>::current().size() == 1);
        CHECK(std::string(fused.op_name()) == "mse");
        tensor<double> d = b - tensor<double>(t);
        tensor<double> composite = r == reduction::mean ? mean(d * d) : sum(d * d);
        CHECK(fused.item() == doctest::Approx(composite.item()).epsilon(1e-14));
        fused.backward();
        composite.backward();
        CHECK(xt::allclose(a.grad(), b.grad(), 1e-14, 1e-15));

        tensor<double> c(z, true), e(z, true);
        tape<double>::current().reset();
        tensor<double> ce = cross_entropy(c, y, r);
        CHECK(tape<double>::current().size() == 1);
        tensor<double> ref = nll(log_softmax(e, 1), y, reduction::sum);
        if (r == reduction::mean) ref = ref * (1.0 / 3);
        CHECK(ce.item() == doctest::Approx(ref.item()).epsilon(1e-14));
        ce.backward();
        ref.backward();
        CHECK(xt::allclose(c.grad(), e.grad(), 1e-14, 1e-15));
    }
    // large logits stay finite in float32, and inference (no_grad) gives the same value
    tensor<float> big(xarray<float>{{1000.f, 990.f, -1000.f}, {-1000.f, -1000.f, -990.f}}, true);
    const std::vector<std::size_t> labels{0, 2};
    const float recorded = cross_entropy(big, labels).item();
    CHECK(recorded == doctest::Approx((std::log1p(std::exp(-10.f)) + std::log1p(2 * std::exp(-10.f))) / 2));
    no_grad quiet;
    CHECK(cross_entropy(big, labels).item() == recorded);
}

TEST_CASE("cross_entropy adds into a gradient its logits already hold") {
    // z feeds two losses and a sum: its second and third contributions add into its buffer
    xarray<double> z = uniform({3, 4}, -5, 5, 21);
    const std::vector<std::size_t> y{3, 0, 3}, y2{1, 1, 2};
    expect_grads([&](const args& x) { return cross_entropy(x[0], y) + cross_entropy(x[0], y2, reduction::sum) + sum(x[0]); },
                 {z}, true);
    tensor<double> w(z, true);
    (cross_entropy(w, y) + mul_scalar(cross_entropy(w, y2, reduction::sum), 2.0)).backward();
    const auto p = softmax(tensor<double>(z), 1).value();
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 4; ++j) {
            const double expected = (p(i, j) - (j == y[i])) / 3 + 2 * (p(i, j) - (j == y2[i]));
            CHECK(w.grad()(i, j) == doctest::Approx(expected).epsilon(1e-13));
        }
}

TEST_CASE("cross_entropy with probability targets") {
    xarray<double> z = uniform({3, 4}, -2, 2, 4);
    xarray<double> q = softmax(tensor<double>(uniform({3, 4}, -1, 1, 5)), 1).value();
    tensor<double> onehot(xarray<double>{{0, 1, 0, 0}, {0, 0, 0, 1}, {1, 0, 0, 0}});
    CHECK(cross_entropy(tensor<double>(z), onehot).item() ==
          doctest::Approx(cross_entropy(tensor<double>(z), std::vector<std::size_t>{1, 3, 0}).item()));
    expect_grads([](const args& x) { return cross_entropy(x[0], x[1]); }, {z, q}, true);
}

TEST_CASE("binary cross-entropy with logits is stable") {
    xarray<double> z = uniform({5}, -4, 4, 6), t = uniform({5}, 0, 1, 7);
    tensor<double> tz(z), tt(t);
    double expected = 0;
    for (std::size_t i = 0; i < 5; ++i) {
        double s = 1 / (1 + std::exp(-z(i)));
        expected -= t(i) * std::log(s) + (1 - t(i)) * std::log(1 - s);
    }
    CHECK(bce_with_logits(tz, tt, reduction::sum).item() == doctest::Approx(expected));
    expect_grads([](const args& x) { return bce_with_logits(x[0], x[1]); }, {z, t}, true);
    tensor<float> huge(xarray<float>{1000.f, -1000.f}), target(xarray<float>{0.f, 1.f});
    auto l = bce_with_logits(huge, target, reduction::none).value();
    CHECK(l(0) == doctest::Approx(1000.f));
    CHECK(l(1) == doctest::Approx(1000.f));
}

TEST_CASE("loss target errors name the loss, the shapes and the bad label") {
    tensor<double> z(xarray<double>::from_shape({2, 3})), t(xarray<double>::from_shape({3, 2}));
    CHECK_THROWS_WITH_AS(mse(z, t), doctest::Contains("mse: prediction shape [2, 3] and target shape [3, 2] differ"),
                         shape_error);
    CHECK_THROWS_WITH_AS(cross_entropy(z, std::vector<std::size_t>{0, 3}),
                         doctest::Contains("label 3 at row 1 is out of range for 3 classes"), std::out_of_range);
    CHECK_THROWS_WITH_AS(nll(z, std::vector<std::size_t>{0}), doctest::Contains("1 labels for scores of shape [2, 3]"),
                         shape_error);
    CHECK_THROWS_AS(huber(z, z, -1.0), std::invalid_argument);
}
