#pragma once
// The tensor handle users hold: a node pointer plus the serial number the node
// had when the handle was made, so a handle to a reset tape slot is detected.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "autograd/config.hpp"  // first: checks the build flags before xtensor is read
#include <xtensor/xarray.hpp>

#include "autograd/shape.hpp"

namespace tapegrad {

template <class T> class tensor;
template <class T> class tape;
template <class T> struct node;
template <class T> struct backward_ctx;

/// Signature of a node's reverse-mode rule.
template <class T> using backward_fn = void (*)(backward_ctx<T>&);

/// Handle to a value in the graph, cheap to copy: 32 bytes (the node pointer, its
/// serial number, and a shared_ptr set only for leaves). A default-constructed
/// tensor is undefined.
template <class T> class tensor {
  public:
    using value_type = T;
    using array_type = xt::xarray<T>;

    /// An undefined tensor.
    tensor() = default;
    /// A leaf holding `value`; `requires_grad` makes it a differentiable input.
    explicit tensor(array_type value, bool requires_grad = false);

    /// Leaf filled with zeros.
    static tensor zeros(const shape_t& shape, bool requires_grad = false);
    /// Leaf filled with ones.
    static tensor ones(const shape_t& shape, bool requires_grad = false);
    /// Leaf filled with `fill`.
    static tensor full(const shape_t& shape, T fill, bool requires_grad = false);
    /// Scalar (0-d) leaf.
    static tensor scalar(T v, bool requires_grad = false);

    /// True unless default-constructed.
    bool defined() const { return node_ != nullptr; }
    /// The value; throws if the tensor's tape was reset since it was made.
    const array_type& value() const;
    /// Mutable value of a leaf (e.g. for optimizer updates); throws for op results.
    array_type& mutable_value();
    /// Shape of the value.
    shape_t shape() const;
    /// Number of dimensions.
    std::size_t dim() const { return value().dimension(); }
    /// Number of elements.
    std::size_t size() const { return value().size(); }
    /// The single element of a one-element tensor; throws otherwise.
    T item() const;

    /// Whether gradients flow to this tensor.
    bool requires_grad() const;
    /// Turn gradient tracking on or off for a leaf; returns *this.
    tensor& set_requires_grad(bool on);
    /// True for tensors not produced by a recorded op.
    bool is_leaf() const;
    /// Name of the op that produced this tensor ("leaf" for leaves).
    const char* op_name() const;

    /// Whether `backward()` has left a gradient here.
    bool has_grad() const;
    /// The accumulated gradient (same shape as value). Throws std::logic_error when
    /// there is none: before the first backward(), after zero_grad(), and for a leaf
    /// that no backward() has reached (the loss does not depend on it), as well as
    /// for results of ops. has_grad() asks without throwing; tape::gradient()
    /// returns zeros for such a leaf instead (see gradient_options::allow_unused).
    const array_type& grad() const;
    /// Mutable gradient (for clipping, tests); throws if there is none.
    array_type& mutable_grad();
    /// Forget the gradient; the buffer is kept for the next backward.
    void zero_grad();

    /// Reverse pass from this scalar, adding into `.grad()` of every leaf that
    /// requires grad (PyTorch semantics: gradients accumulate until zero_grad).
    void backward() const;
    /// Reverse pass seeded with `seed` (same shape as this tensor).
    void backward(const array_type& seed) const;

    /// A leaf copy of the value with no history; it survives tape resets.
    tensor detach() const;

    /// Internal: the node this handle points at.
    node<T>* node_ptr() const { return node_; }
    /// Internal: handle to a tape node.
    static tensor from_tape(node<T>* n);
    /// Internal: handle to an owned leaf node.
    static tensor from_leaf(std::shared_ptr<node<T>> n);
    /// Internal: the owning pointer of a leaf (empty for tape nodes).
    const std::shared_ptr<node<T>>& owner() const { return owner_; }

  private:
    void check_alive() const;

    node<T>* node_ = nullptr;
    std::uint64_t serial_ = 0;        // node's serial when this handle was made
    std::shared_ptr<node<T>> owner_;  // set for leaves only
};

}  // namespace tapegrad
