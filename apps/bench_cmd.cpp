// `tapegrad bench`: one training step of an MLP timed in tapegrad and in a
// hand-written xtensor + BLAS backprop of the same step, side by side.

#include "apps/commands.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/blas.hpp"
#include "autograd/float_env.hpp"
#include "autograd/ops.hpp"
#include "nn/layers.hpp"
#include "optim/optimizer.hpp"
#include <xtensor/xmanipulation.hpp>

namespace tapegrad::app {

namespace {

using clock_type = std::chrono::steady_clock;

/// Weights of an MLP stored [in, out] row-major, shared by both engines so
/// they start from the same point.
struct mlp_weights {
    std::vector<std::size_t> sizes;
    std::vector<xt::xarray<float>> w, b;
};

mlp_weights init_weights(const std::vector<std::size_t>& sizes, std::uint64_t seed) {
    mlp_weights m;
    m.sizes = sizes;
    std::mt19937_64 rng(seed);
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
        const float bound = 1.f / std::sqrt(static_cast<float>(sizes[l]));
        std::uniform_real_distribution<float> u(-bound, bound);
        xt::xarray<float> w = xt::xarray<float>::from_shape({sizes[l], sizes[l + 1]});
        for (auto& v : w) v = u(rng);
        xt::xarray<float> b = xt::xarray<float>::from_shape({sizes[l + 1]});
        for (auto& v : b) v = u(rng);
        m.w.push_back(std::move(w));
        m.b.push_back(std::move(b));
    }
    return m;
}

/// The hand-written step: forward with gemm + bias + ReLU, softmax
/// cross-entropy, backward by the chain rule written out, SGD update. Buffers
/// are allocated once, as a careful C++ programmer would.
class handwritten_mlp {
  public:
    handwritten_mlp(const mlp_weights& init, std::size_t batch) : m_(init), batch_(batch) {
        const std::size_t layers = m_.w.size();
        act_.resize(layers);
        delta_.resize(layers);
        gw_.resize(layers);
        gb_.resize(layers);
        for (std::size_t l = 0; l < layers; ++l) {
            act_[l] = xt::xarray<float>::from_shape({batch, m_.sizes[l + 1]});
            delta_[l] = xt::xarray<float>::from_shape({batch, m_.sizes[l + 1]});
            gw_[l] = xt::xarray<float>::from_shape(m_.w[l].shape());
            gb_[l] = xt::xarray<float>::from_shape(m_.b[l].shape());
        }
    }

    /// One SGD step on (x [B, in], labels); returns the loss.
    float step(const xt::xarray<float>& x, const std::vector<std::size_t>& labels, float lr) {
        const std::size_t layers = m_.w.size(), B = batch_;
        const float* in = x.data();
        for (std::size_t l = 0; l < layers; ++l) {
            const std::size_t k = m_.sizes[l], n = m_.sizes[l + 1];
            float* out = act_[l].data();
            for (std::size_t i = 0; i < B; ++i) std::copy_n(m_.b[l].data(), n, out + i * n);
            blas::gemm(false, false, B, n, k, 1.f, in, k, m_.w[l].data(), n, 1.f, out, n);
            if (l + 1 < layers)
                for (std::size_t i = 0; i < B * n; ++i) out[i] = std::max(out[i], 0.f);
            in = out;
        }
        // softmax cross-entropy; delta = (p - onehot) / B
        const std::size_t C = m_.sizes.back();
        float* z = act_.back().data();
        float* d = delta_.back().data();
        double loss = 0;
        for (std::size_t i = 0; i < B; ++i) {
            const float* zi = z + i * C;
            const float mx = *std::max_element(zi, zi + C);
            float s = 0;
            for (std::size_t c = 0; c < C; ++c) s += std::exp(zi[c] - mx);
            const float lse = mx + std::log(s);
            loss += lse - zi[labels[i]];
            for (std::size_t c = 0; c < C; ++c) d[i * C + c] = std::exp(zi[c] - lse) / static_cast<float>(B);
            d[i * C + labels[i]] -= 1.f / static_cast<float>(B);
        }
        for (std::size_t l = layers; l-- > 0;) {
            const std::size_t k = m_.sizes[l], n = m_.sizes[l + 1];
            const float* a_in = l == 0 ? x.data() : act_[l - 1].data();
            const float* dl = delta_[l].data();
            blas::gemm(true, false, k, n, B, 1.f, a_in, k, dl, n, 0.f, gw_[l].data(), n);  // dW = a^T delta
            float* gb = gb_[l].data();
            std::fill_n(gb, n, 0.f);
            for (std::size_t i = 0; i < B; ++i)
                for (std::size_t j = 0; j < n; ++j) gb[j] += dl[i * n + j];
            if (l > 0) {  // delta_{l-1} = (delta_l W^T) * relu'(a_{l-1})
                float* dp = delta_[l - 1].data();
                blas::gemm(false, true, B, k, n, 1.f, dl, n, m_.w[l].data(), n, 0.f, dp, k);
                const float* a = act_[l - 1].data();
                for (std::size_t i = 0; i < B * k; ++i) dp[i] = a[i] > 0 ? dp[i] : 0.f;
            }
        }
        for (std::size_t l = 0; l < layers; ++l) {
            xt::noalias(m_.w[l]) -= lr * gw_[l];
            xt::noalias(m_.b[l]) -= lr * gb_[l];
        }
        return static_cast<float>(loss / static_cast<double>(B));
    }

