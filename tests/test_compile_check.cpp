// The compiled step's check mode compares gradients too: the replay's forward, zero_grad()
// and backward() against the eager run at the same event, values then gradients; it
// names the op whose gradient differs and the backward that wrote it, and keeps exactly
// one step's effects (parameters, optimizer state) on every checked call.

#include <random>
#include <stdexcept>
#include <string>

#include <doctest/doctest.h>

#include "autograd/compile.hpp"
#include "autograd/function.hpp"
#include "nn/layers.hpp"
#include "optim/optimizer.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using testing::uniform;

namespace {

struct gain { double k = 1; };

// y = x; dx = k gy: a backward that reads the op's parameter, which a replay keeps from the trace
custom_op<double, gain, gain> make_gradient_gain() {
    custom_op<double, gain, gain> op("gradient_gain");
    op.forward([](auto& a) {
          a.saved().k = a.params().k;
          a.y() = a.x(0);
      })
        .backward_values([](auto& a) { a.grad(0) = a.gy() * a.saved().k; });
    return op;
}

}  // namespace

TEST_CASE("compile check: a backward that differs from eager is named, with the op whose gradient it wrote") {
    const auto op = make_gradient_gain();
    tensor<double> w(uniform({4}, -1, 1, 1), true);
    double k = 1;
    compile_options o;
    o.check = true;
    auto f = compile([&](const tensor<double>& x) {
        w.zero_grad();
        // the forward does not depend on k, so only the gradients can tell the replay from eager
        tensor<double> loss = sum(tanh(op({w * x}, gain{k})));
        loss.backward();
        return loss;
    }, o);
    tensor<double> x(uniform({4}, -1, 1, 2));
    f(x);  // the trace
    f(x);  // k unchanged: the check passes
    const auto before = w.grad();
    k = 3;
    std::string what;
    try {
        f(x);
    } catch (const std::logic_error& e) {
        what = e.what();
    }
    // the reverse pass reaches mul's gradient first: gradient_gain's backward (op 1) wrote it
    CHECK(what.find("compile check: op 0 'mul' (its gradient, from the backward of op 1 'gradient_gain') differs") == 0);
    CHECK(what.find("frozen at the trace") != std::string::npos);
    CHECK(xt::allclose(w.grad(), before * 3.0, 1e-14));  // the call's effects are the eager run's, with k = 3
}

TEST_CASE("compile check: full SGD and Adam steps pass, fused passes on, and keep exactly one step's effects") {
    for (bool adam : {false, true}) {
        CAPTURE(adam);
        std::mt19937_64 rng_a(5), rng_b(5);
        auto eager_net = nn::mlp<double>({4, 8, 3}, nn::activation::relu, rng_a);
        auto checked_net = nn::mlp<double>({4, 8, 3}, nn::activation::relu, rng_b);
        auto make_opt = [adam](std::vector<tensor<double>> params) -> std::unique_ptr<optim::optimizer<double>> {
            if (adam) return std::make_unique<optim::adam<double>>(std::move(params), optim::adam_options{});
            optim::sgd_options o;
            o.lr = 0.1;
            return std::make_unique<optim::sgd<double>>(std::move(params), o);
        };
        auto eager_opt = make_opt(eager_net->parameters());
        auto checked_opt = make_opt(checked_net->parameters());
        auto step_of = [](nn::sequential<double>& net, optim::optimizer<double>& opt, const tensor<double>& x,
                          const std::vector<std::size_t>& y) {
            opt.zero_grad();
            tensor<double> loss = cross_entropy(net.forward(x), y);
            loss.backward();
            opt.step();
            return loss;
        };
        compile_options o;
        o.check = true;
        auto step = compile([&](const tensor<double>& x, const std::vector<std::size_t>& y) {
            return step_of(*checked_net, *checked_opt, x, y);
        }, o);
        for (int s = 0; s < 4; ++s) {
            tensor<double> x(uniform({5, 4}, -2, 2, 10 + s));
            const std::vector<std::size_t> y = {0, 2, 1, 1, 0};
            const double expected = step_of(*eager_net, *eager_opt, x, y).item();
            reset_tape<double>();
            CHECK(step(x, y).item() == expected);
        }
        CHECK(step.stats().replays == 3);
        if (!adam) CHECK(step.stats().fused_sgd_weights == 2);
        auto pe = eager_net->parameters(), pc = checked_net->parameters();
        for (std::size_t i = 0; i < pe.size(); ++i) {
            CHECK(pc[i].value() == pe[i].value());  // bit for bit: the kept effects are the eager run's, once
            CHECK(checked_opt->steps(i) == eager_opt->steps(i));
        }
    }
}
