// The fused SIMD pass over whole batches must compute what the padded tail
// computes (the tail is what the PyTorch fixtures exercise, their tensors being
// shorter than one batch): one 37-element parameter (batches + tail) against 37
// one-element parameters (tail only), for every optimizer variant. Equal up to
// a few ulps, not bit for bit: g++ contracts a*b + c into FMA (C++ defaults to
// -ffp-contract=fast) and may do so differently in the two instantiations.
// A wrong index or formula would differ at O(1).

#include <cmath>
#include <functional>
#include <limits>
#include <memory>

#include <doctest/doctest.h>

#include "optim/optimizer.hpp"
#include "tests/check.hpp"

using namespace tapegrad;

namespace {

template <class T>
using factory = std::function<std::unique_ptr<optim::optimizer<T>>(std::vector<tensor<T>>)>;

template <class T> void set_grad(tensor<T>& p, const xt::xarray<T>& g) {
    p.zero_grad();
    sum(p * tensor<T>(g)).backward();
    reset_tape<T>();
}

template <class T> void same_as_scalar(const factory<T>& make) {
    const std::size_t n = 37;
    const xt::xarray<double> init = testing::uniform({n}, -2, 2, 11);
    tensor<T> big(xt::xarray<T>(xt::cast<T>(init)), true);
    std::vector<tensor<T>> small;
    for (std::size_t k = 0; k < n; ++k) small.emplace_back(xt::xarray<T>{T(init(k))}, true);
    auto opt_big = make({big});
    auto opt_small = make(small);
    for (int step = 0; step < 5; ++step) {
        // gradient of a quartic at the current values, different each step
        xt::xarray<T> g(shape_t{n});
        for (std::size_t k = 0; k < n; ++k) {
            const T v = big.value()(k);
            g(k) = v * v * v - T(0.5) * v + T(0.1) * T(step);
        }
        set_grad(big, g);
        for (std::size_t k = 0; k < n; ++k) set_grad(small[k], xt::xarray<T>{g(k)});
        opt_big->step();
        opt_small->step();
        for (std::size_t k = 0; k < n; ++k) {
            INFO("step ", step, " element ", k);
            const double a = double(big.value()(k)), b = double(small[k].value()(0));
            const double ulp = double(std::numeric_limits<T>::epsilon());
            REQUIRE(std::abs(a - b) <= 64 * ulp * std::max(std::abs(b), 1.0));
        }
    }
}

template <class T> void all_variants() {
    optim::sgd_options s;
    s.lr = 0.05, s.momentum = 0.9, s.dampening = 0.1, s.weight_decay = 0.01;
    SUBCASE("sgd") { same_as_scalar<T>([&](auto ps) { return std::make_unique<optim::sgd<T>>(ps, s); }); }
    SUBCASE("sgd nesterov") {
        optim::sgd_options n = s;
        n.dampening = 0, n.nesterov = true;
        same_as_scalar<T>([&](auto ps) { return std::make_unique<optim::sgd<T>>(ps, n); });
    }
    SUBCASE("sgd plain") { same_as_scalar<T>([&](auto ps) { return std::make_unique<optim::sgd<T>>(ps, optim::sgd_options{}); }); }
    optim::adam_options a;
    a.lr = 0.05, a.weight_decay = 0.01;
    SUBCASE("adam") { same_as_scalar<T>([&](auto ps) { return std::make_unique<optim::adam<T>>(ps, a); }); }
    SUBCASE("amsgrad") {
        optim::adam_options m = a;
        m.amsgrad = true;
        same_as_scalar<T>([&](auto ps) { return std::make_unique<optim::adam<T>>(ps, m); });
    }
    SUBCASE("adamw") {
        optim::adamw_options w;
        w.amsgrad = true;
        same_as_scalar<T>([&](auto ps) { return std::make_unique<optim::adamw<T>>(ps, w); });
    }
    SUBCASE("rmsprop centered momentum") {
        optim::rmsprop_options r;
        r.centered = true, r.momentum = 0.5, r.weight_decay = 0.01;
        same_as_scalar<T>([&](auto ps) { return std::make_unique<optim::rmsprop<T>>(ps, r); });
    }
    SUBCASE("rmsprop plain") {
        same_as_scalar<T>([&](auto ps) { return std::make_unique<optim::rmsprop<T>>(ps, optim::rmsprop_options{}); });
    }
    SUBCASE("adagrad") {
        optim::adagrad_options g;
        g.lr_decay = 0.1, g.weight_decay = 0.01, g.initial_accumulator_value = 0.1;
        same_as_scalar<T>([&](auto ps) { return std::make_unique<optim::adagrad<T>>(ps, g); });
    }
}

}  // namespace

TEST_CASE("SIMD batches equal the padded tail (double)") { all_variants<double>(); }
TEST_CASE("SIMD batches equal the padded tail (float)") { all_variants<float>(); }
