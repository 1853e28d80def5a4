#pragma once
// A picture of the tape: the recorded graph behind a tensor in Graphviz DOT, with
// op names, shapes, which leaves require grad, optional names, and gradient norms.

#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// What to_dot() shows besides ops and shapes.
template <class T> struct dot_options {
    /// Names for leaves (parameters), e.g. nn::dot_names(model); unnamed leaves say
    /// "leaf" (requires grad) or "constant".
    std::vector<std::pair<std::string, tensor<T>>> names;
    /// Label each node with its gradient's L2 norm when it has one: a result of an op
    /// from its tape's latest reverse pass (backward() or gradient() without
    /// create_graph) that reached it; a leaf from its accumulated .grad().
    bool grad_norms = true;
    /// The graph's name in the DOT output.
    std::string title = "tapegrad";
};

/// Write the graph that `root` was computed by (every recorded node reachable from it,
/// and the leaves they read) as a Graphviz digraph, edges from inputs to the op reading
/// them. Call it on the thread that recorded `root`, before its tape's reset.
template <class T> void to_dot(std::ostream& os, const tensor<T>& root, const dot_options<T>& opts = {});
/// Same, as a string.
template <class T> std::string to_dot(const tensor<T>& root, const dot_options<T>& opts = {});

/// `s` as the inside of a DOT double-quoted string: quotes and backslashes escaped,
/// line breaks as \n, other control characters dropped.
std::string dot_escape(const std::string& s);

}  // namespace tapegrad