  private:
    mlp_weights m_;
    std::size_t batch_;
    std::vector<xt::xarray<float>> act_, delta_, gw_, gb_;
};

/// The same step in tapegrad: leaves, recorded ops, backward, SGD update.
class tape_mlp {
  public:
    explicit tape_mlp(const mlp_weights& init) {
        for (std::size_t l = 0; l < init.w.size(); ++l) {
            w_.emplace_back(init.w[l], true);
            b_.emplace_back(init.b[l], true);
        }
    }

    float step(const tensor<float>& x, const std::vector<std::size_t>& labels, float lr) {
        tensor<float> h = x;
        for (std::size_t l = 0; l < w_.size(); ++l) {
            h = matmul(h, w_[l]) + b_[l];
            if (l + 1 < w_.size()) h = relu(h);
        }
        tensor<float> loss = cross_entropy(h, labels);
        const float value = loss.item();
        loss.backward();
        for (std::size_t l = 0; l < w_.size(); ++l) {
            xt::noalias(w_[l].mutable_value()) -= lr * w_[l].grad();
            xt::noalias(b_[l].mutable_value()) -= lr * b_[l].grad();
            w_[l].zero_grad();
            b_[l].zero_grad();
        }
        reset_tape<float>();
        return value;
    }

  private:
    std::vector<tensor<float>> w_, b_;
};

/// The same step written as a user would with the library: nn::mlp, the
/// cross-entropy loss, optim::sgd.
class module_mlp {
  public:
    explicit module_mlp(const mlp_weights& init, float lr) {
        std::mt19937_64 rng(0);
        net_ = nn::mlp<float>(init.sizes, nn::activation::relu, rng);
        std::size_t l = 0;
        for (std::size_t i = 0; i < net_->size(); ++i) {
            auto lin = std::dynamic_pointer_cast<nn::linear<float>>((*net_)[i]);
            if (!lin) continue;
            lin->weight().mutable_value() = xt::transpose(init.w[l]);  // nn stores [out, in]
            lin->bias().mutable_value() = init.b[l];
            ++l;
        }
        optim::sgd_options o;
        o.lr = lr;
        opt_ = std::make_unique<optim::sgd<float>>(net_->parameters(), o);
    }

    float step(const tensor<float>& x, const std::vector<std::size_t>& labels) {
        tensor<float> loss = cross_entropy(net_->forward(x), labels);
        const float value = loss.item();
        loss.backward();
        opt_->step();
        opt_->zero_grad();
        reset_tape<float>();
        return value;
    }

