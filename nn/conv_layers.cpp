// Convolutional layers (nn/conv_layers.hpp): each is its forward formula over
// the ops of autograd/conv.hpp, plus BatchNorm2d's running-statistics update.

#include "nn/conv_layers.hpp"

#include <cmath>
#include <stdexcept>

#include "autograd/format.hpp"

namespace tapegrad::nn {

using detail::num;

namespace {
std::string pair_str(const std::array<std::size_t, 2>& a) { return "(" + num(a[0]) + ", " + num(a[1]) + ")"; }

template <class T> void fill_uniform(xt::xarray<T>& a, double bound, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> d(-bound, bound);
    for (auto& v : a) v = T(d(rng));
}

template <class T> void fill_normal(xt::xarray<T>& a, double sd, std::mt19937_64& rng) {
    std::normal_distribution<double> d(0.0, sd);
    for (auto& v : a) v = T(d(rng));
}

std::string pool_name(const char* kind, const std::array<std::size_t, 2>& kernel,
                      const std::array<std::size_t, 2>& stride, const std::array<std::size_t, 2>& padding) {
    const std::array<std::size_t, 2> s{stride[0] ? stride[0] : kernel[0], stride[1] ? stride[1] : kernel[1]};
    std::string out = std::string(kind) + "(kernel=" + pair_str(kernel) + ", stride=" + pair_str(s);
    if (padding[0] || padding[1]) out += ", padding=" + pair_str(padding);
    return out + ")";
}
}  // namespace

// ------------------------------------------------------------------ conv2d
template <class T>
conv2d<T>::conv2d(std::size_t in, std::size_t out, std::array<std::size_t, 2> kernel, std::mt19937_64& rng,
                  const conv2d_options& options, bool bias, init i)
    : in_(in), out_(out), kernel_(kernel), options_(options) {
    if (in == 0 || out == 0 || kernel[0] == 0 || kernel[1] == 0)
        throw std::invalid_argument("Conv2d: channels and kernel must be positive, got " + num(in) + " -> " +
                                    num(out) + ", kernel " + pair_str(kernel));
    if (options.groups == 0 || in % options.groups != 0 || out % options.groups != 0)
        throw std::invalid_argument("Conv2d: groups = " + num(options.groups) + " must divide both " + num(in) +
                                    " input and " + num(out) + " output channels");
    const std::size_t per_group = in / options.groups, taps = kernel[0] * kernel[1];
    const double fan_in = double(per_group * taps), fan_out = double(out / options.groups * taps);
    xt::xarray<T> w = xt::zeros<T>({out, per_group, kernel[0], kernel[1]});
    switch (i) {
        // kaiming_uniform_(a=sqrt(5)) of torch.nn.Conv2d: gain sqrt(1/3) * sqrt(3/fan_in)
        case init::pytorch_default: fill_uniform(w, 1.0 / std::sqrt(fan_in), rng); break;
        case init::xavier_uniform: fill_uniform(w, std::sqrt(6.0 / (fan_in + fan_out)), rng); break;
        case init::xavier_normal: fill_normal(w, std::sqrt(2.0 / (fan_in + fan_out)), rng); break;
        case init::kaiming_uniform: fill_uniform(w, std::sqrt(6.0 / fan_in), rng); break;
        case init::kaiming_normal: fill_normal(w, std::sqrt(2.0 / fan_in), rng); break;
    }
    weight_ = &this->register_parameter("weight", tensor<T>(std::move(w), true));
    if (bias) {
        xt::xarray<T> b = xt::zeros<T>({out});
        if (i == init::pytorch_default) fill_uniform(b, 1.0 / std::sqrt(fan_in), rng);
        bias_ = &this->register_parameter("bias", tensor<T>(std::move(b), true));
    }
}

template <class T> tensor<T> conv2d<T>::forward(const tensor<T>& x) {
    return tapegrad::conv2d(x, *weight_, bias_ ? *bias_ : tensor<T>(), options_);
}

template <class T> std::string conv2d<T>::type_name() const {
    std::string s = "Conv2d(" + num(in_) + " -> " + num(out_) + ", kernel=" + pair_str(kernel_);
    const conv2d_options& o = options_;
    if (o.stride != std::array<std::size_t, 2>{1, 1}) s += ", stride=" + pair_str(o.stride);
    if (o.same) s += ", padding=same";
    else if (o.padding != std::array<std::size_t, 2>{0, 0}) s += ", padding=" + pair_str(o.padding);
    if (o.dilation != std::array<std::size_t, 2>{1, 1}) s += ", dilation=" + pair_str(o.dilation);
    if (o.groups != 1) s += ", groups=" + num(o.groups);
    if (!bias_) s += ", bias=false";
    return s + ")";
}

// ------------------------------------------------------------------ pooling
template <class T>
max_pool2d<T>::max_pool2d(std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride,
                          std::array<std::size_t, 2> padding)
    : kernel_(kernel), stride_(stride), padding_(padding) {
    if (kernel[0] == 0 || kernel[1] == 0)
        throw std::invalid_argument("MaxPool2d: kernel " + pair_str(kernel) + " must be at least 1");
}

template <class T> tensor<T> max_pool2d<T>::forward(const tensor<T>& x) {
    return tapegrad::max_pool2d(x, kernel_, stride_, padding_);
}

template <class T> std::string max_pool2d<T>::type_name() const {
    return pool_name("MaxPool2d", kernel_, stride_, padding_);
}

template <class T>
avg_pool2d<T>::avg_pool2d(std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride,
                          std::array<std::size_t, 2> padding)
    : kernel_(kernel), stride_(stride), padding_(padding) {
    if (kernel[0] == 0 || kernel[1] == 0)
        throw std::invalid_argument("AvgPool2d: kernel " + pair_str(kernel) + " must be at least 1");
}

template <class T> tensor<T> avg_pool2d<T>::forward(const tensor<T>& x) {
    return tapegrad::avg_pool2d(x, kernel_, stride_, padding_);
}

template <class T> std::string avg_pool2d<T>::type_name() const {
    return pool_name("AvgPool2d", kernel_, stride_, padding_);
}

// ------------------------------------------------------------- batch_norm2d
template <class T>
batch_norm2d<T>::batch_norm2d(std::size_t channels, double eps, double momentum, bool affine)
    : channels_(channels), eps_(eps), momentum_(momentum) {
    if (channels == 0) throw std::invalid_argument("BatchNorm2d: channels must be positive");
    if (!(eps > 0)) throw std::invalid_argument("BatchNorm2d: invalid eps " + num(eps) + " (must be > 0)");
    if (!(momentum >= 0 && momentum <= 1))
        throw std::invalid_argument("BatchNorm2d: invalid momentum " + num(momentum) + " (must be in [0, 1])");
    if (affine) {
        weight_ = &this->register_parameter("weight", tensor<T>::ones({channels}, true));
        bias_ = &this->register_parameter("bias", tensor<T>::zeros({channels}, true));
    }
    running_mean_ = &this->register_buffer("running_mean", tensor<T>::zeros({channels}));
    running_var_ = &this->register_buffer("running_var", tensor<T>::ones({channels}));
}

template <class T> tensor<T> batch_norm2d<T>::apply(const tensor<T>& x, bool relu) {
    const auto& s = x.value().shape();  // inline storage: no allocation
    if (s.size() != 4 || s[1] != channels_)
        throw shape_error(type_name() + ": input of shape " + shape_str(s) + " must be [N, " + num(channels_) +
                          ", H, W]");
    if (this->is_training() && s[0] * s[2] * s[3] < 2)
        throw shape_error(type_name() + ": training mode needs more than 1 value per channel, got input " +
                          shape_str(s) + " (use eval() for a single 1x1 sample)");
    const tensor<T> none;
    const auto op = relu ? &tapegrad::batch_norm2d_relu<T> : &tapegrad::batch_norm2d<T>;
    return op(x, weight_ ? *weight_ : none, bias_ ? *bias_ : none, *running_mean_, *running_var_, this->is_training(),
              momentum_, eps_);
}

template <class T> std::string batch_norm2d<T>::type_name() const {
    return "BatchNorm2d(" + num(channels_) + ", eps=" + num(eps_) + ", momentum=" + num(momentum_) +
           (weight_ ? ")" : ", affine=false)");
}

// ---------------------------------------------------------------- unflatten
template <class T> unflatten<T>::unflatten(std::vector<std::size_t> shape) : shape_(std::move(shape)) {
    if (shape_.empty()) throw std::invalid_argument("Unflatten: needs at least one dimension");
    for (auto d : shape_) {
        if (d == 0) throw std::invalid_argument("Unflatten: dimensions must be positive, got " + shape_str(shape_));
        features_ *= d;
    }
}

template <class T> tensor<T> unflatten<T>::forward(const tensor<T>& x) {
    const auto& s = x.value().shape();
    if (s.size() != 2 || s[1] != features_)
        throw shape_error(type_name() + ": input of shape " + shape_str(s) + " must be [N, " + num(features_) +
                          "] to become [N, " + [&] {
                              std::string d;
                              for (auto v : shape_) d += ", " + num(v);
                              return d.substr(2);
                          }() + "]");
    thread_local shape_t to;  // reused (reshape takes a shape_t): no allocation after the first call
    to.assign(1, s[0]);
    to.insert(to.end(), shape_.begin(), shape_.end());
    return reshape(x, to);
}

template <class T> std::string unflatten<T>::type_name() const {
    std::string s = "Unflatten(1";
    for (auto d : shape_) s += ", " + num(d);
    return s + ")";
}

#define TAPEGRAD_NN_CONV_LAYERS(T)          \
    template class conv2d<T>;               \
    template class max_pool2d<T>;           \
    template class avg_pool2d<T>;           \
    template class global_avg_pool2d<T>;    \
    template class batch_norm2d<T>;         \
    template class flatten<T>;              \
    template class unflatten<T>;
TAPEGRAD_NN_CONV_LAYERS(float)
TAPEGRAD_NN_CONV_LAYERS(double)
#undef TAPEGRAD_NN_CONV_LAYERS

}  // namespace tapegrad::nn
