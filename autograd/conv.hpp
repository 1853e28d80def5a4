#pragma once
// Convolution and pooling on NCHW tensors, as torch.nn.functional's conv2d,
// max_pool2d, avg_pool2d, adaptive_avg_pool2d(x, 1), batch_norm and flatten.
//
// conv2d is unfold2d (im2col: every kernel window as a column) then one gemm per
// sample and group (BLAS) with the bias added in the same pass; fold2d (col2im) is
// unfold2d's transpose and backward. max_pool2d picks each window's winner;
// avg_pool2d averages the unfolded windows. batch_norm2d (with or without a
// following relu) is one fused node.

#include <array>
#include <cstddef>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// Geometry of a 2-D sliding window. Padding may differ on the two sides of an
/// axis (PyTorch's "same" padding of an even kernel does).
struct window2d {
    std::array<std::size_t, 2> kernel{1, 1};    ///< kh, kw
    std::array<std::size_t, 2> stride{1, 1};    ///< sh, sw (at least 1)
    std::array<std::size_t, 2> pad_before{0, 0};  ///< top, left
    std::array<std::size_t, 2> pad_after{0, 0};   ///< bottom, right
    std::array<std::size_t, 2> dilation{1, 1};  ///< dh, dw (at least 1)
};

/// Options of conv2d, as torch.nn.functional.conv2d.
struct conv2d_options {
    std::array<std::size_t, 2> stride{1, 1};
    std::array<std::size_t, 2> padding{0, 0};  ///< zeros on both sides
    bool same = false;  ///< padding="same": the output has the input's size (stride 1 only)
    std::array<std::size_t, 2> dilation{1, 1};
    std::size_t groups = 1;
};

/// im2col: x [N, C, H, W] -> [N, C*kh*kw, oh*ow]; row c*kh*kw + i*kw + j of column
/// (oy, ox) is x[c, oy*sh - top + i*dh, ox*sw - left + j*dw], 0 in the padding.
template <class T> tensor<T> unfold2d(const tensor<T>& x, const window2d& w);
/// col2im, unfold2d's transpose: cols [N, C*kh*kw, oh*ow] summed into [N, C, H, W].
template <class T> tensor<T> fold2d(const tensor<T>& cols, std::size_t height, std::size_t width, const window2d& w);

/// y = conv(x, weight) + bias: x [N, C, H, W], weight [O, C/groups, kh, kw], bias [O]
/// or undefined (a default-constructed tensor) for none; y [N, O, oh, ow].
template <class T>
tensor<T> conv2d(const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias = tensor<T>(),
                 const conv2d_options& o = {});

/// Maximum of each window (padding never wins: PyTorch pads with -inf). Ties go to
/// the first maximum in row-major window order, NaN to the last NaN, as PyTorch's
/// CPU kernel; the gradient flows to that element alone. stride 0 means the kernel.
template <class T>
tensor<T> max_pool2d(const tensor<T>& x, std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride = {0, 0},
                     std::array<std::size_t, 2> padding = {0, 0});

/// Mean of each window, the zero padding counted (PyTorch's count_include_pad=True).
template <class T>
tensor<T> avg_pool2d(const tensor<T>& x, std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride = {0, 0},
                     std::array<std::size_t, 2> padding = {0, 0});

/// Mean over each channel's image: [N, C, H, W] -> [N, C, 1, 1].
template <class T> tensor<T> adaptive_avg_pool2d_1x1(const tensor<T>& x);

/// Batch normalisation of x [N, C, H, W] per channel, as torch.nn.functional.batch_norm:
/// y = (x - mean) / sqrt(var + eps) * weight + bias. Training: the batch's mean and
/// biased variance, and running_mean/running_var (when given) move by `momentum`
/// towards the batch's mean and unbiased variance. Eval: the running statistics.
/// weight and bias [C] are both given or both undefined (no affine part).
template <class T>
tensor<T> batch_norm2d(const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias,
                       const tensor<T>& running_mean, const tensor<T>& running_var, bool training,
                       double momentum = 0.1, double eps = 1e-5);

/// relu(batch_norm2d(...)) as one node, with one pass over the activations less each
/// way (oneDNN's fused norm + relu). Values and running statistics are the same bits;
/// gradients too in double, and within float rounding (a few ulps) in float.
/// relu'(0) = 0, as torch. nn::sequential uses it for a BatchNorm2d followed by ReLU.
template <class T>
tensor<T> batch_norm2d_relu(const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias,
                            const tensor<T>& running_mean, const tensor<T>& running_var, bool training,
                            double momentum = 0.1, double eps = 1e-5);

/// [N, d1, d2, ...] -> [N, d1*d2*...] (torch.flatten(x, 1)).
template <class T> tensor<T> flatten(const tensor<T>& x);

}  // namespace tapegrad
