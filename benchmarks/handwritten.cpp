// Hand-written xtensor + BLAS backprop: the speed a careful C++ programmer
// reaches for these exact networks, to judge the engine's overhead against.

#include "benchmarks/handwritten.hpp"

#include <algorithm>
#include <cmath>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/parallel.hpp"

namespace tapegrad::bench {

namespace {
template <class M> M from(const std::vector<float>& v, std::size_t rows, std::size_t cols) {
    M m = M::from_shape({rows, cols});
    std::copy(v.begin(), v.end(), m.begin());
    return m;
}
}  // namespace

handwritten_mlp::handwritten_mlp(const mlp_problem& p, bool fuse_sgd)
    : c_(p.spec), layers_(p.w.size()), labels_(p.labels), fuse_sgd_(fuse_sgd) {
    const auto& s = c_.sizes;
    const std::size_t B = c_.batch;
    x_ = from<mat>(p.x, B, s.front());
    onehot_ = from<mat>(p.onehot, B, s.back());
    for (std::size_t l = 0; l < layers_; ++l) {
        const std::size_t in = s[l], out = s[l + 1];
        w_.push_back(from<mat>(p.w[l], out, in));
        vec b = vec::from_shape({out});
        std::copy(p.b[l].begin(), p.b[l].end(), b.begin());
        b_.push_back(b);
        h_.push_back(mat::from_shape({B, out}));
        dz_.push_back(mat::from_shape({B, out}));
        gb_.push_back(vec::from_shape({out}));
        if (c_.opt == opt_kind::adam || !fuse_sgd) gw_.push_back(mat::from_shape({out, in}));
        if (c_.opt == opt_kind::adam) {
            mw_.push_back(xt::zeros<float>({out, in}));
            vw_.push_back(xt::zeros<float>({out, in}));
            mb_.push_back(xt::zeros<float>({out}));
            vb_.push_back(xt::zeros<float>({out}));
        }
    }
}

float handwritten_mlp::loss_and_grad() {
    const std::size_t B = c_.batch, C = c_.sizes.back();
    mat& z = h_.back();
    mat& dz = dz_.back();
    double loss = 0;
    for (std::size_t i = 0; i < B; ++i) {
        const float* zi = &z(i, 0);
        float* di = &dz(i, 0);
        const float mx = *std::max_element(zi, zi + C);
        float total = 0;
        for (std::size_t j = 0; j < C; ++j) total += (di[j] = std::exp(zi[j] - mx));
        const float inv = 1.0f / total;
        if (c_.loss == loss_kind::cross_entropy) {
            // d/dz mean_i(-log p[label]) = (p - onehot) / B
            loss += std::log(total) + mx - zi[labels_[i]];
            for (std::size_t j = 0; j < C; ++j) di[j] = di[j] * inv / static_cast<float>(B);
            di[labels_[i]] -= 1.0f / static_cast<float>(B);
        } else {
            // loss = mean((p - t)^2); dp = 2 (p - t) / (B C); dz = p (dp - sum(dp p))
            const float scale = 2.0f / static_cast<float>(B * C);
            const float* ti = &onehot_(i, 0);
            float dot = 0;
            for (std::size_t j = 0; j < C; ++j) {
                const float pj = di[j] * inv, d = pj - ti[j];
                loss += d * d;
                di[j] = pj;
                dot += scale * d * pj;
            }
            for (std::size_t j = 0; j < C; ++j) di[j] = di[j] * (scale * (di[j] - ti[j]) - dot);
        }
    }
    return static_cast<float>(c_.loss == loss_kind::cross_entropy ? loss / B : loss / (B * C));
}

void handwritten_mlp::adam_update(float* __restrict w, float* __restrict m, float* __restrict v,
                                  const float* __restrict g, std::size_t n) const {
    // One fused pass over the parameter, as torch.optim.Adam(foreach=False) does in three;
    // with engine threads set (the 2thr cases) it is split across them like tapegrad's.
    tapegrad::detail::parallel_for(n, 8, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
            m[i] = adam_beta1 * m[i] + (1.0f - adam_beta1) * g[i];
            v[i] = adam_beta2 * v[i] + (1.0f - adam_beta2) * g[i] * g[i];
            w[i] -= step_size_ * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2_ + adam_eps);
        }
    });
}

void handwritten_mlp::forward(const float* x, std::size_t B, std::vector<mat>& h) const {
    const auto& s = c_.sizes;
    for (std::size_t l = 0; l < layers_; ++l) {
        const float* in = l ? h[l - 1].data() : x;
        const std::size_t k = s[l], n = s[l + 1];
        blas::gemm(false, true, B, n, k, 1.0f, in, k, w_[l].data(), k, 0.0f, h[l].data(), n);
        const float* bias = b_[l].data();
        float* out = h[l].data();
        const bool last = l + 1 == layers_;
        for (std::size_t i = 0; i < B; ++i) {
            float* row = out + i * n;
            if (last) {
                for (std::size_t j = 0; j < n; ++j) row[j] += bias[j];
            } else if (c_.act == act_kind::relu) {
                for (std::size_t j = 0; j < n; ++j) row[j] = std::max(row[j] + bias[j], 0.0f);
            } else {
                for (std::size_t j = 0; j < n; ++j) row[j] = row[j] + bias[j];
            }
        }
        if (!last && c_.act == act_kind::tanh) xt::noalias(h[l]) = xt::tanh(h[l]);
    }
}

void handwritten_mlp::set_batch(const float* x, const std::size_t* labels) {
    std::copy(x, x + x_.size(), x_.data());
    labels_.assign(labels, labels + c_.batch);
    onehot_.fill(0.0f);
    for (std::size_t i = 0; i < c_.batch; ++i) onehot_(i, labels[i]) = 1.0f;
}

