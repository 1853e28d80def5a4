#pragma once
// Functional transforms over functions of several tensors, in the spirit of
// torch.autograd.functional and JAX: vjp, jvp, jacobian, hessian, hvp
// (definitions in functional.cpp, for float and double; docs/higher_order.md).
//
// Each call records the function on the calling thread's tape and rewinds the
// tape to where it was before returning, so calls can repeat without growing the
// tape. Results are then detached leaves: values, with no history. With
// `create_graph` the tape is not rewound: the results are recorded tensors,
// differentiable again with respect to the inputs that require grad (and to the
// vectors v / seeds that do), and they live until reset_tape() like any op result.
//
//   using namespace tapegrad;
//   auto f = [](const std::vector<tensor<double>>& in) { return sum(in[0] * in[0] * in[1]); };
//   auto H = functional::hessian<double>(f, {x, y});  // H[i][j]: d2f / d in_i d in_j

#include <functional>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {
namespace functional {

/// A function of several tensors with one output.
template <class T> using fn = std::function<tensor<T>(const std::vector<tensor<T>>&)>;
/// A function of several tensors with several outputs (for jacobian).
template <class T> using multi_fn = std::function<std::vector<tensor<T>>(const std::vector<tensor<T>>&)>;

namespace detail {
template <class X> struct identity { using type = X; };
/// Keeps a parameter out of template argument deduction, so a lambda binds to
/// std::function once T is known from the inputs or given as hessian<double>.
template <class X> using nondeduced = typename identity<X>::type;
}  // namespace detail

/// How jacobian builds the matrix.
enum class mode {
    automatic,  ///< reverse when the output has no more elements than the inputs together, else forward
    reverse,    ///< one vector-Jacobian product per output element (a row each)
    forward,    ///< one Jacobian-vector product per input element (a column each)
};

/// Options of every transform.
struct options {
    /// Keep the results recorded on the tape, differentiable again (no rewind).
    bool create_graph = false;
};

/// The output of f and u^T J, one entry per input.
template <class T> struct vjp_result {
    tensor<T> output;             ///< f(inputs)
    std::vector<tensor<T>> vjps;  ///< u^T J_i, of input i's shape
};

/// The output of f and J v.
template <class T> struct jvp_result {
    tensor<T> output;  ///< f(inputs)
    tensor<T> jvp;     ///< sum_i J_i v_i, of the output's shape
};

/// The output of a scalar f and H v, one entry per input.
template <class T> struct hvp_result {
    tensor<T> output;             ///< f(inputs), one element
    std::vector<tensor<T>> hvps;  ///< sum_j H_ij v_j, of input i's shape
};

/// Vector-Jacobian product u^T J (torch.autograd.functional.vjp): one forward and
/// one reverse pass. `u` has the output's shape; leave it undefined for an output
/// with one element (u = 1, the gradient). A wrong-shaped u, or no u for a larger
/// output, throws shape_error naming both shapes.
template <class T>
vjp_result<T> vjp(const detail::nondeduced<fn<T>>& f, const std::vector<tensor<T>>& inputs,
                  const tensor<T>& u = tensor<T>(), options opts = {});

/// Jacobian-vector product J v (torch.autograd.functional.jvp), with one tangent
/// v_i per input, of its shape. Built as the double-vjp: the reverse pass
/// g = J^T w is recorded for a dummy cotangent w, then J v = d<g, v>/dw; it costs
/// about two to three vjps (docs/higher_order.md measures it).
template <class T>
jvp_result<T> jvp(const detail::nondeduced<fn<T>>& f, const std::vector<tensor<T>>& inputs,
                  const std::vector<tensor<T>>& v, options opts = {});

/// The Jacobian of f, one tensor per input, of shape output shape + input shape
/// (torch.autograd.functional.jacobian). An input the output does not depend on
/// gets zeros.
template <class T>
std::vector<tensor<T>> jacobian(const detail::nondeduced<fn<T>>& f, const std::vector<tensor<T>>& inputs,
                                mode m = mode::automatic, options opts = {});

/// The Jacobians of a function with several outputs: result[k][i] is d output_k /
/// d input_i, of shape output k's shape + input i's shape. Automatic mode compares
/// the outputs' total size with the inputs'.
template <class T>
std::vector<std::vector<tensor<T>>> jacobian(const detail::nondeduced<multi_fn<T>>& f,
                                             const std::vector<tensor<T>>& inputs, mode m = mode::automatic,
                                             options opts = {});

/// The Hessian of a scalar f (torch.autograd.functional.hessian) in blocks:
/// result[i][j] = d2 f / d input_i d input_j, of shape input i's shape + input
/// j's shape (the full matrix of the flattened inputs is these blocks side by
/// side, and result[j][i] is result[i][j] transposed). One recorded reverse pass,
/// then one pass over it per input element. An output with more than one element
/// throws shape_error.
template <class T>
std::vector<std::vector<tensor<T>>> hessian(const detail::nondeduced<fn<T>>& f, const std::vector<tensor<T>>& inputs,
                                            options opts = {});

/// Hessian-vector product H v of a scalar f by double backward
/// (torch.autograd.functional.hvp), with v_i of input i's shape: a recorded
/// reverse pass and one reverse pass over it, never forming H.
template <class T>
hvp_result<T> hvp(const detail::nondeduced<fn<T>>& f, const std::vector<tensor<T>>& inputs,
                  const std::vector<tensor<T>>& v, options opts = {});

}  // namespace functional
}  // namespace tapegrad
