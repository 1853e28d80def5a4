#pragma once
// Shared pieces of the MPI tests (run under mpirun -np 2): a small float64
// problem, training loops for one process and for N ranks, and comparisons.

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "autograd/ops.hpp"
#include "distributed/data_parallel.hpp"
#include "nn/layers.hpp"
#include "optim/optimizer.hpp"

namespace tg_dist {

using namespace tapegrad;

/// 37 rows of 5 features in 3 classes: 5 batches of 8 (the last one 5 rows,
/// split 3 + 2 over two ranks, so the weighting of uneven shares is exercised).
inline data::dataset make_data(std::size_t rows = 37, std::uint64_t seed = 7) {
    data::dataset d;
    d.name = "synthetic";
    d.features = 5;
    d.class_names = {"a", "b", "c"};
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    for (std::size_t i = 0; i < rows; ++i) {
        float s = 0;
        for (std::size_t j = 0; j < d.features; ++j) {
            d.x.push_back(u(rng));
            s += d.x.back() * static_cast<float>(j + 1);
        }
        d.y.push_back(s > 1.f ? 2 : s > -1.f ? 1 : 0);
    }
    return d;
}

/// A 5-8-6-3 tanh MLP in float64 (no BatchNorm, no dropout), initialised from `seed`.
inline std::shared_ptr<nn::module<double>> make_model(std::uint64_t seed, std::size_t hidden = 8) {
    std::mt19937_64 rng(seed);
    return nn::mlp<double>({5, hidden, 6, 3}, nn::activation::tanh, rng);
}

inline xt::xarray<double> as_double(const xt::xarray<float>& x) {
    xt::xarray<double> out = xt::xarray<double>::from_shape(x.shape());
    std::copy(x.begin(), x.end(), out.begin());
    return out;
}

/// Mean cross-entropy of a batch; backward into the parameters.
inline void forward_backward(nn::module<double>& m, const data::batch& b) {
    const tensor<double> loss = cross_entropy(m.forward(tensor<double>(as_double(b.x))), b.y);
    loss.backward();
}

/// One process: `steps` steps of data::loader batches (from global step `from`).
inline void train_single(nn::module<double>& m, optim::optimizer<double>& opt, const data::dataset& d,
                         std::size_t batch, std::size_t from, std::size_t steps) {
    data::loader l(d, batch, 3);
    const std::size_t per_epoch = l.batches_per_epoch();
    data::batch b;
    for (std::size_t s = from; s < from + steps; ++s) {
        if (s % per_epoch == 0 || s == from) {
            l.start_epoch(s / per_epoch);
            for (std::size_t k = 0; k < s % per_epoch; ++k) l.next(b);
        }
        l.next(b);
        forward_backward(m, b);
        opt.step();
        opt.zero_grad();
        reset_tape<double>();
    }
}

/// The same steps, data parallel over `ctx`.
inline void train_distributed(const distributed::context& ctx, nn::module<double>& m, optim::optimizer<double>& opt,
                              const data::dataset& d, std::size_t batch, std::size_t from, std::size_t steps,
                              distributed::reducer_options ro = {}) {
    distributed::shard_loader l(ctx, d, batch, 3);
    distributed::gradient_reducer<double> avg(ctx, m.parameters(), ro);
    const std::size_t per_epoch = l.batches_per_epoch();
    data::batch b;
    for (std::size_t s = from; s < from + steps; ++s) {
        if (s % per_epoch == 0 || s == from) {
            l.start_epoch(s / per_epoch);
            for (std::size_t k = 0; k < s % per_epoch; ++k) l.next(b);
        }
        l.next(b);
        if (!b.y.empty()) forward_backward(m, b);
        avg.average(l.share());
        opt.step();
        opt.zero_grad();
        reset_tape<double>();
    }
}

/// Largest |a - b| over all parameters of two models of the same layout.
inline double max_difference(const nn::module<double>& a, const nn::module<double>& b) {
    const auto pa = a.parameters(), pb = b.parameters();
    double worst = 0;
    for (std::size_t i = 0; i < pa.size(); ++i) {
        const auto &va = pa[i].value(), &vb = pb[i].value();
        for (std::size_t j = 0; j < va.size(); ++j)
            worst = std::max(worst, std::abs(va.data()[j] - vb.data()[j]));
    }
    return worst;
}

}  // namespace tg_dist
