// The article's network, output = softmax(W2 * tanh(W1 * x + b1) + b2), trained
// with mean squared error on a small synthetic problem (three Gaussian blobs),
// using only the core engine: leaves for the weights, ops, backward(), and a
// hand-written gradient-descent update. Prints the loss going down and a
// gradcheck of the same network.

#include <cstdio>
#include <random>

#include <xtensor/xview.hpp>

#include "autograd/kernels/float_env.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"

using namespace tapegrad;
using args = std::vector<tensor<double>>;

namespace {

/// output = softmax(x W1^T + b1 -> tanh -> W2^T + b2), rows are samples.
tensor<double> article_net(const tensor<double>& x, const args& p) {
    tensor<double> hidden = tanh(matmul(x, p[0], false, true) + p[1]);
    return softmax(matmul(hidden, p[2], false, true) + p[3], 1);
}

xt::xarray<double> random_array(const shape_t& shape, double scale, std::mt19937_64& rng) {
    std::normal_distribution<double> normal(0.0, scale);
    xt::xarray<double> a(shape);
    for (auto& v : a) v = normal(rng);
    return a;
}

}  // namespace

int main() {
    flush_denormals_scope ftz;
    std::mt19937_64 rng(7);
    const std::size_t n = 150, in = 2, hidden = 8, classes = 3;

    // Three blobs around the corners of a triangle; one-hot targets for MSE.
    xt::xarray<double> xs = random_array({n, in}, 0.35, rng);
    xt::xarray<double> targets = xt::zeros<double>({n, classes});
    const double centres[3][2] = {{0, 1}, {-1, -0.6}, {1, -0.6}};
    for (std::size_t i = 0; i < n; ++i) {
        xs(i, 0) += centres[i % 3][0];
        xs(i, 1) += centres[i % 3][1];
        targets(i, i % 3) = 1;
    }
    tensor<double> x(xs), target(targets);

    args params = {tensor<double>(random_array({hidden, in}, 0.5, rng), true),
                   tensor<double>(xt::xarray<double>(xt::zeros<double>({hidden})), true),
                   tensor<double>(random_array({classes, hidden}, 0.5, rng), true),
                   tensor<double>(xt::xarray<double>(xt::zeros<double>({classes})), true)};

    std::printf("training softmax(W2 tanh(W1 x + b1) + b2) with MSE, plain gradient descent\n");
    const double lr = 2.0;
    for (int epoch = 0; epoch <= 300; ++epoch) {
        tensor<double> out = article_net(x, params);
        tensor<double> loss = mse(out, target);
        loss.backward();
        for (auto& p : params) {
            xt::noalias(p.mutable_value()) -= lr * p.grad();
            p.zero_grad();
        }
        if (epoch % 50 == 0) {
            std::size_t correct = 0;
            const auto& o = out.value();
            for (std::size_t i = 0; i < n; ++i) {
                std::size_t best = 0;
                for (std::size_t c = 1; c < classes; ++c)
                    if (o(i, c) > o(i, best)) best = c;
                correct += best == i % 3;
            }
            std::printf("epoch %3d  loss %.5f  accuracy %.3f\n", epoch, loss.item(), double(correct) / n);
        }
        reset_tape<double>();  // keep the capacity for the next step
    }

    // gradcheck of the network on a few samples: float64 central differences vs the tape.
    std::vector<xt::xarray<double>> at = {xt::xarray<double>(xt::view(xs, xt::range(0, 4))), params[0].value(),
                                          params[1].value(), params[2].value(), params[3].value()};
    gradcheck_report report = gradcheck(
        [&](const args& a) {
            return mse(article_net(a[0], {a[1], a[2], a[3], a[4]}),
                       tensor<double>(xt::xarray<double>(xt::view(targets, xt::range(0, 4)))));
        },
        at, {}, "article network (input, W1, b1, W2, b2)");
    std::printf("\n%s", report.table().c_str());
    return report.passed() ? 0 : 1;
}
