// Functional transforms (autograd/functional.hpp). Everything is built on the
// tape's gradient() with seeds and create_graph:
//   vjp      u^T J        one reverse pass seeded with u
//   jvp      J v          g = J^T w recorded for a dummy w, then d<g, v>/dw (the double-vjp)
//   jacobian rows         one vjp per output element (reverse), or
//            columns      one pass over the recorded J^T w per input element (forward)
//   hessian  H            the jacobian (rows) of the recorded gradient
//   hvp      H v          d<g, v>/dx for the recorded gradient g

#include "autograd/functional.hpp"

#include <stdexcept>
#include <string>

#include "autograd/ops.hpp"

namespace tapegrad {
namespace functional {

namespace {

/// One transform call: copies of the inputs as leaves that require grad, recorded
/// with grad mode on, and the tape rewound to where it was on exit (also when f
/// throws) unless create_graph keeps the recording.
template <class T> class call {
  public:
    call(const char* who, const std::vector<tensor<T>>& inputs, bool create_graph)
        : who_(who), tp_(tape<T>::current()), start_(tp_.mark()), keep_(create_graph) {
        xs.reserve(inputs.size());
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            if (!inputs[i].defined())
                throw std::invalid_argument(std::string(who) + ": input " + std::to_string(i) +
                                            " is an undefined (default-constructed) tensor");
            // With create_graph, an input that requires grad is used as it is, so the
            // results stay differentiable with respect to it.
            if (create_graph && inputs[i].requires_grad())
                xs.push_back(inputs[i]);
            else
                xs.emplace_back(inputs[i].value(), true);
        }
    }
    ~call() {
        if (!keep_) tp_.rewind(start_);
    }
    call(const call&) = delete;
    call& operator=(const call&) = delete;

    /// What the caller gets: a detached leaf, or the recorded tensor with create_graph.
    /// A leaf that needs no grad (what gradient() returns) survives the rewind as it is.
    tensor<T> out(const tensor<T>& t) const {
        if (keep_ || (t.is_leaf() && !t.requires_grad())) return t;
        return t.detach();
    }
    std::vector<tensor<T>> out(const std::vector<tensor<T>>& ts) const {
        std::vector<tensor<T>> r;
        r.reserve(ts.size());
        for (const auto& t : ts) r.push_back(out(t));
        return r;
    }
    /// f's output, checked to be defined.
    tensor<T> checked(const tensor<T>& y) const {
        if (!y.defined())
            throw std::invalid_argument(std::string(who_) + ": the function returned an undefined tensor");
        return y;
    }
    /// f's output, checked to have one element (hessian, hvp, vjp without u);
    /// `need` says which call needs it and `instead` the other way out.
    tensor<T> scalar(const tensor<T>& y, const char* need, const char* instead) const {
        checked(y);
        if (y.size() != 1)
            throw shape_error(std::string(who_) + ": the function's output has shape " + shape_str(y.shape()) + " (" +
                              std::to_string(y.size()) + " elements), but " + need +
                              " needs a function with one output element: reduce it (e.g. sum() or mean()), or " +
                              instead);
        return y;
    }

    std::vector<tensor<T>> xs;  ///< the inputs f sees