std::size_t handwritten_mlp::correct(const float* x, const std::size_t* labels, std::size_t n) {
    std::vector<mat> h;
    for (std::size_t l = 0; l < layers_; ++l) h.push_back(mat::from_shape({n, c_.sizes[l + 1]}));
    forward(x, n, h);
    const std::size_t k = c_.sizes.back();
    std::size_t hits = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const float* row = h.back().data() + i * k;
        hits += static_cast<std::size_t>(std::max_element(row, row + k) - row) == labels[i];
    }
    return hits;
}

float handwritten_mlp::step() {
    const auto& s = c_.sizes;
    const std::size_t B = c_.batch;
    forward(x_.data(), B, h_);
    const float loss = loss_and_grad();

    // backward, last layer first
    const bool adam = c_.opt == opt_kind::adam;
    if (adam) {
        ++t_;
        const float bc1 = 1.0f - std::pow(adam_beta1, static_cast<float>(t_));
        const float bc2 = 1.0f - std::pow(adam_beta2, static_cast<float>(t_));
        step_size_ = adam_lr / bc1;
        inv_sqrt_bc2_ = 1.0f / std::sqrt(bc2);
    }
    for (std::size_t l = layers_; l-- > 0;) {
        const mat& in = l ? h_[l - 1] : x_;
        const std::size_t k = s[l], n = s[l + 1];
        const float* dz = dz_[l].data();
        // bias gradient: column sums of dz
        float* gb = gb_[l].data();
        std::fill(gb, gb + n, 0.0f);
        for (std::size_t i = 0; i < B; ++i)
            for (std::size_t j = 0; j < n; ++j) gb[j] += dz[i * n + j];
        if (l > 0) {
            // dh = dz W (before W changes), then through the activation into dz[l-1]
            mat& dprev = dz_[l - 1];
            blas::gemm(false, false, B, k, n, 1.0f, dz, n, w_[l].data(), k, 0.0f, dprev.data(), k);
            if (c_.act == act_kind::relu)
                xt::noalias(dprev) = xt::where(h_[l - 1] > 0.0f, dprev, 0.0f);
            else
                xt::noalias(dprev) = dprev * (1.0f - h_[l - 1] * h_[l - 1]);
        }
        if (adam) {
            blas::gemm(true, false, n, k, B, 1.0f, dz, n, in.data(), k, 0.0f, gw_[l].data(), k);
            adam_update(w_[l].data(), mw_[l].data(), vw_[l].data(), gw_[l].data(), n * k);
            adam_update(b_[l].data(), mb_[l].data(), vb_[l].data(), gb, n);
        } else if (fuse_sgd_) {
            // SGD fused into the gradient gemm: W = 1 * W - lr * dz^T h (beta-accumulation)
            blas::gemm(true, false, n, k, B, -sgd_lr, dz, n, in.data(), k, 1.0f, w_[l].data(), k);
            xt::noalias(b_[l]) -= sgd_lr * gb_[l];
        } else {
            blas::gemm(true, false, n, k, B, 1.0f, dz, n, in.data(), k, 0.0f, gw_[l].data(), k);
            xt::noalias(w_[l]) -= sgd_lr * gw_[l];
            xt::noalias(b_[l]) -= sgd_lr * gb_[l];
        }
    }
    return loss;
}

handwritten_opchain::handwritten_opchain(const opchain_problem& p) : spec_(p.spec) {
    x_ = from<mat>(p.x, 1, spec_.width);
    a_ = from<mat>(p.a, 1, spec_.width);
    b_ = from<mat>(p.b, 1, spec_.width);
    c_ = from<mat>(p.c, 1, spec_.width);
    g_ = mat::from_shape({1, spec_.width});
    y_.assign(spec_.ops, mat::from_shape({1, spec_.width}));
}

float handwritten_opchain::step() {
    for (std::size_t i = 0; i < spec_.ops; ++i) {
        const mat& in = i ? y_[i - 1] : x_;
        mat& y = y_[i];
        switch (chain_op_at(i)) {
            case chain_op::mul: xt::noalias(y) = in * a_; break;
            case chain_op::add: xt::noalias(y) = in + b_; break;
            case chain_op::tanh: xt::noalias(y) = xt::tanh(in); break;
            case chain_op::sub: xt::noalias(y) = in - c_; break;
            case chain_op::sigmoid: xt::noalias(y) = 1.0f / (1.0f + xt::exp(-in)); break;
        }
    }
    if (!spec_.backward) return y_.back()(0, 0);
    g_.fill(1.0f);  // d sum(y) / dy
    for (std::size_t i = spec_.ops; i-- > 0;) {
        const mat& y = y_[i];
        switch (chain_op_at(i)) {
            case chain_op::mul: xt::noalias(g_) = g_ * a_; break;
            case chain_op::add:
            case chain_op::sub: break;
            case chain_op::tanh: xt::noalias(g_) = g_ * (1.0f - y * y); break;
            case chain_op::sigmoid: xt::noalias(g_) = g_ * y * (1.0f - y); break;
        }
    }
    return g_(0, 0);
}

std::unique_ptr<runner> make_handwritten(const mlp_problem& p) { return std::make_unique<handwritten_mlp>(p); }
std::unique_ptr<runner> make_handwritten_unfused(const mlp_problem& p) {
    return std::make_unique<handwritten_mlp>(p, false);
}
std::unique_ptr<runner> make_handwritten_opchain(const opchain_problem& p) {
    return std::make_unique<handwritten_opchain>(p);
}

}  // namespace tapegrad::bench
