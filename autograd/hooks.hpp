#pragma once
// The out-of-line hook table of a node (tensor::register_hook, retain_grad) and
// the reverse pass's call into it. Internal: users see only the tensor methods.

#include <cstdint>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// The hooks of one node, kept apart from it so a node without hooks pays one
/// pointer test. A leaf's table lives with the leaf; a tape node's until the reset.
template <class T> struct hook_table {
    struct entry {
        std::uint64_t id;
        hook_fn<T> fn;
    };
    std::vector<entry> hooks;  // in registration order
    std::uint64_t next_id = 1;
    bool retain = false;       // tape nodes: retain_grad() was called
    bool retained_defined = false;
    xt::xarray<T> retained{typename xt::xarray<T>::shape_type{0}};  // tape nodes: accumulated gradient of backward()
};

namespace detail {
/// Run n's hooks on its complete gradient of this pass: the recorded one (create_graph)
/// or the buffer `g`; a replacement must keep the shape. Defined in reverse_pass.cpp.
template <class T> void run_hooks(node<T>& n, xt::xarray<T>& g, bool create_graph);
}  // namespace detail

}  // namespace tapegrad
