// The README's model in a dozen lines: an MLP regressing y = sin(3 x0) + x1^2 on
// synthetic data with nn/ and optim/, then evaluated on held-out points, then
// one gradcheck line. The dozen lines are between the two "README" markers and
// are copied verbatim into docs/nn_optim.md.

#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>

#include "autograd/gradcheck.hpp"
#include "nn/layers.hpp"
#include "optim/optimizer.hpp"

using namespace tapegrad;

namespace {
// n points x in [-1, 1]^2 and targets y = sin(3 x0) + x1^2, as [n, 2] and [n, 1].
std::pair<tensor<double>, tensor<double>> synthetic(std::size_t n, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(-1, 1);
    xt::xarray<double> x(shape_t{n, 2}), y(shape_t{n, 1});
    for (std::size_t i = 0; i < n; ++i) {
        x(i, 0) = u(rng), x(i, 1) = u(rng);
        y(i, 0) = std::sin(3 * x(i, 0)) + x(i, 1) * x(i, 1);
    }
    return {tensor<double>(x), tensor<double>(y)};
}
}  // namespace

int main() {
    std::mt19937_64 rng(0);
    auto [x, y] = synthetic(512, rng);
    auto [x_test, y_test] = synthetic(256, rng);
    // README begin
    auto net = nn::mlp<double>({2, 32, 32, 1}, nn::activation::tanh, rng);
    optim::adam<double> opt(net->parameters(), {0.01});
    for (int epoch = 0; epoch <= 300; ++epoch) {
        opt.zero_grad();
        auto loss = mse((*net)(x), y);
        loss.backward();
        opt.step();
        if (epoch % 50 == 0) std::printf("epoch %3d  train mse %.5f\n", epoch, loss.item());
        reset_tape<double>();
    }
    net->eval();
    std::printf("test mse %.5f\n", mse((*net)(x_test), y_test).item());
    std::cout << gradcheck([&](const std::vector<tensor<double>>& in) { return (*net)(in[0]); }, {x_test.value()});
    // README end
    return 0;
}
