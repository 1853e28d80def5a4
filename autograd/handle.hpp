#pragma once
// The tensor handle users hold: a node pointer plus the serial number the node
// had when the handle was made, so a handle to a reset tape slot is detected.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "autograd/config.hpp"  // first: checks the build flags before xtensor is read
#include <xtensor/xarray.hpp>

#include "autograd/shape.hpp"

namespace tapegrad {

template <class T> class tensor;
template <class T> class tape;
template <class T> struct node;
template <class T> struct backward_ctx;
template <class T> struct hook_table;

/// A gradient hook: sees a tensor's total gradient of a reverse pass and returns a
/// replacement of the same shape, or an undefined tensor to keep it (see register_hook).
template <class T> using hook_fn = std::function<tensor<T>(const tensor<T>&)>;

/// What register_hook returns: remove() takes the hook off (a no-op once the hook's
/// tensor is gone or, for results of ops, once its tape was reset).
template <class T> class hook_handle {
  public:
    /// Take the hook off; later reverse passes no longer call it. Safe to call twice.
    void remove();
    /// Whether the hook is still registered.
    bool active() const;

  private:
    friend class tensor<T>;
    std::weak_ptr<hook_table<T>> table_;
    std::uint64_t id_ = 0;
};

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

    /// Call `fn` with this tensor's total gradient in every later reverse pass
    /// (backward() and tape::gradient(), with or without create_graph), once the
    /// gradient is complete and before it flows on to the inputs (results of ops) or
    /// into .grad() / the returned gradient (leaves). `fn` may return a replacement of
    /// the same shape (else shape_error), or an undefined tensor to keep it. Under
    /// create_graph `fn` gets the recorded gradient, so a hook written in tensor ops
    /// stays differentiable. Hooks run in registration order. A leaf keeps its hooks
    /// across tape resets; a result of an op loses them at its tape's reset.
    /// Register hooks on the thread that owns the tensor, before sharing a leaf.
    hook_handle<T> register_hook(hook_fn<T> fn);
    /// For a result of an op: keep its gradient from backward() readable by grad()
    /// (accumulating like a leaf's, until zero_grad() or the tape's reset). No-op on leaves.
    void retain_grad();
    /// Whether retain_grad() was called (true for leaves that require grad).
    bool retains_grad() const;

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
