// Adam, AdamW, RMSprop and Adagrad, each written as PyTorch 1.13's single-tensor
// update (torch/optim/*.py, _single_tensor_*) in the same order of operations,
// as in-place xtensor expressions over the parameter and state buffers.

#include <cmath>
#include <sstream>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "optim/optimizer.hpp"

namespace tapegrad::optim {

namespace {
template <class T> std::vector<xt::xarray<T>> zeros_like(const std::vector<tensor<T>>& ps, T fill = T(0)) {
    std::vector<xt::xarray<T>> out;
    for (auto& p : ps) out.push_back(xt::xarray<T>(p.value().shape(), fill));
    return out;
}
}  // namespace

// ------------------------------------------------------------------- Adam
template <class T>
adam<T>::adam(std::vector<tensor<T>> params, adam_options o) : adam(std::move(params), o, false, "adam") {}

template <class T>
adam<T>::adam(std::vector<tensor<T>> params, adam_options o, bool decoupled, const char* name)
    : optimizer<T>(std::move(params), o.lr, name), o_(o), decoupled_(decoupled) {
    if (!(o.eps >= 0)) this->fail("epsilon", o.eps, ">= 0");
    if (!(o.beta1 >= 0 && o.beta1 < 1)) this->fail("beta1", o.beta1, "in [0, 1)");
    if (!(o.beta2 >= 0 && o.beta2 < 1)) this->fail("beta2", o.beta2, "in [0, 1)");
    if (!(o.weight_decay >= 0)) this->fail("weight_decay", o.weight_decay, ">= 0");
    m_ = zeros_like(this->params_);
    v_ = zeros_like(this->params_);
    if (o.amsgrad) vmax_ = zeros_like(this->params_);
}

template <class T> std::vector<std::pair<std::string, xt::xarray<T>*>> adam<T>::buffers(std::size_t i) {
    std::vector<std::pair<std::string, xt::xarray<T>*>> b{{"exp_avg", &m_[i]}, {"exp_avg_sq", &v_[i]}};
    if (o_.amsgrad) b.emplace_back("max_exp_avg_sq", &vmax_[i]);
    return b;
}

// m = b1 m + (1 - b1) d;  v = b2 v + (1 - b2) d^2;  (amsgrad: vmax = max(vmax, v), used for v)
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// with d = g + wd p (Adam), or p *= 1 - lr wd first and d = g (AdamW).
template <class T> void adam<T>::step() {
    const double lr = this->lr_;
    const T b1 = T(o_.beta1), b2 = T(o_.beta2), c1 = T(1 - o_.beta1), c2 = T(1 - o_.beta2), eps = T(o_.eps);
    const T wd = T(o_.weight_decay);
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
        auto& p = this->params_[i];
        if (!p.has_grad()) continue;
        auto& w = p.mutable_value();
        const auto& g = p.grad();
        auto& m = m_[i];
        auto& v = v_[i];
        const double t = double(++this->steps_[i]);
        if (decoupled_ && o_.weight_decay != 0) xt::noalias(w) = w * T(1 - lr * o_.weight_decay);
        auto moments = [&](auto&& d) {
            xt::noalias(m) = b1 * m + c1 * d;
            xt::noalias(v) = b2 * v + c2 * (d * d);
        };
        if (!decoupled_ && o_.weight_decay != 0) moments(g + wd * w);
        else moments(g);
        const T step_size = T(lr / (1 - std::pow(o_.beta1, t)));
        const T bc2_sqrt = T(std::sqrt(1 - std::pow(o_.beta2, t)));
        if (o_.amsgrad) {
            auto& vmax = vmax_[i];
            xt::noalias(vmax) = xt::maximum(vmax, v);
            xt::noalias(w) -= step_size * (m / (xt::sqrt(vmax) / bc2_sqrt + eps));
        } else {
            xt::noalias(w) -= step_size * (m / (xt::sqrt(v) / bc2_sqrt + eps));
        }
    }
}

namespace {
adam_options as_adam(const adamw_options& o) {
    adam_options a;
    a.lr = o.lr;
    a.beta1 = o.beta1;
    a.beta2 = o.beta2;
    a.eps = o.eps;
    a.weight_decay = o.weight_decay;
    a.amsgrad = o.amsgrad;
    return a;
}
}  // namespace

template <class T>
adamw<T>::adamw(std::vector<tensor<T>> params, adamw_options o) : adam<T>(std::move(params), as_adam(o), true, "adamw") {}

