// Layer cases for `tapegrad gradcheck`: each layer's output with respect to its
// input and every parameter, in float64.

#include "apps/layers_check.hpp"

#include <random>

#include "autograd/ops.hpp"

namespace tapegrad::app {

namespace {
xt::xarray<double> rnd(const shape_t& shape, std::mt19937_64& rng, double lo = -1, double hi = 1) {
    std::uniform_real_distribution<double> u(lo, hi);
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    for (auto& v : a) v = u(rng);
    return a;
}
using T = tensor<double>;
}  // namespace

std::vector<check_case> layer_cases(unsigned seed) {
    std::mt19937_64 r(seed + 1000);
    std::vector<check_case> c;
    // linear: y = x W^T + b, inputs (x, W, b)
    c.push_back({"linear [4,5] -> [4,3]",
                 [](const std::vector<T>& v) { return matmul(v[0], v[1], false, true) + v[2]; },
                 {rnd({4, 5}, r), rnd({3, 5}, r), rnd({3}, r)}});
    // the article's network with both losses
    auto seed_net = [](const std::vector<T>& v) {
        return softmax(matmul(tanh(matmul(v[0], v[1], false, true) + v[2]), v[3], false, true) + v[4], 1);
    };
    c.push_back({"seed net softmax(W2 tanh(W1 x+b1)+b2)", seed_net,
                 {rnd({3, 6}, r), rnd({5, 6}, r), rnd({5}, r), rnd({4, 5}, r), rnd({4}, r)}});
    xt::xarray<double> onehot = xt::zeros<double>({3, 4});
    onehot(0, 1) = onehot(1, 3) = onehot(2, 0) = 1;
    c.push_back({"seed net + mse loss",
                 [seed_net, onehot](const std::vector<T>& v) { return mse(seed_net(v), T(onehot)); },
                 {rnd({3, 6}, r), rnd({5, 6}, r), rnd({5}, r), rnd({4, 5}, r), rnd({4}, r)}});
    c.push_back({"mlp 6-5-4-3 relu + ce loss",
                 [](const std::vector<T>& v) {
                     T h = relu(matmul(v[0], v[1], false, true) + v[2]);
                     h = relu(matmul(h, v[3], false, true) + v[4]);
                     return cross_entropy(matmul(h, v[5], false, true) + v[6], {2, 0, 1});
                 },
                 {rnd({3, 6}, r), rnd({5, 6}, r), rnd({5}, r, 0.2, 1), rnd({4, 5}, r), rnd({4}, r, 0.2, 1),
                  rnd({3, 4}, r), rnd({3}, r)}});
    return c;
}

}  // namespace tapegrad::app
