#pragma once
// Convolutional layers on NCHW tensors, as torch.nn's Conv2d, MaxPool2d,
// AvgPool2d, AdaptiveAvgPool2d(1), BatchNorm2d, Flatten and Unflatten. Their
// gradients come from the ops of autograd/conv.hpp; only BatchNorm2d keeps
// state outside the tape (its running statistics).

#include <array>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "autograd/conv.hpp"
#include "nn/layers.hpp"

namespace tapegrad::nn {

/// y = conv2d(x, weight, bias): x [N, in, H, W], weight [out, in/groups, kh, kw].
/// pytorch_default initialises weight and bias from U(-b, b), b = 1/sqrt(fan_in),
/// fan_in = in/groups * kh * kw (torch.nn.Conv2d's reset_parameters); the
/// Xavier and Kaiming initialisers use fan_out = out/groups * kh * kw and a zero bias.
template <class T> class conv2d : public module<T> {
  public:
    /// A layer of `out` filters of `kernel` over `in` channels, initialised from `rng`
    /// (weight first, row-major, then bias).
    conv2d(std::size_t in, std::size_t out, std::array<std::size_t, 2> kernel, std::mt19937_64& rng,
           const conv2d_options& options = {}, bool bias = true, init i = init::pytorch_default);
    /// Forward: conv2d(x, weight, bias, options).
    tensor<T> forward(const tensor<T>& x) override;
    /// The weight [out, in/groups, kh, kw].
    tensor<T>& weight() { return *weight_; }
    /// Whether the layer has a bias.
    bool has_bias() const { return bias_ != nullptr; }
    /// The options (stride, padding, dilation, groups).
    const conv2d_options& options() const { return options_; }
    /// "Conv2d(1 -> 32, kernel=(3, 3), padding=(1, 1))" (non-default options only).
    std::string type_name() const override;

  private:
    std::size_t in_, out_;
    std::array<std::size_t, 2> kernel_;
    conv2d_options options_;
    tensor<T>* weight_ = nullptr;
    tensor<T>* bias_ = nullptr;
};

/// max_pool2d as a module; stride {0, 0} means the kernel (PyTorch's default).
template <class T> class max_pool2d : public module<T> {
  public:
    /// Pooling over `kernel` windows.
    explicit max_pool2d(std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride = {0, 0},
                        std::array<std::size_t, 2> padding = {0, 0});
    /// Forward: the maximum of each window (ties: autograd/conv.hpp).
    tensor<T> forward(const tensor<T>& x) override;
    /// "MaxPool2d(kernel=(2, 2), stride=(2, 2))".
    std::string type_name() const override;

  private:
    std::array<std::size_t, 2> kernel_, stride_, padding_;
};

/// avg_pool2d as a module (the zero padding counted, as PyTorch's default).
template <class T> class avg_pool2d : public module<T> {
  public:
    /// Pooling over `kernel` windows.
    explicit avg_pool2d(std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride = {0, 0},
                        std::array<std::size_t, 2> padding = {0, 0});
    /// Forward: the mean of each window.
    tensor<T> forward(const tensor<T>& x) override;
    /// "AvgPool2d(kernel=(2, 2), stride=(2, 2))".
    std::string type_name() const override;

  private:
    std::array<std::size_t, 2> kernel_, stride_, padding_;
};

/// Mean over each channel's image, [N, C, H, W] -> [N, C] (AdaptiveAvgPool2d(1)
/// followed by flatten, the usual head of a convolutional net).
template <class T> class global_avg_pool2d : public module<T> {
  public:
    /// Forward: flatten(adaptive_avg_pool2d_1x1(x)).
    tensor<T> forward(const tensor<T>& x) override { return tapegrad::flatten(adaptive_avg_pool2d_1x1(x)); }
    /// "GlobalAvgPool2d".
    std::string type_name() const override { return "GlobalAvgPool2d"; }
};

/// Batch normalisation of x [N, C, H, W] over N, H and W (torch.nn.BatchNorm2d).
/// Training: normalise with the batch's mean and biased variance, and move the
/// buffers running_mean/running_var (unbiased variance) by `momentum`.
/// Eval: normalise with the running statistics.
template <class T> class batch_norm2d : public module<T> {
  public:
    /// BatchNorm over `channels` channels; weight starts at ones, bias at zeros.
    explicit batch_norm2d(std::size_t channels, double eps = 1e-5, double momentum = 0.1, bool affine = true);
    /// Normalise x [N, channels, H, W]; training mode needs N*H*W > 1.
    tensor<T> forward(const tensor<T>& x) override { return apply(x, false); }
    /// relu(forward(x)) as one node (tapegrad::batch_norm2d_relu).
    tensor<T> forward_relu(const tensor<T>& x) override { return apply(x, true); }
    /// The running mean buffer [channels].
    tensor<T>& running_mean() { return *running_mean_; }
    /// The running variance buffer [channels].
    tensor<T>& running_var() { return *running_var_; }
    /// "BatchNorm2d(32, eps=1e-05, momentum=0.1)".
    std::string type_name() const override;

  private:
    tensor<T> apply(const tensor<T>& x, bool relu);

    std::size_t channels_;
    double eps_, momentum_;
    tensor<T>* weight_ = nullptr;
    tensor<T>* bias_ = nullptr;
    tensor<T>* running_mean_ = nullptr;
    tensor<T>* running_var_ = nullptr;
};

/// [N, d1, d2, ...] -> [N, d1*d2*...] (torch.nn.Flatten()).
template <class T> class flatten : public module<T> {
  public:
    /// Forward: tapegrad::flatten(x).
    tensor<T> forward(const tensor<T>& x) override { return tapegrad::flatten(x); }
    /// "Flatten".
    std::string type_name() const override { return "Flatten"; }
};

/// [N, prod(shape)] -> [N, shape...] (torch.nn.Unflatten(1, shape)): how a
/// network of images takes the trainer's flat rows of pixels.
template <class T> class unflatten : public module<T> {
  public:
    /// Rows of prod(shape) features become tensors of `shape`.
    explicit unflatten(std::vector<std::size_t> shape);
    /// Forward: reshape(x, {N, shape...}); throws naming both shapes on a mismatch.
    tensor<T> forward(const tensor<T>& x) override;
    /// "Unflatten(1, 28, 28)".
    std::string type_name() const override;

  private:
    std::vector<std::size_t> shape_;
    std::size_t features_ = 1;
};

extern template class conv2d<float>;
extern template class conv2d<double>;
extern template class max_pool2d<float>;
extern template class max_pool2d<double>;
extern template class avg_pool2d<float>;
extern template class avg_pool2d<double>;
extern template class global_avg_pool2d<float>;
extern template class global_avg_pool2d<double>;
extern template class batch_norm2d<float>;
extern template class batch_norm2d<double>;
extern template class flatten<float>;
extern template class flatten<double>;
extern template class unflatten<float>;
extern template class unflatten<double>;

}  // namespace tapegrad::nn
