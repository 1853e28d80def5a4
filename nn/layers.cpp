// Layers built from core ops: their gradients come from the tape, so each layer
// here is only its forward formula (and BatchNorm's running-statistics update).

#include "nn/layers.hpp"

#include "autograd/detail/trace.hpp"
#include "autograd/format.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include <xtensor/xnoalias.hpp>

namespace tapegrad::nn {

using detail::num;

namespace {

const std::vector<std::pair<const char*, init>> init_names = {
    {"pytorch_default", init::pytorch_default}, {"xavier_uniform", init::xavier_uniform},
    {"xavier_normal", init::xavier_normal},     {"kaiming_uniform", init::kaiming_uniform},
    {"kaiming_normal", init::kaiming_normal}};

const std::vector<std::pair<const char*, activation>> activation_names = {
    {"relu", activation::relu},       {"leaky_relu", activation::leaky_relu}, {"elu", activation::elu},
    {"gelu", activation::gelu},       {"tanh", activation::tanh},             {"sigmoid", activation::sigmoid},
    {"softplus", activation::softplus}, {"softmax", activation::softmax},    {"log_softmax", activation::log_softmax}};

template <class E, class L> E parse_name(const std::string& name, const L& list, const char* what) {
    std::string valid;
    for (const auto& [n, e] : list) {
        if (name == n) return e;
        valid += (valid.empty() ? "" : ", ") + std::string(n);
    }
    throw std::invalid_argument(std::string("unknown ") + what + " '" + name + "'; valid names: " + valid);
}

template <class E, class L> std::string name_of(E e, const L& list) {
    for (const auto& [n, v] : list)
        if (v == e) return n;
    return "?";
}

}  // namespace

init parse_init(const std::string& name) { return parse_name<init>(name, init_names, "initialiser"); }
std::string init_name(init i) { return name_of(i, init_names); }
activation parse_activation(const std::string& name) {
    return parse_name<activation>(name, activation_names, "activation");
}
std::string activation_name(activation a) { return name_of(a, activation_names); }

// ------------------------------------------------------------------ linear
template <class T>
linear<T>::linear(std::size_t in, std::size_t out, std::mt19937_64& rng, init i, bool bias) : in_(in), out_(out) {
    if (in == 0 || out == 0)
        throw std::invalid_argument("Linear: in and out features must be positive, got " + num(in) + " -> " +
                                    num(out));
    const double fan_in = double(in), fan_out = double(out);
    xt::xarray<T> w = xt::zeros<T>({out, in});
    auto fill_uniform = [&](xt::xarray<T>& a, double bound) {
        std::uniform_real_distribution<double> d(-bound, bound);
        for (auto& v : a) v = T(d(rng));
    };
    auto fill_normal = [&](xt::xarray<T>& a, double sd) {
        std::normal_distribution<double> d(0.0, sd);
        for (auto& v : a) v = T(d(rng));
    };
    switch (i) {
        case init::pytorch_default: fill_uniform(w, 1.0 / std::sqrt(fan_in)); break;
        case init::xavier_uniform: fill_uniform(w, std::sqrt(6.0 / (fan_in + fan_out))); break;
        case init::xavier_normal: fill_normal(w, std::sqrt(2.0 / (fan_in + fan_out))); break;
        case init::kaiming_uniform: fill_uniform(w, std::sqrt(6.0 / fan_in)); break;
        case init::kaiming_normal: fill_normal(w, std::sqrt(2.0 / fan_in)); break;
    }
    weight_ = &this->register_parameter("weight", tensor<T>(std::move(w), true));
    if (bias) {
        xt::xarray<T> b = xt::zeros<T>({out});
        if (i == init::pytorch_default) fill_uniform(b, 1.0 / std::sqrt(fan_in));
        bias_ = &this->register_parameter("bias", tensor<T>(std::move(b), true));
    }
}

template <class T> tensor<T>& linear<T>::bias() {
    if (!bias_) throw std::logic_error(type_name() + ": this layer has no bias");
    return *bias_;
}

template <class T> tensor<T> linear<T>::forward(const tensor<T>& x) {
    const auto& s = x.value().shape();  // a reference: tensor::shape() would copy into a new vector every call
    if (s.empty() || s.back() != in_)
        throw shape_error(type_name() + ": input of shape " + shape_str(s) + " must end in " + num(in_) +
                          " features");
    if (s.size() == 1) return reshape(forward(reshape(x, {1, in_})), {out_});
    tensor<T> y = matmul(x, *weight_, false, true);  // [N, out]: x W^T
    return bias_ ? y + *bias_ : y;
}

template <class T> std::string linear<T>::type_name() const {
    return "Linear(" + num(in_) + " -> " + num(out_) + (bias_ ? ")" : ", bias=false)");
}

// -------------------------------------------------------------- sequential
template <class T> sequential<T>::sequential(std::vector<std::shared_ptr<module<T>>> mods) {
    for (auto& m : mods) push_back(std::move(m));
}

template <class T> void sequential<T>::push_back(std::shared_ptr<module<T>> m) {
    this->register_module(std::to_string(size()), std::move(m));
}

template <class T> std::shared_ptr<module<T>> sequential<T>::operator[](std::size_t i) const {
    if (i >= size())
        throw std::out_of_range("Sequential: index " + num(i) + " out of range (size " + num(size()) + ")");
    return this->children()[i].second;
}

template <class T> tensor<T> sequential<T>::forward(const tensor<T>& x) {
    const auto& mods = this->children();
    tensor<T> y = x;
    for (std::size_t i = 0; i < mods.size(); ++i) {
        const auto* next = i + 1 < mods.size() ? dynamic_cast<const activation_module<T>*>(mods[i + 1].second.get())
                                               : nullptr;
        if (next && next->kind() == activation::relu) {
            y = mods[i].second->forward_relu(y);
            ++i;
        } else {
            y = mods[i].second->forward(y);
        }
    }
    return y;
}

// -------------------------------------------------------------- activation
template <class T> tensor<T> apply_activation(activation a, const tensor<T>& x, T alpha) {
    switch (a) {
        case activation::relu: return relu(x);
        case activation::leaky_relu: return leaky_relu(x, alpha);
        case activation::elu: return elu(x, alpha);
        case activation::gelu: return gelu(x);
        case activation::tanh: return tanh(x);
        case activation::sigmoid: return sigmoid(x);
        case activation::softplus: return softplus(x);
        case activation::softmax: return softmax(x, -1);
        case activation::log_softmax: return log_softmax(x, -1);
    }
    throw std::invalid_argument("apply_activation: unknown activation");
}

template <class T>
activation_module<T>::activation_module(activation a) : a_(a), alpha_(a == activation::leaky_relu ? T(0.01) : T(1)) {}
template <class T> activation_module<T>::activation_module(activation a, T alpha) : a_(a), alpha_(alpha) {}

template <class T> std::string activation_module<T>::type_name() const {
    switch (a_) {
        case activation::relu: return "ReLU";
        case activation::leaky_relu: return "LeakyReLU(negative_slope=" + num(alpha_) + ")";
        case activation::elu: return "ELU(alpha=" + num(alpha_) + ")";
        case activation::gelu: return "GELU";
        case activation::tanh: return "Tanh";
        case activation::sigmoid: return "Sigmoid";
        case activation::softplus: return "Softplus";
        case activation::softmax: return "Softmax(dim=-1)";
        case activation::log_softmax: return "LogSoftmax(dim=-1)";
    }
    return "Activation";
}

// ----------------------------------------------------------------- dropout
template <class T> dropout<T>::dropout(double p, std::uint64_t seed) : p_(p), rng_(seed) {
    if (!(p >= 0 && p < 1))
        throw std::invalid_argument("Dropout: invalid probability " + num(p) + " (must be in [0, 1))");
}

template <class T> tensor<T> dropout<T>::forward(const tensor<T>& x) {
    if (!this->is_training() || p_ == 0) return x;
    if (detail::tracer<T>* t = detail::active_tracer<T>())  // its mask is drawn in C++, a new one every call
        t->not_replayable("Dropout in training mode draws its mask in C++; a step with it runs eagerly");
    xt::xarray<T> mask = xt::empty<T>(x.value().shape());
    const T keep_scale = T(1.0 / (1.0 - p_));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (auto& m : mask) m = u(rng_) < p_ ? T(0) : keep_scale;
    return x * tensor<T>(std::move(mask), false);
}

template <class T> std::string dropout<T>::type_name() const { return "Dropout(p=" + num(p_) + ")"; }

// -------------------------------------------------------------- layer_norm
template <class T> layer_norm<T>::layer_norm(std::size_t features, double eps, bool affine)
    : features_(features), eps_(eps) {
    if (features == 0) throw std::invalid_argument("LayerNorm: features must be positive");
    if (!(eps > 0)) throw std::invalid_argument("LayerNorm: invalid eps " + num(eps) + " (must be > 0)");
    if (affine) {
        weight_ = &this->register_parameter("weight", tensor<T>::ones({features}, true));
        bias_ = &this->register_parameter("bias", tensor<T>::zeros({features}, true));
    }
}

template <class T> tensor<T> layer_norm<T>::forward(const tensor<T>& x) {
    const auto s = x.shape();
    if (s.empty() || s.back() != features_)
        throw shape_error(type_name() + ": input of shape " + shape_str(s) + " must end in " + num(features_));
    tensor<T> mu = mean(x, {-1}, true);
    tensor<T> xc = x - mu;
    tensor<T> var = mean(xc * xc, {-1}, true);           // biased, as PyTorch
    tensor<T> y = xc / sqrt(var + T(eps_));
    return weight_ ? y * *weight_ + *bias_ : y;
}

template <class T> std::string layer_norm<T>::type_name() const {
    return "LayerNorm(" + num(features_) + ", eps=" + num(eps_) + (weight_ ? ")" : ", affine=false)");
}

// ------------------------------------------------------------ batch_norm1d
template <class T>
batch_norm1d<T>::batch_norm1d(std::size_t features, double eps, double momentum, bool affine)
    : features_(features), eps_(eps), momentum_(momentum) {
    if (features == 0) throw std::invalid_argument("BatchNorm1d: features must be positive");
    if (!(eps > 0)) throw std::invalid_argument("BatchNorm1d: invalid eps " + num(eps) + " (must be > 0)");
    if (!(momentum >= 0 && momentum <= 1))
        throw std::invalid_argument("BatchNorm1d: invalid momentum " + num(momentum) + " (must be in [0, 1])");
    if (affine) {
        weight_ = &this->register_parameter("weight", tensor<T>::ones({features}, true));
        bias_ = &this->register_parameter("bias", tensor<T>::zeros({features}, true));
    }
    running_mean_ = &this->register_buffer("running_mean", tensor<T>::zeros({features}));
    running_var_ = &this->register_buffer("running_var", tensor<T>::ones({features}));
}

template <class T> tensor<T> batch_norm1d<T>::forward(const tensor<T>& x) {
    const auto s = x.shape();
    if (s.size() != 2 || s[1] != features_)
        throw shape_error(type_name() + ": input of shape " + shape_str(s) + " must be [N, " + num(features_) + "]");
    tensor<T> y;
    if (this->is_training()) {
        const std::size_t n = s[0];
        if (n < 2)
            throw shape_error(type_name() + ": training mode needs more than 1 sample per channel, got input " +
                              shape_str(s) + " (use eval() for single samples)");
        tensor<T> mu = mean(x, {0});
        tensor<T> xc = x - mu;
        tensor<T> var = mean(xc * xc, {0});  // biased: what the batch is normalised with
        y = xc / sqrt(var + T(eps_));
        // Running stats track the unbiased variance, as PyTorch.
        const T m = T(momentum_), keep = T(1 - momentum_), unbias = T(double(n) / double(n - 1));
        auto& rm = running_mean_->mutable_value();
        auto& rv = running_var_->mutable_value();
        xt::noalias(rm) = keep * rm + m * mu.value();
        xt::noalias(rv) = keep * rv + m * (var.value() * unbias);
    } else {
        y = (x - *running_mean_) / sqrt(*running_var_ + T(eps_));
    }
    return weight_ ? y * *weight_ + *bias_ : y;
}

template <class T> std::string batch_norm1d<T>::type_name() const {
    return "BatchNorm1d(" + num(features_) + ", eps=" + num(eps_) + ", momentum=" + num(momentum_) +
           (weight_ ? ")" : ", affine=false)");
}

// --------------------------------------------------------------------- mlp
template <class T>
std::shared_ptr<sequential<T>> mlp(const std::vector<std::size_t>& sizes, activation hidden, std::mt19937_64& rng,
                                   init i) {
    if (sizes.size() < 2)
        throw std::invalid_argument("mlp: needs at least two sizes (inputs and outputs), got " + num(sizes.size()));
    auto net = std::make_shared<sequential<T>>();
    for (std::size_t k = 0; k + 1 < sizes.size(); ++k) {
        net->push_back(std::make_shared<linear<T>>(sizes[k], sizes[k + 1], rng, i));
        if (k + 2 < sizes.size()) net->push_back(std::make_shared<activation_module<T>>(hidden));
    }
    return net;
}

#define TAPEGRAD_NN_LAYERS(T)                                                                         \
    template class linear<T>;                                                                         \
    template class sequential<T>;                                                                     \
    template class activation_module<T>;                                                              \
    template class dropout<T>;                                                                        \
    template class layer_norm<T>;                                                                     \
    template class batch_norm1d<T>;                                                                   \
    template tensor<T> apply_activation<T>(activation, const tensor<T>&, T);                          \
    template std::shared_ptr<sequential<T>> mlp<T>(const std::vector<std::size_t>&, activation,       \
                                                   std::mt19937_64&, init);
TAPEGRAD_NN_LAYERS(float)
TAPEGRAD_NN_LAYERS(double)
#undef TAPEGRAD_NN_LAYERS

}  // namespace tapegrad::nn
