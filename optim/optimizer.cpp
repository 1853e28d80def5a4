// The optimizer base (parameter checks, lr, zero_grad, state save/load) and SGD
// (one fused in-place pass per parameter, autograd/kernels/simd.hpp).

#include "optim/optimizer.hpp"

#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>


#include "io/npz.hpp"
#include "autograd/format.hpp"
#include "autograd/compile.hpp"
#include "autograd/kernels/simd.hpp"

namespace tapegrad::optim {

using detail::num;

template <class T>
optimizer<T>::optimizer(std::vector<tensor<T>> params, double lr, std::string name)
    : params_(std::move(params)), steps_(params_.size(), 0), lr_(lr), name_(std::move(name)) {
    if (params_.empty())
        throw std::invalid_argument(name_ + ": got an empty parameter list (pass model.parameters())");
    std::set<const node<T>*> seen;
    for (std::size_t i = 0; i < params_.size(); ++i) {
        const auto& p = params_[i];
        const std::string which = name_ + ": parameter " + std::to_string(i);
        if (!p.defined()) throw std::invalid_argument(which + " is an undefined tensor");
        if (!p.is_leaf()) throw std::invalid_argument(which + " is not a leaf (an op result cannot be optimised)");
        if (!p.requires_grad()) throw std::invalid_argument(which + " does not require grad");
        if (!seen.insert(p.node_ptr()).second) throw std::invalid_argument(which + " appears twice in the list");
    }
    if (!(lr >= 0)) fail("learning rate", lr, ">= 0");
}

template <class T> void optimizer<T>::fail(const std::string& what, double v, const std::string& rule) const {
    throw std::invalid_argument(name_ + ": invalid " + what + " " + num(v) + " (must be " + rule + ")");
}

template <class T> void optimizer<T>::zero_grad() {
    detail::replayed_zero_grad<T>([this] {
        for (auto& p : params_) p.node_ptr()->grad_defined = false;  // leaves (checked at construction): what tensor::zero_grad does
    });
}

template <class T> void optimizer<T>::step() {
    detail::replayed_sgd<T>([this] { update(); }, fusion());
}

template <class T> void optimizer<T>::set_lr(double lr) {
    if (!(lr >= 0)) fail("learning rate", lr, ">= 0");
    lr_ = lr;
    lr_changed();
}

template <class T>
std::vector<std::pair<std::string, const xt::xarray<T>*>> optimizer<T>::state(std::size_t i) const {
    std::vector<std::pair<std::string, const xt::xarray<T>*>> out;
    for (auto& [n, a] : const_cast<optimizer*>(this)->buffers(i)) out.emplace_back(n, a);
    return out;
}

template <class T> std::vector<npz::entry> optimizer<T>::state_entries() const {
    std::vector<npz::entry> entries;
    entries.push_back(npz::make_entry(name_ + ".lr", xt::xarray<double>(lr_)));
    for (std::size_t i = 0; i < params_.size(); ++i) {
        const std::string prefix = name_ + "." + std::to_string(i) + ".";
        entries.push_back(npz::make_entry(prefix + "step", xt::xarray<double>(double(steps_[i]))));
        for (auto& [n, a] : state(i)) entries.push_back(npz::make_entry(prefix + n, *a));
    }
    return entries;
}

template <class T> void optimizer<T>::save_state(const std::string& path) const { npz::write(path, state_entries()); }

template <class T> void optimizer<T>::load_state(const std::string& path) { load_state(npz::read(path), path); }

template <class T> void optimizer<T>::load_state(std::vector<npz::entry> entries, const std::string& path) {
    std::map<std::string, npz::entry> file;
    for (auto& e : entries) file.emplace(e.name, std::move(e));
    auto take = [&](const std::string& key, const shape_t& shape) -> npz::entry {
        auto it = file.find(key);
        if (it == file.end()) {
            std::string hint;
            if (!file.empty() && file.begin()->first.rfind(name_ + ".", 0) != 0)
                hint = " (the file holds '" + file.begin()->first + "': state of another optimizer?)";
            throw npz::npz_error(path + ": missing optimizer state '" + key + "'" + hint);
        }
        if (it->second.shape != shape)
            throw npz::npz_error(path + ": optimizer state '" + key + "' has shape " + shape_str(it->second.shape) +
                                 " but " + shape_str(shape) + " is needed");
        npz::entry e = std::move(it->second);
        file.erase(it);
        return e;
    };
    // Validate and convert everything first; assign only when all of it is good.
    const double lr = npz::to_array<double>(take(name_ + ".lr", {}), path)();
    if (!(lr >= 0) || !std::isfinite(lr))
        throw npz::npz_error(path + ": optimizer state '" + name_ + ".lr' is " + num(lr) +
                             ", not a learning rate (a finite number >= 0)");
    // A float64 holds every integer up to 2^53 exactly; compare before converting
    // (converting 1e30 or NaN to int64 is undefined behaviour).
    constexpr double max_steps = 9007199254740992.0;
    std::vector<std::int64_t> steps(params_.size());
    std::vector<std::vector<xt::xarray<T>>> values(params_.size());
    for (std::size_t i = 0; i < params_.size(); ++i) {
        const std::string prefix = name_ + "." + std::to_string(i) + ".";
        const double s = npz::to_array<double>(take(prefix + "step", {}), path)();
        if (!(s >= 0 && s <= max_steps) || s != std::floor(s))
            throw npz::npz_error(path + ": optimizer state '" + prefix + "step' is " + num(s) +
                                 ", not a step count (a whole number from 0 to 2^53)");
        steps[i] = static_cast<std::int64_t>(s);
        for (auto& [n, a] : buffers(i)) {
            xt::xarray<T> v = npz::to_array<T>(take(prefix + n, shape_t(a->shape().begin(), a->shape().end())), path);
            for (std::size_t k = 0; k < v.size(); ++k)
                if (!std::isfinite(v.data()[k]))
                    throw npz::npz_error(path + ": optimizer state '" + prefix + n + "' has " +
                                         num(double(v.data()[k])) + " at element " + std::to_string(k) +
                                         " (state must be finite)");
            values[i].push_back(std::move(v));
        }
    }
    if (!file.empty())
        throw npz::npz_error(path + ": unexpected optimizer state '" + file.begin()->first + "' (" +
                             std::to_string(file.size()) + " unexpected in all; saved with other options or parameters?)");
    lr_ = lr;
    lr_changed();
    steps_ = steps;
    for (std::size_t i = 0; i < params_.size(); ++i) {
        std::size_t k = 0;
        for (auto& [n, a] : buffers(i)) *a = std::move(values[i][k++]);
    }
}

// -------------------------------------------------------------------- SGD
template <class T>
sgd<T>::sgd(std::vector<tensor<T>> params, sgd_options o) : optimizer<T>(std::move(params), o.lr, "sgd"), o_(o) {
    if (!(o.momentum >= 0)) this->fail("momentum", o.momentum, ">= 0");
    if (!(o.dampening >= 0 && o.dampening <= 1)) this->fail("dampening", o.dampening, "in [0, 1]");
    if (!(o.weight_decay >= 0)) this->fail("weight_decay", o.weight_decay, ">= 0");
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
        throw std::invalid_argument("sgd: nesterov momentum requires momentum > 0 and dampening == 0 (got momentum " +
                                    num(o.momentum) + ", dampening " + num(o.dampening) + ")");
    if (o.momentum != 0)
        for (auto& p : this->params_) buf_.push_back(xt::zeros<T>(p.value().shape()));
    for (auto& p : this->params_) fusion_.params.push_back(p.node_ptr());
    fusion_.taken.assign(this->params_.size(), 0);
    fusion_.weight_decay = o.weight_decay;
    lr_changed();
}

template <class T> void sgd<T>::lr_changed() { fusion_.lr = this->lr_; }

template <class T> std::vector<std::pair<std::string, xt::xarray<T>*>> sgd<T>::buffers(std::size_t i) {
    if (o_.momentum == 0) return {};
    return {{"momentum_buffer", &buf_[i]}};
}

// PyTorch 1.13 (_single_tensor_sgd):
//   d = g + wd * p;  buf = d on the first step, else momentum * buf + (1 - dampening) * d
//   d = nesterov ? d + momentum * buf : buf;  p -= lr * d
template <class T> void sgd<T>::update() {
    const T lr = T(this->lr_), wd = T(o_.weight_decay), mom = T(o_.momentum), damp1 = T(1 - o_.dampening);
    const bool l2 = o_.weight_decay != 0, nesterov = o_.nesterov;
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
        node<T>& p = *this->params_[i].node_ptr();  // a leaf: no handle checks needed
        if (fusion_.taken[i]) {  // a compiled step took it inside the weight-gradient gemm
            fusion_.taken[i] = 0;
            ++this->steps_[i];
            continue;
        }
        if (!p.grad_defined) continue;
        T* w = p.value.data();
        const T* g = p.grad.data();
        if (!l2 && o_.momentum == 0) {  // plain SGD, the usual case: no branches in the loop
            simd::parallel_for_each<T>(p.value.size(), [=](std::size_t k, auto tag) {
                simd::store(w + k, xsimd::batch<T>(simd::load(w + k, tag) - lr * simd::load(g + k, tag)), tag);
            });
            ++this->steps_[i];
            continue;
        }
        T* buf = o_.momentum != 0 ? buf_[i].data() : nullptr;
        const bool first = this->steps_[i] == 0;
        simd::parallel_for_each<T>(p.value.size(), [=](std::size_t k, auto tag) {  // by value: stores through T* cannot alias the constants
            using V = xsimd::batch<T>;
            const V wk = simd::load(w + k, tag);
            V d = simd::load(g + k, tag);
            if (l2) d = d + wd * wk;
            if (!buf) {
                simd::store(w + k, V(wk - lr * d), tag);
                return;
            }
            const V b = first ? d : V(mom * simd::load(buf + k, tag) + damp1 * d);
            simd::store(buf + k, b, tag);
            simd::store(w + k, V(wk - lr * (nesterov ? V(d + mom * b) : b)), tag);
        });
        ++this->steps_[i];
    }
}

template class optimizer<float>;
template class optimizer<double>;
template class sgd<float>;
template class sgd<double>;

}  // namespace tapegrad::optim