  private:
    const char* who_;
    tape<T>& tp_;
    typename tape<T>::position start_;
    bool keep_;
    enable_grad recording_;  // the transforms work inside no_grad too, as torch's
};

template <class T> shape_t joined(shape_t a, const shape_t& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

/// A leaf of `shape` that is 1 at flat index e and 0 elsewhere.
template <class T> tensor<T> basis(const shape_t& shape, std::size_t e) {
    xt::xarray<T> v = xt::zeros<T>(shape);
    v.data()[e] = T(1);
    return tensor<T>(std::move(v));
}

/// The vjp of a recorded y with respect to xs (zeros when y depends on none of them).
template <class T>
std::vector<tensor<T>> pull(const tensor<T>& y, const std::vector<tensor<T>>& xs, const tensor<T>& seed,
                            bool create_graph) {
    if (!y.requires_grad()) {
        std::vector<tensor<T>> zeros;
        for (const auto& x : xs) zeros.push_back(tensor<T>::zeros(x.shape()));
        return zeros;
    }
    gradient_options o;
    o.create_graph = create_graph;
    return tape<T>::current().gradient(y, xs, seed, o);
}

/// sum_i <gs_i, vs_i>, over the gs that require grad; undefined when none does.
template <class T> tensor<T> inner(const std::vector<tensor<T>>& gs, const std::vector<tensor<T>>& vs) {
    tensor<T> s;
    for (std::size_t i = 0; i < gs.size(); ++i) {
        if (!gs[i].requires_grad()) continue;  // a constant (zero) gradient adds nothing
        tensor<T> term = sum(mul(gs[i], vs[i]));
        s = s.defined() ? add(s, term) : term;
    }
    return s;
}

/// v has one tensor per input, each of the input's shape.
template <class T>
void check_tangents(const char* who, const std::vector<tensor<T>>& inputs, const std::vector<tensor<T>>& v) {
    if (v.size() != inputs.size())
        throw std::invalid_argument(std::string(who) + ": got " + std::to_string(v.size()) + " vectors v for " +
                                    std::to_string(inputs.size()) + " inputs; pass one v per input, of its shape");
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (!v[i].defined())
            throw std::invalid_argument(std::string(who) + ": v[" + std::to_string(i) +
                                        "] is an undefined (default-constructed) tensor");
        if (v[i].shape() != inputs[i].shape())
            throw shape_error(std::string(who) + ": v[" + std::to_string(i) + "] has shape " +
                              shape_str(v[i].shape()) + " but input " + std::to_string(i) + " has shape " +
                              shape_str(inputs[i].shape()) + "; each v must have its input's shape");
    }
}

/// parts[k] (each flattened) stacked along `axis` (0: rows, 1: columns), as `shape`.
template <class T> tensor<T> assemble(const std::vector<tensor<T>>& parts, int axis, const shape_t& shape) {
    std::size_t size = 1;
    for (std::size_t d : shape) size *= d;
    if (parts.empty() || size == 0) return tensor<T>::zeros(shape);
    std::vector<tensor<T>> flat;
    flat.reserve(parts.size());
    for (const auto& p : parts) flat.push_back(reshape(p, {p.size()}));
    return reshape(stack(flat, axis), shape);
}

/// J[k][i] = d ys[k] / d xs[i] for recorded ys, of shape ys[k] + xs[i].
template <class T>
std::vector<std::vector<tensor<T>>> jacobian_of(const std::vector<tensor<T>>& ys, const std::vector<tensor<T>>& xs,
                                                mode m, bool create_graph) {
    std::size_t m_total = 0, n_total = 0;
    for (const auto& y : ys) m_total += y.size();
    for (const auto& x : xs) n_total += x.size();
    if (m == mode::automatic) m = m_total <= n_total ? mode::reverse : mode::forward;

    std::vector<std::vector<tensor<T>>> J(ys.size(), std::vector<tensor<T>>(xs.size()));
    if (m == mode::reverse) {
        for (std::size_t k = 0; k < ys.size(); ++k) {
            // rows[i][e]: d ys[k][e] / d xs[i] (none, and so zeros, when ys[k] depends on no input)
            std::vector<std::vector<tensor<T>>> rows(xs.size());
            for (std::size_t e = 0; ys[k].requires_grad() && e < ys[k].size(); ++e) {
                auto g = pull(ys[k], xs, basis<T>(ys[k].shape(), e), create_graph);
                for (std::size_t i = 0; i < xs.size(); ++i) rows[i].push_back(g[i]);
            }
            for (std::size_t i = 0; i < xs.size(); ++i)
                J[k][i] = assemble(rows[i], 0, joined<T>(ys[k].shape(), xs[i].shape()));
        }
        return J;
    }

    // Forward: g_i = sum_k J_ki^T w_k is recorded for dummy cotangents w_k (it is
    // linear in them, so their value 0 does not matter); d g_i[e] / d w_k is then
    // column e of J_ki, for all k in one pass.
    std::vector<tensor<T>> ws;
    std::vector<std::size_t> live;  // outputs that depend on some input
    for (std::size_t k = 0; k < ys.size(); ++k)
        if (ys[k].requires_grad()) {
            live.push_back(k);
            ws.push_back(tensor<T>::zeros(ys[k].shape(), true));
        }
    std::vector<tensor<T>> g(xs.size());
    if (!live.empty()) {
        std::vector<tensor<T>> ys_live;
        for (std::size_t k : live) ys_live.push_back(ys[k]);
        g = pull(inner(ys_live, ws), xs, tensor<T>(), true);
    }
    for (std::size_t i = 0; i < xs.size(); ++i) {
        std::vector<std::vector<tensor<T>>> cols(ys.size());  // cols[k][e]: d ys[k] / d xs[i][e]
        if (!live.empty() && g[i].requires_grad()) {
            for (std::size_t e = 0; e < xs[i].size(); ++e) {
                auto c = pull(g[i], ws, basis<T>(xs[i].shape(), e), create_graph);
                for (std::size_t l = 0; l < live.size(); ++l) cols[live[l]].push_back(c[l]);
            }
        }
        for (std::size_t k = 0; k < ys.size(); ++k)
            J[k][i] = assemble(cols[k], 1, joined<T>(ys[k].shape(), xs[i].shape()));
    }
    return J;
}

}  // namespace

template <class T>
vjp_result<T> vjp(const detail::nondeduced<fn<T>>& f, const std::vector<tensor<T>>& inputs, const tensor<T>& u,
                  options opts) {
    call<T> c("vjp", inputs, opts.create_graph);
    tensor<T> y = c.checked(f(c.xs));
    if (!u.defined()) {
        c.scalar(y, "vjp without u", "pass u of the output's shape");
    } else if (u.shape() != y.shape()) {
        throw shape_error("vjp: u has shape " + shape_str(u.shape()) + " but the function's output has shape " +
                          shape_str(y.shape()) + "; u must have the output's shape");
    }
    return {c.out(y), c.out(pull(y, c.xs, u, opts.create_graph))};
}

template <class T>
jvp_result<T> jvp(const detail::nondeduced<fn<T>>& f, const std::vector<tensor<T>>& inputs,
                  const std::vector<tensor<T>>& v, options opts) {
    check_tangents("jvp", inputs, v);
    call<T> c("jvp", inputs, opts.create_graph);
    tensor<T> y = c.checked(f(c.xs));
    tensor<T> jv;
    if (y.requires_grad()) {
        tensor<T> w = tensor<T>::zeros(y.shape(), true);  // dummy cotangent: g is linear in it
        tensor<T> s = inner(pull(y, c.xs, w, true), v);  // <J^T w, v> = w^T J v
        if (s.defined()) jv = pull(s, {w}, tensor<T>(), opts.create_graph)[0];
    }
    if (!jv.defined()) jv = tensor<T>::zeros(y.shape());  // y depends on no input
    return {c.out(y), c.out(jv)};
}

template <class T>
std::vector<std::vector<tensor<T>>> jacobian(const detail::nondeduced<multi_fn<T>>& f,
                                             const std::vector<tensor<T>>& inputs, mode m, options opts) {
    call<T> c("jacobian", inputs, opts.create_graph);
    std::vector<tensor<T>> ys = f(c.xs);
    for (const auto& y : ys) c.checked(y);
    auto J = jacobian_of(ys, c.xs, m, opts.create_graph);
    for (auto& row : J) row = c.out(row);
    return J;
}

template <class T>
std::vector<tensor<T>> jacobian(const detail::nondeduced<fn<T>>& f, const std::vector<tensor<T>>& inputs, mode m,
                                options opts) {
    multi_fn<T> one = [&f](const std::vector<tensor<T>>& xs) { return std::vector<tensor<T>>{f(xs)}; };
    return jacobian<T>(one, inputs, m, opts)[0];
}

template <class T>
std::vector<std::vector<tensor<T>>> hessian(const detail::nondeduced<fn<T>>& f, const std::vector<tensor<T>>& inputs,
                                            options opts) {
    call<T> c("hessian", inputs, opts.create_graph);
    tensor<T> y = c.scalar(f(c.xs), "hessian", "use jacobian for several outputs");
    auto g = pull(y, c.xs, tensor<T>(), true);  // recorded: differentiable again
    auto H = jacobian_of(g, c.xs, mode::reverse, opts.create_graph);
    for (auto& row : H) row = c.out(row);
    return H;
}

template <class T>
hvp_result<T> hvp(const detail::nondeduced<fn<T>>& f, const std::vector<tensor<T>>& inputs,
                  const std::vector<tensor<T>>& v, options opts) {
    check_tangents("hvp", inputs, v);
    call<T> c("hvp", inputs, opts.create_graph);
    tensor<T> y = c.scalar(f(c.xs), "hvp", "take the hvp of sum(output * w) for a fixed w");
    tensor<T> s = inner(pull(y, c.xs, tensor<T>(), true), v);  // <g, v>, recorded
    std::vector<tensor<T>> hv;
    if (s.defined()) {
        hv = pull(s, c.xs, tensor<T>(), opts.create_graph);
    } else {
        for (const auto& x : c.xs) hv.push_back(tensor<T>::zeros(x.shape()));  // f is linear (or constant)
    }
    return {c.out(y), c.out(hv)};
}

#define TAPEGRAD_INSTANTIATE(T)                                                                                     \
    template vjp_result<T> vjp<T>(const detail::nondeduced<fn<T>>&, const std::vector<tensor<T>>&,                 \
                                  const tensor<T>&, options);                                                        \
    template jvp_result<T> jvp<T>(const detail::nondeduced<fn<T>>&, const std::vector<tensor<T>>&,                 \
                                  const std::vector<tensor<T>>&, options);                                           \
    template std::vector<std::vector<tensor<T>>> jacobian<T>(const detail::nondeduced<multi_fn<T>>&,               \
                                                             const std::vector<tensor<T>>&, mode, options);          \
    template std::vector<tensor<T>> jacobian<T>(const detail::nondeduced<fn<T>>&, const std::vector<tensor<T>>&,  \
                                                mode, options);                                                      \
    template std::vector<std::vector<tensor<T>>> hessian<T>(const detail::nondeduced<fn<T>>&,                      \
                                                            const std::vector<tensor<T>>&, options);                 \
    template hvp_result<T> hvp<T>(const detail::nondeduced<fn<T>>&, const std::vector<tensor<T>>&,                 \
                                  const std::vector<tensor<T>>&, options);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)

}  // namespace functional
}  // namespace tapegrad
