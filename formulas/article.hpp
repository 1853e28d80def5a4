#pragma once
// The article's two-layer network and its hand-derived backpropagation
// formulas, written by hand in xtensor (float64), exactly as the article states
// them, next to the corrected formulas. formulas/audit.hpp checks every one of
// them against the tape and against finite differences.
//
// The article:
//     output = softmax(W2 * tanh(W1 * input + b1) + b2), trained with mean squared error
//     delta3 = output * (1 - output) * (target - output)
//     delta2 = delta3 * W2' * tanh'(W1 * input + b1)
//     delta1 = delta2 * W1' * input
//     W2 += lr * delta3 * hidden',  b2 += lr * delta3
//     W1 += lr * delta2 * input',   b1 += lr * delta2
//
// How we read it (see docs/formulas.md):
//  * Column vectors. W1 is [hidden, in], W2 is [out, hidden], b1 is [hidden, 1],
//    b2 is [out, 1]. `input` is [in, N]: one sample per column, N = 1 is the
//    article's single sample; every formula below is the per-sample formula
//    applied to each column, and weight/bias gradients sum over the columns.
//  * ' is transpose, "A * v" with A a matrix is a matrix product, "*" between
//    two vectors of equal length is elementwise, and "u * v'" is an outer product.
//    So delta2 = (W2' delta3) .* tanh'(z1), with z1 = W1 input + b1 and
//    tanh'(z1) = 1 - tanh(z1)^2.
//  * The loss is E = 1/2 * sum((target - output)^2) over outputs and samples;
//    it is the convention under which the article's delta3 can be exact.
//    tapegrad's mse(reduction::mean) is E * 2 / (out * N), so its gradients are
//    the ones below times 2 / (out * N).
//  * The deltas are negative gradients: delta3 should be -dE/dz2, delta2 -dE/dz1
//    (z2 = W2 hidden + b2, z1 = W1 input + b1), and the updates add lr * delta,
//    so the gradients they imply are dE/dW2 = -delta3 hidden', dE/db2 = -sum_cols delta3,
//    dE/dW1 = -delta2 input', dE/db1 = -sum_cols delta2.
//  * delta1 literally: "delta2 * W1' * input" has the shape of delta2's formula
//    with `input` where the activation derivative was, so we read it as
//    (W1' delta2) .* input, and audit it as the error at the input, -dE/dinput.

#include <string>

#include <xtensor/xarray.hpp>

namespace tapegrad::formulas {

/// The output layer's activation: the article's softmax, or an elementwise sigmoid.
enum class output_activation { softmax, sigmoid };

/// "softmax" or "sigmoid".
const char* to_string(output_activation a);

/// The network's parameters (column-vector convention).
struct network {
    xt::xarray<double> W1; ///< [hidden, in]
    xt::xarray<double> b1; ///< [hidden, 1]
    xt::xarray<double> W2; ///< [out, hidden]
    xt::xarray<double> b2; ///< [out, 1]
    output_activation activation = output_activation::softmax; ///< the output layer's activation
};

/// A random network and a batch to evaluate it on, reproducible from `seed`:
/// weights uniform in [-1, 1], inputs standard normal, one-hot targets.
struct problem {
    network net;               ///< the parameters
    xt::xarray<double> input;  ///< [in, N]
    xt::xarray<double> target; ///< [out, N], one-hot columns
};

/// Build a problem with the given sizes; throws std::invalid_argument if a size is 0.
problem make_problem(output_activation activation, unsigned seed, std::size_t in = 4, std::size_t hidden = 5,
                     std::size_t out = 3, std::size_t samples = 4);

/// Every intermediate of the forward pass.
struct forward_values {
    xt::xarray<double> z1;     ///< W1 input + b1, [hidden, N]
    xt::xarray<double> hidden; ///< tanh(z1)
    xt::xarray<double> z2;     ///< W2 hidden + b2, [out, N]
    xt::xarray<double> output; ///< softmax over each column of z2, or sigmoid(z2)
};

/// The forward pass by hand. Throws std::invalid_argument naming the shapes if they do not fit.
forward_values forward(const network& net, const xt::xarray<double>& input);

/// E = 1/2 * sum((target - output)^2), by hand.
double loss(const xt::xarray<double>& output, const xt::xarray<double>& target);

/// Gradients of E with respect to the parameters, in the network's layout.
struct gradients {
    xt::xarray<double> W1; ///< dE/dW1, [hidden, in]
    xt::xarray<double> b1; ///< dE/db1, [hidden, 1]
    xt::xarray<double> W2; ///< dE/dW2, [out, hidden]
    xt::xarray<double> b2; ///< dE/db2, [out, 1]
};

// ------------------------------------------------------------ as the article states them
/// Article: delta3 = output * (1 - output) * (target - output), elementwise,
/// whatever the output activation.
xt::xarray<double> article_delta3(const xt::xarray<double>& output, const xt::xarray<double>& target);

/// Article: delta2 = delta3 * W2' * tanh'(W1 * input + b1), read as
/// (W2' delta3) .* (1 - tanh(z1)^2).
xt::xarray<double> article_delta2(const network& net, const forward_values& fw, const xt::xarray<double>& delta3);

/// Article, literal reading: delta1 = delta2 * W1' * input, read as (W1' delta2) .* input.
xt::xarray<double> article_delta1(const network& net, const xt::xarray<double>& delta2,
                                  const xt::xarray<double>& input);

/// The gradients the article's updates imply from its deltas:
/// dE/dW2 = -delta3 hidden', dE/db2 = -delta3, dE/dW1 = -delta2 input', dE/db1 = -delta2
/// (bias terms summed over the samples).
gradients article_gradients(const forward_values& fw, const xt::xarray<double>& input,
                            const xt::xarray<double>& delta3, const xt::xarray<double>& delta2);

/// The article's whole chain: its delta3, the delta2 built on it, and the gradients.
gradients article_chain(const network& net, const xt::xarray<double>& input, const xt::xarray<double>& target);

// ------------------------------------------------------------------- corrected
/// -dE/dz2. Sigmoid (elementwise): o (1 - o) (t - o), the article's formula.
/// Softmax (Jacobian do_j/dz_k = o_j (delta_jk - o_k)):
/// o_j * ((t_j - o_j) - sum_k o_k (t_k - o_k)) in each column.
xt::xarray<double> correct_delta3(output_activation activation, const xt::xarray<double>& output,
                                  const xt::xarray<double>& target);

/// -dE/dinput = W1' delta2: the error propagated to the input (no "* input").
xt::xarray<double> correct_delta1(const network& net, const xt::xarray<double>& delta2);

/// The correct chain: correct_delta3, then the article's delta2 step (which is
/// right) and the gradients it implies (dE/dW1 = -delta2 input' is the other
/// sensible reading of the article's delta1).
gradients correct_chain(const network& net, const xt::xarray<double>& input, const xt::xarray<double>& target);

// ------------------------------------------------------------------- helpers
/// Matrix product a . b of 2-D arrays, by hand; throws std::invalid_argument naming the shapes.
xt::xarray<double> matmul(const xt::xarray<double>& a, const xt::xarray<double>& b);
/// Transpose of a 2-D array (materialised).
xt::xarray<double> transpose(const xt::xarray<double>& a);
/// Sum over the columns of [rows, N]: [rows, 1].
xt::xarray<double> sum_columns(const xt::xarray<double>& a);

}  // namespace tapegrad::formulas
