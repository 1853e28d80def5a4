// Loss modules give the core losses' values, with their reductions.

#include <cmath>

#include <doctest/doctest.h>

#include "nn/losses.hpp"
#include "tests/check.hpp"

using namespace tapegrad;

TEST_CASE("loss modules compute the closed forms") {
    const tensor<double> pred(xt::xarray<double>{{0.5, -1.0}, {2.0, 0.0}});
    const tensor<double> target(xt::xarray<double>{{1.0, -1.0}, {0.0, 0.5}});
    // differences: -0.5, 0, 2, -0.5
    CHECK(nn::mse_loss<double>()(pred, target).item() == doctest::Approx((0.25 + 0 + 4 + 0.25) / 4));
    CHECK(nn::mse_loss<double>(reduction::sum)(pred, target).item() == doctest::Approx(4.5));
    CHECK(nn::l1_loss<double>()(pred, target).item() == doctest::Approx(3.0 / 4));
    // huber, delta 1: 0.125, 0, 1.5, 0.125
    CHECK(nn::huber_loss<double>()(pred, target).item() == doctest::Approx(1.75 / 4));
    CHECK(nn::mse_loss<double>(reduction::none)(pred, target).shape() == shape_t{2, 2});

    const tensor<double> logits(xt::xarray<double>{{1.0, 2.0, 0.5}, {0.0, -1.0, 3.0}});
    const std::vector<std::size_t> labels{1, 2};
    auto lse = [](double a, double b, double c) { return std::log(std::exp(a) + std::exp(b) + std::exp(c)); };
    const double ce = ((lse(1, 2, 0.5) - 2) + (lse(0, -1, 3) - 3)) / 2;
    CHECK(nn::cross_entropy_loss<double>()(logits, labels).item() == doctest::Approx(ce));
    const tensor<double> onehot(xt::xarray<double>{{0, 1, 0}, {0, 0, 1}});
    CHECK(nn::cross_entropy_loss<double>()(logits, onehot).item() == doctest::Approx(ce));
    CHECK(nn::nll_loss<double>()(log_softmax(logits, 1), labels).item() == doctest::Approx(ce));

    const tensor<double> z(xt::xarray<double>{0.3, -2.0}), y(xt::xarray<double>{1.0, 0.0});
    const double bce = (std::log1p(std::exp(-0.3)) + std::log1p(std::exp(-2.0))) / 2;
    CHECK(nn::bce_with_logits_loss<double>()(z, y).item() == doctest::Approx(bce));
    CHECK(nn::cross_entropy_loss<double>().type_name() == "CrossEntropyLoss");
    reset_tape<double>();
}

TEST_CASE("loss modules are differentiable (gradcheck)") {
    nn::huber_loss<double> huber(0.7);
    testing::expect_grads([&](const std::vector<tensor<double>>& in) { return huber(in[0], in[1]); },
                          {testing::uniform({3, 4}, -2, 2, 1), testing::uniform({3, 4}, -2, 2, 2)});
    nn::cross_entropy_loss<double> ce;
    testing::expect_grads([&](const std::vector<tensor<double>>& in) { return ce(in[0], {0, 2, 1}); },
                          {testing::uniform({3, 4}, -2, 2, 3)});
}
