#pragma once
// nn::module: the base of every layer, in the style of PyTorch's C++ frontend.
// A module owns named parameters (leaves that require grad), named buffers
// (state that is saved but not trained, e.g. BatchNorm running statistics) and
// named child modules. Names are joined with dots when walked recursively:
// "0.weight", "encoder.fc1.bias".

#include <cstddef>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad::nn {

/// Base class of every layer and model. Not copyable: parameters are handles,
/// and a copy would silently share them.
template <class T> class module {
  public:
    module() = default;
    module(const module&) = delete;
    module& operator=(const module&) = delete;
    virtual ~module() = default;

    /// Forward pass.
    virtual tensor<T> forward(const tensor<T>& x) = 0;
    /// Same as forward(x).
    tensor<T> operator()(const tensor<T>& x) { return forward(x); }
    /// relu(forward(x)). Layers with a fused form override it with the same values
    /// (gradients to float rounding; BatchNorm2d); nn::sequential calls it for a layer
    /// followed by a ReLU module.
    virtual tensor<T> forward_relu(const tensor<T>& x);

    /// Every parameter of this module and its children, depth first in
    /// registration order, with dotted names ("0.weight", "encoder.fc1.bias").
    std::vector<std::pair<std::string, tensor<T>>> named_parameters() const;
    /// The tensors of named_parameters(), same order (what an optimizer takes).
    std::vector<tensor<T>> parameters() const;
    /// Every buffer (e.g. BatchNorm running stats), recursive, dotted names.
    /// Buffers are saved in checkpoints but not trained.
    std::vector<std::pair<std::string, tensor<T>>> named_buffers() const;
    /// Direct children in registration order.
    const std::vector<std::pair<std::string, std::shared_ptr<module<T>>>>& children() const { return children_; }

    /// The stored handle of a parameter or buffer by dotted name ("0.weight").
    /// Assigning a leaf of the same shape to it replaces what the module uses
    /// (tests bind gradcheck's inputs this way). Throws listing the valid names.
    tensor<T>& parameter(const std::string& dotted_name);

    /// Forget the gradient of every parameter.
    void zero_grad();
    /// Training mode on or off, for this module and all children.
    void train(bool on = true);
    /// Evaluation mode (train(false)).
    void eval() { train(false); }
    /// Whether the module is in training mode.
    bool is_training() const { return training_; }

    /// Total number of parameter elements, recursive.
    std::size_t parameter_count() const;
    /// One-line description: "Linear(784 -> 256)".
    virtual std::string type_name() const;
    /// Readable printout: one line per module (indented by depth) with its
    /// own parameters' shapes and counts, and the total parameter count.
    std::string summary() const;

  protected:
    /// Register a parameter under `name` (no dots, unique in this module).
    /// The tensor must be a defined leaf; it is set to require grad. The
    /// returned reference stays valid for the module's lifetime.
    tensor<T>& register_parameter(std::string name, tensor<T> t);
    /// Register a buffer: saved and loaded with the parameters, never trained.
    tensor<T>& register_buffer(std::string name, tensor<T> t);
    /// Register a child module under `name` (no dots, unique); returns it.
    template <class M> std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
        if (!m) throw std::invalid_argument("register_module: module '" + name + "' is null");
        check_name(name, "register_module");
        children_.emplace_back(std::move(name), m);
        return m;
    }
    /// Called after the training flag changes (layers that cache per-mode state).
    virtual void on_train_changed() {}

  private:
    void check_name(const std::string& name, const char* what) const;
    void summary_lines(std::string& out, const std::string& label, int depth) const;

    std::deque<std::pair<std::string, tensor<T>>> params_;   // deque: references stay valid
    std::deque<std::pair<std::string, tensor<T>>> buffers_;
    std::vector<std::pair<std::string, std::shared_ptr<module<T>>>> children_;
    bool training_ = true;
};

extern template class module<float>;
extern template class module<double>;

}  // namespace tapegrad::nn