  private:
    std::shared_ptr<nn::sequential<float>> net_;
    std::unique_ptr<optim::sgd<float>> opt_;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int run_bench(const bench_options& o) {
    flush_denormals_scope ftz(o.flush_denormals);
    blas::set_num_threads(o.threads);
    std::vector<std::size_t> sizes = {784};
    sizes.insert(sizes.end(), o.layers.begin(), o.layers.end());
    sizes.push_back(10);
    const mlp_weights init = init_weights(sizes, 1);
    std::mt19937_64 rng(2);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    xt::xarray<float> x = xt::xarray<float>::from_shape({o.batch_size, sizes.front()});
    for (auto& v : x) v = u(rng);
    std::vector<std::size_t> labels(o.batch_size);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = i % 10;
    const tensor<float> xt_in(x, false);

    handwritten_mlp hand(init, o.batch_size);
    tape_mlp tape(init);
    const float lr = 0.01f;
    module_mlp mod(init, lr);
    // Same start, same data: the first losses must agree, or the comparison is meaningless.
    const float l_hand = hand.step(x, labels, lr), l_tape = tape.step(xt_in, labels, lr),
                l_mod = mod.step(xt_in, labels);
    for (std::size_t i = 0; i < o.warmup; ++i) {
        hand.step(x, labels, lr);
        tape.step(xt_in, labels, lr);
        mod.step(xt_in, labels);
    }
    std::vector<double> t_hand, t_tape, t_mod;
    // Interleave the engines so load from other processes hits both alike.
    for (std::size_t r = 0; r < o.repeats; ++r) {
        auto t0 = clock_type::now();
        for (std::size_t i = 0; i < o.steps; ++i) hand.step(x, labels, lr);
        auto t1 = clock_type::now();
        for (std::size_t i = 0; i < o.steps; ++i) tape.step(xt_in, labels, lr);
        auto t2 = clock_type::now();
        for (std::size_t i = 0; i < o.steps; ++i) mod.step(xt_in, labels);
        auto t3 = clock_type::now();
        t_mod.push_back(std::chrono::duration<double, std::micro>(t3 - t2).count() / static_cast<double>(o.steps));
        t_hand.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / static_cast<double>(o.steps));
        t_tape.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count() / static_cast<double>(o.steps));
    }
    const double mh = median(t_hand), mt = median(t_tape), mm = median(t_mod);
    std::ostringstream arch;
    for (std::size_t i = 0; i < sizes.size(); ++i) arch << (i ? "-" : "") << sizes[i];
    std::cout << "bench: MLP " << arch.str() << " ReLU, softmax cross-entropy, SGD, batch " << o.batch_size
              << ", float32\n"
              << "       BLAS threads " << blas::num_threads() << ", flush-to-zero " << (o.flush_denormals ? "on" : "off")
              << ", " << o.repeats << " interleaved repeats of " << o.steps << " steps after " << o.warmup
              << " warm-up steps (medians)\n"
              << "       " << blas::info() << "\n"
              << "       first-step loss: hand-written " << l_hand << ", tapegrad ops " << l_tape << ", nn + optim " << l_mod
              << "\n\n";
    std::cout << std::left << std::setw(32) << "engine" << std::right << std::setw(14) << "us/step" << std::setw(16)
              << "samples/s" << std::setw(12) << "ratio\n";
    auto row = [&](const char* name, double us) {
        std::cout << std::left << std::setw(32) << name << std::right << std::fixed << std::setprecision(1)
                  << std::setw(14) << us << std::setw(16) << std::setprecision(0)
                  << 1e6 * static_cast<double>(o.batch_size) / us << std::setw(11) << std::setprecision(2) << us / mh
                  << "\n"
                  << std::defaultfloat;
    };
    row("hand-written xtensor+BLAS", mh);
    row("tapegrad ops + manual SGD", mt);
    row("tapegrad nn::mlp + optim::sgd", mm);
    const float tol = 1e-4f * std::max(1.f, std::abs(l_hand));
    const bool agree = std::abs(l_hand - l_tape) <= tol && std::abs(l_hand - l_mod) <= tol;
    if (!agree) std::cout << "WARNING: the two engines' first-step losses differ\n";
    return agree ? 0 : 1;
}

}  // namespace tapegrad::app
