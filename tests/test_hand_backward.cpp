// The article's output layer with a hand-written backward (formulas/hand_backward.hpp):
// the corrected delta3 passes its gradcheck and trains the article's network along
// the autodiff run's loss curve; the article's delta3 is refused, naming the term.

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "formulas/hand_backward.hpp"

using namespace tapegrad;
using formulas::delta3_form;

namespace {

xt::xarray<double> random_array(std::vector<std::size_t> shape, std::mt19937_64& rng, double scale) {
    std::normal_distribution<double> normal(0.0, scale);
    xt::xarray<double> a = xt::zeros<double>(shape);
    for (auto& v : a) v = normal(rng);
    return a;
}

xt::xarray<double> one_hot_rows(std::size_t rows, std::size_t classes, std::mt19937_64& rng) {
    xt::xarray<double> t = xt::zeros<double>({rows, classes});
    std::uniform_int_distribution<std::size_t> label(0, classes - 1);
    for (std::size_t i = 0; i < rows; ++i) t(i, label(rng)) = 1.0;
    return t;
}

// The article's network, rows as samples: softmax(tanh(x W1 + b1) W2 + b2), trained
// by plain gradient descent; returns the loss of every step.
std::vector<double> train_seed_net(bool hand, int steps) {
    std::mt19937_64 rng(7);
    const xt::xarray<double> x = random_array({32, 6}, rng, 1.0);
    const xt::xarray<double> t = one_hot_rows(32, 4, rng);
    std::vector<tensor<double>> p{tensor<double>(random_array({6, 5}, rng, 0.8), true),
                                  tensor<double>(random_array({1, 5}, rng, 0.1), true),
                                  tensor<double>(random_array({5, 4}, rng, 0.8), true),
                                  tensor<double>(random_array({1, 4}, rng, 0.1), true)};
    std::vector<double> losses;
    for (int step = 0; step < steps; ++step) {
        const tensor<double> z = matmul(tanh(matmul(tensor<double>(x), p[0]) + p[1]), p[2]) + p[3];
        const tensor<double> target(t);
        tensor<double> loss = hand ? formulas::softmax_mse_hand(z, target) : mse(softmax(z, 1), target);
        losses.push_back(loss.item());
        loss.backward();
        for (auto& w : p) {
            w.mutable_value() -= 2.0 * w.grad();
            w.zero_grad();
        }
        reset_tape<double>();
    }
    return losses;
}

}  // namespace

TEST_CASE("hand backward: the corrected delta3 passes its gradcheck and equals the tape's") {
    for (unsigned seed : {1u, 2u, 3u}) {
        const auto c = formulas::check_hand_backward(delta3_form::corrected, seed, 5, 4);
        CHECK_MESSAGE(c.passed(), c.report.table());
        CHECK(c.delta3_error < 1e-15);
        CHECK(c.verdict().find("PASS") != std::string::npos);
    }
    CHECK_NOTHROW(formulas::require_hand_backward(delta3_form::corrected));
    CHECK(tape<double>::current().size() == 0);  // the check leaves the tape as it found it
}

TEST_CASE("hand backward: the article's delta3 is refused and the verdict names the missing term") {
    const auto c = formulas::check_hand_backward(delta3_form::article, 1);
    CHECK_FALSE(c.passed());
    CHECK(c.report.first.inputs.at(0).passed == false);  // dL/dz2: delta3 is wrong
    CHECK(c.report.first.inputs.at(1).passed == true);   // dL/dtarget does not use delta3
    CHECK(c.delta3_error > 1e-3);
    CHECK(c.cross_term_fit < 1e-12);  // what is missing is exactly the off-diagonal term
    const std::string v = c.verdict();
    MESSAGE(v);
    CHECK(v.find("refused: the term delta3 (dL/dz2 = -2/(N C) delta3) is wrong") != std::string::npos);
    CHECK(v.find("It misses the off-diagonal term -o_j sum_{k != j} o_k (t_k - o_k)") != std::string::npos);
    CHECK(v.find("target term") == std::string::npos);
    try {
        formulas::require_hand_backward(delta3_form::article);
        FAIL("the article's delta3 was accepted");
    } catch (const std::logic_error& e) {
        CHECK(std::string(e.what()).find("the term delta3") != std::string::npos);
        CHECK(std::string(e.what()).find("FAIL") != std::string::npos);  // the gradcheck table follows
    }
}

