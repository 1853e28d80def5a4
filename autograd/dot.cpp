// to_dot: collect the nodes reachable from a root through the inputs of tape nodes,
// then print them (leaves in the order found, then tape nodes in tape order) and
// one edge per input of each tape node.

#include "autograd/dot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <unordered_map>

namespace tapegrad {

std::string dot_escape(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (static_cast<unsigned char>(c) >= 0x20) {
            out += c;
        }
    }
    return out;
}

namespace {

template <class T> double l2(const xt::xarray<T>& a) {
    double s = 0;
    for (std::size_t k = 0, n = a.size(); k < n; ++k) s += double(a.data()[k]) * double(a.data()[k]);
    return std::sqrt(s);
}

std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

/// The gradient to show for n, or null (see dot_options::grad_norms).
template <class T> const xt::xarray<T>* shown_grad(const node<T>& n) {
    const xt::xarray<T>* g = nullptr;
    if (!n.on_tape) {
        if (n.grad_defined) g = &n.grad;
    } else if (n.home && n.pass == n.home->last_pass() && !n.home->last_pass_recorded()) {
        g = &n.grad;
    }
    const bool same_shape = g && g->dimension() == n.value.dimension() &&
                            std::equal(g->shape().begin(), g->shape().end(), n.value.shape().begin());
    return same_shape ? g : nullptr;
}

}  // namespace

template <class T> void to_dot(std::ostream& os, const tensor<T>& root, const dot_options<T>& opts) {
    root.value();  // throws for undefined, stale or other threads' handles
    std::unordered_map<const node<T>*, std::string> names;
    for (const auto& [name, t] : opts.names)
        if (t.defined()) names.emplace(t.node_ptr(), name);

    // Reachable nodes, each once.
    std::vector<node<T>*> leaves, ops;
    std::unordered_map<const node<T>*, std::size_t> seen;
    std::vector<node<T>*> todo{root.node_ptr()};
    while (!todo.empty()) {
        node<T>* n = todo.back();
        todo.pop_back();
        if (!seen.emplace(n, 0).second) continue;
        (n->on_tape ? ops : leaves).push_back(n);
        if (n->on_tape)
            for (std::uint32_t k = 0; k < n->n_inputs; ++k) todo.push_back(n->inputs[k]);
    }
    std::sort(ops.begin(), ops.end(), [](const node<T>* a, const node<T>* b) { return a->index < b->index; });
    std::vector<node<T>*> order(leaves);
    order.insert(order.end(), ops.begin(), ops.end());
    for (std::size_t i = 0; i < order.size(); ++i) seen[order[i]] = i;

    os << "digraph \"" << dot_escape(opts.title) << "\" {\n"
       << "  node [fontname=\"Helvetica\", fontsize=10];\n"
       << "  edge [color=\"#555555\"];\n";
    for (std::size_t i = 0; i < order.size(); ++i) {
        const node<T>& n = *order[i];
        std::string label;
        std::string style;
        if (n.on_tape) {
            label = n.op;
            style = "shape=box";
        } else {
            auto it = names.find(&n);
            label = it != names.end() ? it->second : n.requires_grad ? "leaf" : "constant";
            style = n.requires_grad ? "shape=ellipse, style=filled, fillcolor=\"#cfe2ff\""
                                    : "shape=ellipse, style=filled, fillcolor=\"#eeeeee\"";
        }
        label += "\n" + shape_str(n.value.shape());
        if (!n.on_tape) label += n.requires_grad ? "\nrequires grad" : "\nno grad";
        if (opts.grad_norms)
            if (const xt::xarray<T>* g = shown_grad(n)) label += "\n|grad| = " + number(l2(*g));
        if (&n == root.node_ptr()) style += ", penwidth=2";
        os << "  n" << i << " [" << style << ", label=\"" << dot_escape(label) << "\"];\n";
    }
    for (std::size_t i = 0; i < order.size(); ++i) {
        const node<T>& n = *order[i];
        if (!n.on_tape) continue;
        for (std::uint32_t k = 0; k < n.n_inputs; ++k) os << "  n" << seen[n.inputs[k]] << " -> n" << i << ";\n";
    }
    os << "}\n";
}

template <class T> std::string to_dot(const tensor<T>& root, const dot_options<T>& opts) {
    std::ostringstream os;
    to_dot(os, root, opts);
    return os.str();
}

#define TAPEGRAD_INSTANTIATE(T) \
    template void to_dot<T>(std::ostream&, const tensor<T>&, const dot_options<T>&); \
    template std::string to_dot<T>(const tensor<T>&, const dot_options<T>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