// ---------------------------------------------------------------- RMSprop
template <class T>
rmsprop<T>::rmsprop(std::vector<tensor<T>> params, rmsprop_options o)
    : optimizer<T>(std::move(params), o.lr, "rmsprop"), o_(o) {
    if (!(o.eps >= 0)) this->fail("epsilon", o.eps, ">= 0");
    if (!(o.alpha >= 0 && o.alpha <= 1)) this->fail("alpha", o.alpha, "in [0, 1]");
    if (!(o.momentum >= 0)) this->fail("momentum", o.momentum, ">= 0");
    if (!(o.weight_decay >= 0)) this->fail("weight_decay", o.weight_decay, ">= 0");
    sq_ = zeros_like(this->params_);
    if (o.momentum > 0) buf_ = zeros_like(this->params_);
    if (o.centered) gavg_ = zeros_like(this->params_);
}

template <class T> std::vector<std::pair<std::string, xt::xarray<T>*>> rmsprop<T>::buffers(std::size_t i) {
    std::vector<std::pair<std::string, xt::xarray<T>*>> b{{"square_avg", &sq_[i]}};
    if (o_.momentum > 0) b.emplace_back("momentum_buffer", &buf_[i]);
    if (o_.centered) b.emplace_back("grad_avg", &gavg_[i]);
    return b;
}

// sq = a sq + (1 - a) d^2;  centered: ga = a ga + (1 - a) d, avg = sqrt(sq - ga^2) + eps,
// else avg = sqrt(sq) + eps;  momentum: buf = mu buf + d / avg, p -= lr buf;  else p -= lr d / avg
template <class T> void rmsprop<T>::step() {
    const T lr = T(this->lr_), a = T(o_.alpha), c = T(1 - o_.alpha), eps = T(o_.eps), mu = T(o_.momentum);
    const T wd = T(o_.weight_decay);
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
        auto& p = this->params_[i];
        if (!p.has_grad()) continue;
        auto& w = p.mutable_value();
        const auto& g = p.grad();
        auto& sq = sq_[i];
        auto finish = [&](auto&& d, auto&& avg) {
            if (o_.momentum > 0) {
                auto& buf = buf_[i];
                xt::noalias(buf) = mu * buf + d / avg;
                xt::noalias(w) -= lr * buf;
            } else {
                xt::noalias(w) -= lr * (d / avg);
            }
        };
        auto update = [&](auto&& d) {
            xt::noalias(sq) = a * sq + c * (d * d);
            if (o_.centered) {
                auto& ga = gavg_[i];
                xt::noalias(ga) = a * ga + c * d;
                finish(d, xt::sqrt(sq - ga * ga) + eps);
            } else {
                finish(d, xt::sqrt(sq) + eps);
            }
        };
        if (o_.weight_decay != 0) update(g + wd * w);
        else update(g);
        ++this->steps_[i];
    }
}

// ---------------------------------------------------------------- Adagrad
template <class T>
adagrad<T>::adagrad(std::vector<tensor<T>> params, adagrad_options o)
    : optimizer<T>(std::move(params), o.lr, "adagrad"), o_(o) {
    if (!(o.lr_decay >= 0)) this->fail("lr_decay", o.lr_decay, ">= 0");
    if (!(o.weight_decay >= 0)) this->fail("weight_decay", o.weight_decay, ">= 0");
    if (!(o.initial_accumulator_value >= 0))
        this->fail("initial_accumulator_value", o.initial_accumulator_value, ">= 0");
    if (!(o.eps >= 0)) this->fail("epsilon", o.eps, ">= 0");
    sum_ = zeros_like(this->params_, T(o.initial_accumulator_value));
}

template <class T> std::vector<std::pair<std::string, xt::xarray<T>*>> adagrad<T>::buffers(std::size_t i) {
    return {{"sum", &sum_[i]}};
}

// clr = lr / (1 + (t - 1) lr_decay);  sum += d^2;  p -= clr d / (sqrt(sum) + eps)
template <class T> void adagrad<T>::step() {
    const T eps = T(o_.eps), wd = T(o_.weight_decay);
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
        auto& p = this->params_[i];
        if (!p.has_grad()) continue;
        auto& w = p.mutable_value();
        const auto& g = p.grad();
        auto& sum = sum_[i];
        const double t = double(++this->steps_[i]);
        const T clr = T(this->lr_ / (1 + (t - 1) * o_.lr_decay));
        auto update = [&](auto&& d) {
            xt::noalias(sum) += d * d;
            xt::noalias(w) -= clr * (d / (xt::sqrt(sum) + eps));
        };
        if (o_.weight_decay != 0) update(g + wd * w);
        else update(g);
    }
}

template class adam<float>;
template class adam<double>;
template class adamw<float>;
template class adamw<double>;
template class rmsprop<float>;
template class rmsprop<double>;
template class adagrad<float>;
template class adagrad<double>;

}  // namespace tapegrad::optim