TEST_CASE("hand backward: the article's network trains along the autodiff loss curve to 1e-12") {
    const auto tape_run = train_seed_net(false, 300);
    const auto hand_run = train_seed_net(true, 300);
    REQUIRE(tape_run.size() == 300);
    double worst = 0;
    for (std::size_t i = 0; i < tape_run.size(); ++i) worst = std::max(worst, std::abs(tape_run[i] - hand_run[i]));
    MESSAGE("loss " << tape_run.front() << " -> " << tape_run.back() << ", max |tape - hand| over 300 steps: " << worst);
    CHECK(worst <= 1e-12);
    CHECK(tape_run.back() < 0.5 * tape_run.front());  // it did learn: the comparison is not of two flat lines
}

TEST_CASE("hand backward: +-1000, ties and a float run agree with the tape") {
    const xt::xarray<double> zv = {{1000.0, -1000.0, 0.0}, {0.0, 0.0, 0.0}, {-1000.0, -1000.0, 1000.0}};
    const xt::xarray<double> tv = {{0.0, 1.0, 0.0}, {1.0, 0.0, 0.0}, {0.0, 0.0, 1.0}};
    tensor<double> z(zv, true);
    const tensor<double> t(tv);
    const tensor<double> hand = formulas::softmax_mse_hand(z, t);
    const auto gh = tape<double>::current().gradient(hand, {z})[0].value();
    const tensor<double> ref = mse(softmax(z, 1), t);
    const auto gr = tape<double>::current().gradient(ref, {z})[0].value();
    CHECK(hand.item() == doctest::Approx(ref.item()).epsilon(1e-15));
    // rows: o = (1, 0, 0) against (0, 1, 0): 2; o = 1/3 each against (1, 0, 0): 6/9; exact: 0
    CHECK(hand.item() == doctest::Approx((2.0 + 6.0 / 9) / 9));
    for (std::size_t i = 0; i < gh.size(); ++i) {
        CHECK(std::isfinite(gh.data()[i]));
        CHECK(gh.data()[i] == doctest::Approx(gr.data()[i]).epsilon(1e-12));
    }
    reset_tape<double>();
    tensor<float> zf(xt::xarray<float>{{3.0f, -1.0f}}, true);
    formulas::softmax_mse_hand(zf, tensor<float>(xt::xarray<float>{{0.0f, 1.0f}})).backward();
    const float o = 1.0f / (1.0f + std::exp(-4.0f));  // dL/dz0 = -2/2 * o0 ((0 - o0) - s), s = sum_k o_k (t_k - o_k)
    const float s = o * (0 - o) + (1 - o) * (1 - (1 - o));
    CHECK(zf.grad()(0, 0) == doctest::Approx(-(o * ((0 - o) - s))).epsilon(1e-6));
    reset_tape<float>();
}

TEST_CASE("hand backward: differentiable once, and shape errors name both shapes") {
    tensor<double> z(xt::xarray<double>{{0.5, -0.5}}, true);
    const tensor<double> t(xt::xarray<double>{{1.0, 0.0}});
    const tensor<double> l = formulas::softmax_mse_hand(z, t);
    try {
        tape<double>::current().gradient(l, {z}, {true, true});
        FAIL("no error");
    } catch (const std::logic_error& e) {
        CHECK(std::string(e.what()).find("custom op 'softmax_mse (hand delta3)' has a backward on plain values") !=
              std::string::npos);
    }
    reset_tape<double>();
    CHECK_THROWS_WITH_AS(formulas::softmax_mse_hand(z, tensor<double>(xt::xarray<double>{{1.0, 0.0, 0.0}})),
                         "softmax_mse_hand: logits [1, 2] and target [1, 3] must be [N, C] of the same shape, C at "
                         "least 1",
                         shape_error);
}
