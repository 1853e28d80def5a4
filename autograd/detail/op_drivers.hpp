#pragma once
// The drivers of the elementwise ops: unary<Rule> and binary<Rule> run a rule
// forward, record it, and run its backward. A rule is a small struct named
// <op>_rule (the rules themselves live in ops_elementwise/ops_math/ops_activations.cpp) with
//   forward(x[, y], s)              -> xtensor expression of the result
//   grad(x, y, gy, s)               -> gradient w.r.t. x        (unary)
//   grad_a / grad_b(a, b, y, gy)    -> gradient w.r.t. a and b  (binary)
// The grad formulas are templates: the fast path instantiates them on xtensor
// containers (one fused loop, nothing recorded); with create_graph they are
// instantiated on tensors, so the reverse pass is itself recorded and can be
// differentiated again. One formula, two uses.
//
// Rules marked `static constexpr bool simd = true` also compile on xsimd batches;
// for them, operands of equal shape (and a row operand broadcast over the rows of
// the other, as a bias) skip xtensor's assignment machinery, which costs more
// than the arithmetic on small tensors, and run as one loop of batches.

#include <type_traits>

#include <xsimd/xsimd.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "autograd/detail/record.hpp"
#include "autograd/ops.hpp"
#include "autograd/kernels/parallel.hpp"
#include "autograd/kernels/simd.hpp"

namespace tapegrad {

namespace rules {
// xsimd counterparts of the xtensor functions that rules call unqualified, so
// that rules marked `simd` compile on batches too (xtensor and tensor arguments
// find their own overloads by argument-dependent lookup).
template <class T, class A> xsimd::batch<T, A> maximum(const xsimd::batch<T, A>& a, T b) {
    return xsimd::max(a, xsimd::batch<T, A>(b));
}
template <class T, class A>
xsimd::batch<T, A> where(const xsimd::batch_bool<T, A>& c, const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) {
    return xsimd::select(c, a, b);
}
template <class T, class A> xsimd::batch<T, A> where(const xsimd::batch_bool<T, A>& c, const xsimd::batch<T, A>& a, T b) {
    return xsimd::select(c, a, xsimd::batch<T, A>(b));
}
template <class T, class A> xsimd::batch<T, A> where(const xsimd::batch_bool<T, A>& c, int a, const xsimd::batch<T, A>& b) {
    return xsimd::select(c, xsimd::batch<T, A>(T(a)), b);
}
// xt::maximum and xt::minimum's rule, spelled out so that batches give its bits (NaN, signed zeros) on any target
template <class T, class A> xsimd::batch<T, A> maximum(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) {
    return xsimd::select(a > b, a, b);
}
template <class T, class A> xsimd::batch<T, A> minimum(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) {
    return xsimd::select(a < b, a, b);
}
/// The scalar type of a rule's argument: a tensor's, an xtensor expression's or a batch's.
template <class G> using scalar_of = typename G::value_type;
}  // namespace rules

namespace detail {

/// Whether Rule opted in to the batch loops.
template <class Rule, class = void> struct simd_rule : std::false_type {};
template <class Rule> struct simd_rule<Rule, std::void_t<decltype(Rule::simd)>> : std::bool_constant<Rule::simd> {};
/// Whether Rule's gradients read the operands (true unless it says `grads_read_operands = false`: add, sub).
template <class Rule, class = void> struct grads_read_operands : std::true_type {};
template <class Rule>
struct grads_read_operands<Rule, std::void_t<decltype(Rule::grads_read_operands)>> : std::bool_constant<Rule::grads_read_operands> {};

/// x's data when it has shape ys, else x broadcast to ys in broadcast_scratch(slot).
template <class T, class S> const T* expanded(const xt::xarray<T>& x, const S& ys, std::size_t slot) {
    if (shapes_equal(x.shape(), ys)) return x.data();
    xt::xarray<T>& e = broadcast_scratch<T>(slot);
    const xshape to(ys.begin(), ys.end());
    broadcast_back<T>(x.data(), xshape(x.shape().begin(), x.shape().end()), e, to, false, T(1));
    return e.data();
}

/// dst[0, n) = f(k, tag) (or += when accumulating), one xsimd batch at a time;
/// large n is split across the engine threads.
template <class T, class F> void batch_write(T* dst, std::size_t n, bool accumulate, F&& f) {
    parallel_for(n, xsimd::batch<T>::size, [&](std::size_t begin, std::size_t end) {
        if (accumulate)
            simd::for_each<T>(end - begin, [&](std::size_t i, auto tag) {
                const std::size_t k = begin + i;
                simd::store(dst + k, simd::load(dst + k, tag) + xsimd::batch<T>(f(k, tag)), tag);
            });
        else
            simd::for_each<T>(end - begin, [&](std::size_t i, auto tag) {
                const std::size_t k = begin + i;
                simd::store(dst + k, xsimd::batch<T>(f(k, tag)), tag);
            });
    });
}

/// Gradient buffer of input i, sized on first use in the pass; returns whether it already held a gradient.
template <class T> bool grad_buffer(backward_ctx<T>& c, std::size_t i, T*& data) {
    bool had;
    data = c.grad_data(c.input(i), had);
    return had;
}

// dx[k] (+)= grad(x[k], y[k], gy[k]) on elements [begin, end) (the rule's kernel, also a fused reverse loop's)
template <class Rule, class T>
void unary_backward_range(node<T>& n, std::size_t begin, std::size_t end, T* const* dst, const bool* had) {
    const T *x = n.inputs[0]->value.data(), *y = n.value.data(), *gy = n.grad.data(), *s = n.scalar;
    T* dx = dst[0] + begin;
    auto f = [&](std::size_t i, auto tag) {
        const std::size_t k = begin + i;
        return xsimd::batch<T>(Rule::grad(simd::load(x + k, tag), simd::load(y + k, tag), simd::load(gy + k, tag), s));
    };
    if (had[0])
        simd::for_each<T>(end - begin, [&](std::size_t i, auto tag) { simd::store(dx + i, simd::load(dx + i, tag) + f(i, tag), tag); });
    else
        simd::for_each<T>(end - begin, [&](std::size_t i, auto tag) { simd::store(dx + i, f(i, tag), tag); });
}

// The range kernel over the whole node, split across the engine threads as any elementwise loop
template <class Rule, class T> void unary_backward_kernel(node<T>& n, const grad_target<T>* out) {
    T* const dst[1] = {out[0].data};
    const bool had[1] = {out[0].add};
    parallel_for(n.value.size(), xsimd::batch<T>::size,
                 [&](std::size_t begin, std::size_t end) { unary_backward_range<Rule, T>(n, begin, end, dst, had); });
}

template <class Rule, class T> void unary_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    if (c.create_graph) {
        c.add_graph(0, Rule::grad(c.tx(0), c.ty(), c.tgy(), c.self.scalar));
    } else if constexpr (simd_rule<Rule>::value) {
        c.run_kernel();
    } else {
        c.add(0, Rule::grad(c.x(0), c.y(), c.gy(), c.self.scalar));
    }
}

// y[k] = f(x[k]) on elements [begin, end) of a recorded node (a compiled step's fused loop)
template <class Rule, class T> void unary_forward_range(node<T>& n, std::size_t begin, std::size_t end) {
    const T *xd = n.inputs[0]->value.data(), *s = n.scalar;
    T* y = n.value.data();
    simd::for_each<T>(end - begin, [&](std::size_t i, auto tag) {
        simd::store(y + begin + i, xsimd::batch<T>(Rule::forward(simd::load(xd + begin + i, tag), s)), tag);
    });
}

// y = f(x), also the replay kernel
template <class Rule, class T> void unary_forward(node<T>& n, node<T>* const* in) {
    const auto& xv = in[0]->value;
    fit(n.value, xv.shape());
    const T* s = n.scalar;
    if constexpr (simd_rule<Rule>::value) {
        const T* xd = xv.data();
        batch_write(n.value.data(), xv.size(), false,
                    [&](std::size_t k, auto tag) { return Rule::forward(simd::load(xd + k, tag), s); });
    } else {
        xt::noalias(n.value) = Rule::forward(xv, s);
    }
}

template <class Rule, class T> tensor<T> unary(const tensor<T>& x, T s0 = T(0), T s1 = T(0)) {
    x.value();  // throws for an undefined, stale or other thread's tensor before anything is recorded
    tensor<T> out = make_result<T>(Rule::name, &unary_backward<Rule, T>, {&x});
    node<T>* n = out.node_ptr();
    n->scalar[0] = s0;
    n->scalar[1] = s1;
    n->forward = &unary_forward<Rule, T>;
    if constexpr (simd_rule<Rule>::value) {
        n->forward_range = &unary_forward_range<Rule, T>;
        n->backward_range = &unary_backward_range<Rule, T>;
        n->backward_kernel = &unary_backward_kernel<Rule, T>;
    }
    node<T>* const in[1] = {x.node_ptr()};
    unary_forward<Rule>(*n, in);
    return out;
}

// da[k], db[k] (+)= grad_a, grad_b on elements [begin, end), operands of y's shape (the rule's
// kernel, also a fused reverse loop's)
template <class Rule, class T>
void binary_backward_buffers(const T* a, const T* b, const T* y, const T* gy, std::size_t begin, std::size_t end,
                             T* const* dst, const bool* had) {
    auto at = [](const T* p, std::size_t k, auto tag) { return simd::load(p + k, tag); };
    for (std::size_t j = 0; j < 2; ++j) {
        if (!dst[j]) continue;
        T* d = dst[j] + begin;
        auto f = [&](std::size_t i, auto tag) {
            const std::size_t k = begin + i;
            return xsimd::batch<T>(j == 0 ? Rule::grad_a(at(a, k, tag), at(b, k, tag), at(y, k, tag), at(gy, k, tag))
                                          : Rule::grad_b(at(a, k, tag), at(b, k, tag), at(y, k, tag), at(gy, k, tag)));
        };
        if (had[j])
            simd::for_each<T>(end - begin, [&](std::size_t i, auto tag) { simd::store(d + i, simd::load(d + i, tag) + f(i, tag), tag); });
        else
            simd::for_each<T>(end - begin, [&](std::size_t i, auto tag) { simd::store(d + i, f(i, tag), tag); });
    }
}
template <class Rule, class T>
void binary_backward_range(node<T>& n, std::size_t begin, std::size_t end, T* const* dst, const bool* had) {
    binary_backward_buffers<Rule, T>(n.inputs[0]->value.data(), n.inputs[1]->value.data(), n.value.data(), n.grad.data(),
                                     begin, end, dst, had);
}

// Operands of y's shape: the range kernel over the whole node, split across the engine threads
template <class Rule, class T> void binary_backward_kernel(node<T>& n, const grad_target<T>* out) {
    T* const dst[2] = {out[0].data, out[1].data};
    const bool had[2] = {out[0].add, out[1].add};
    parallel_for(n.value.size(), xsimd::batch<T>::size,
                 [&](std::size_t begin, std::size_t end) { binary_backward_range<Rule, T>(n, begin, end, dst, had); });
}

/// Elements of `row` when, without its leading 1s, it is the trailing axes of `big` and
/// not all ones (a bias row repeated over big's rows); else 0.
template <class S> std::size_t bias_row(const S& big, const S& row) {
    std::size_t lead = 0;
    while (lead < row.size() && row[lead] == 1) ++lead;
    const std::size_t r = row.size() - lead;
    if (r == 0 || r > big.size()) return 0;
    std::size_t extent = 1;
    for (std::size_t i = 0; i < r; ++i) {
        if (row[lead + i] != big[big.size() - r + i]) return 0;
        extent *= row[lead + i];
    }
    return extent;
}

// Add and sub of a bias row (bias_row): gy passed through to the full operand, and the rows
// of gy summed in order into the row's gradient, as add_to and sum_to's bias path do (same bits).
// y = a + row: da = gy, drow = sum over rows of gy (sub's b: -gy and -sum)
template <class Rule, class T> void bias_backward_kernel(node<T>& n, const grad_target<T>* out) {
    const std::size_t full = shapes_equal(n.inputs[0]->value.shape(), n.value.shape()) ? 0 : 1;  // [16] + [1, 16]: b
    const std::size_t inner = n.inputs[1 - full]->value.size();
    const T* gy = n.grad.data();
    const std::size_t size = n.value.size();
    for (std::size_t j = 0; j < 2; ++j) {
        T* d = out[j].data;
        if (!d) continue;
        const bool negate = j == 1 && Rule::grad_b(T(0), T(0), T(0), T(1)) < T(0);  // the rule's sign: sub's b
        if (j == full) {
            if (negate) for (std::size_t k = 0; k < size; ++k) d[k] = out[j].add ? d[k] + -gy[k] : -gy[k];
            else if (out[j].add) for (std::size_t k = 0; k < size; ++k) d[k] += gy[k];
            else std::copy(gy, gy + size, d);
            continue;
        }
        if (!out[j].add) std::fill(d, d + inner, T(0));
        for (std::size_t r = 0; r < size; r += inner) {
            if (negate) for (std::size_t k = 0; k < inner; ++k) d[k] += -gy[r + k];
            else for (std::size_t k = 0; k < inner; ++k) d[k] += gy[r + k];
        }
    }
}

template <class Rule, class T> void binary_backward(backward_ctx<T>& c) {
    if (c.create_graph) {
        if (c.wants(0)) c.add_graph(0, Rule::grad_a(c.tx(0), c.tx(1), c.ty(), c.tgy()));
        if (c.wants(1)) c.add_graph(1, Rule::grad_b(c.tx(0), c.tx(1), c.ty(), c.tgy()));
        return;
    }
    if (c.self.backward_kernel) {  // operands of y's shape (both buffers first: x * x sees the first as held), or a bias row
        c.run_kernel();
        return;
    }
    if constexpr (simd_rule<Rule>::value) {
        if constexpr (grads_read_operands<Rule>::value) {
            // a broadcast operand: both expanded to y's shape, the same kernel, then a broadcast
            // operand's gradient summed down (add and sub pass gy through: the path below)
            const auto& ys = c.y().shape();
            const T* a = expanded(c.x(0), ys, 0);
            const T* b = expanded(c.x(1), ys, 1);
            T* dst[2] = {nullptr, nullptr};
            bool had[2] = {false, false};
            for (std::size_t j = 0; j < 2; ++j) {
                if (!c.wants(j)) continue;
                if (shapes_equal(c.x(j).shape(), ys)) {
                    had[j] = grad_buffer(c, j, dst[j]);
                    c.mark(c.input(j));
                } else {
                    xt::xarray<T>& spread = broadcast_scratch<T>(2 + j);
                    fit(spread, ys);
                    dst[j] = spread.data();
                }
            }
            parallel_for(c.y().size(), xsimd::batch<T>::size, [&](std::size_t begin, std::size_t end) {
                binary_backward_buffers<Rule, T>(a, b, c.y().data(), c.gy().data(), begin, end, dst, had);
            });
            for (std::size_t j = 0; j < 2; ++j)
                if (c.wants(j) && !shapes_equal(c.x(j).shape(), ys)) c.add(j, broadcast_scratch<T>(2 + j));
            return;
        }
    }
    if (c.wants(0)) c.add(0, Rule::grad_a(c.x(0), c.x(1), c.y(), c.gy()));
    if (c.wants(1)) c.add(1, Rule::grad_b(c.x(0), c.x(1), c.y(), c.gy()));
}

/// Number of elements of `small` if, without its leading 1s, it equals the
/// trailing dimensions of `big` (a row repeated over big's leading axes); else 0.
template <class S> std::size_t row_extent(const S& big, const S& small) {
    std::size_t lead = 0;
    while (lead < small.size() && small[lead] == 1) ++lead;
    const std::size_t r = small.size() - lead;
    if (r > big.size()) return 0;
    std::size_t extent = 1;
    for (std::size_t i = 0; i < r; ++i) {
        if (small[lead + i] != big[big.size() - r + i]) return 0;
        extent *= small[lead + i];
    }
    return extent;
}

/// y = f(a, b) where one operand is a row repeated over the other's rows; false if
/// the shapes are not of that form.
template <class Rule, class T>
bool row_broadcast_forward(const xt::xarray<T>& av, const xt::xarray<T>& bv, xt::xarray<T>& v) {
    const bool a_big = av.dimension() >= bv.dimension() && av.size() >= bv.size();
    const auto& big = a_big ? av : bv;
    const std::size_t inner = row_extent(big.shape(), (a_big ? bv : av).shape());
    if (inner == 0 || big.dimension() < (a_big ? bv : av).dimension()) return false;
    fit(v, big.shape());
    const T *a = av.data(), *b = bv.data();
    for (std::size_t r = 0; r < big.size() / inner; ++r) {
        const std::size_t o = r * inner;
        T* out = v.data() + o;
        const T* ar = a_big ? a + o : a;
        const T* br = a_big ? b : b + o;
        auto f = [&](std::size_t k, auto tag) { return Rule::forward(simd::load(ar + k, tag), simd::load(br + k, tag)); };
        if (inner < xsimd::batch<T>::size)  // a row shorter than a batch (few classes): one partial batch, on this thread
            simd::store(out, xsimd::batch<T>(f(0, simd::partial{inner})), simd::partial{inner});
        else
            batch_write(out, inner, false, f);
    }
    return true;
}

// y = f(a, b), also the replay kernel
template <class Rule, class T> void binary_forward(node<T>& n, node<T>* const* in) {
    const auto& av = in[0]->value;
    const auto& bv = in[1]->value;
    auto& v = n.value;
    const bool same = shapes_equal(av.shape(), bv.shape());
    if constexpr (simd_rule<Rule>::value) {
        if (same) {
            fit(v, av.shape());
            const T *ad = av.data(), *bd = bv.data();
            batch_write(v.data(), av.size(), false, [&](std::size_t k, auto tag) {
                return Rule::forward(simd::load(ad + k, tag), simd::load(bd + k, tag));
            });
            return;
        }
        if (row_broadcast_forward<Rule>(av, bv, v)) return;
        // any other broadcast: the operands expanded to the result's shape, then the same loop
        const xshape ys = broadcast_shape(Rule::name, av.shape(), bv.shape());
        const T* ad = expanded(av, ys, 0);
        const T* bd = expanded(bv, ys, 1);
        fit(v, ys);
        batch_write(v.data(), v.size(), false, [&](std::size_t k, auto tag) {
            return Rule::forward(simd::load(ad + k, tag), simd::load(bd + k, tag));
        });
        return;
    }
    v.resize(same ? av.shape() : broadcast_shape(Rule::name, av.shape(), bv.shape()));
    xt::noalias(v) = Rule::forward(av, bv);
}

// y[k] = f(a[k], b[k]) on elements [begin, end), both operands of y's shape
template <class Rule, class T> void binary_forward_range(node<T>& n, std::size_t begin, std::size_t end) {
    const T *a = n.inputs[0]->value.data(), *b = n.inputs[1]->value.data();
    T* y = n.value.data();
    simd::for_each<T>(end - begin, [&](std::size_t i, auto tag) {
        const std::size_t k = begin + i;
        simd::store(y + k, xsimd::batch<T>(Rule::forward(simd::load(a + k, tag), simd::load(b + k, tag))), tag);
    });
}

// The same where one operand is a row repeated over the other's rows (a bias): the
// row restarts every `inner` elements, as in row_broadcast_forward.
template <class Rule, class T> void binary_row_forward_range(node<T>& n, std::size_t begin, std::size_t end) {
    const auto& av = n.inputs[0]->value;
    const auto& bv = n.inputs[1]->value;
    const bool a_big = av.size() == n.value.size();
    const std::size_t inner = (a_big ? bv : av).size();
    constexpr std::size_t lanes = xsimd::batch<T>::size;
    const T *a = av.data(), *b = bv.data();
    T* y = n.value.data();
    for (std::size_t r = begin / inner; r * inner < end; ++r) {
        const std::size_t o = r * inner, lo = std::max(begin, o) - o, hi = std::min(end, o + inner) - o;
        const T* ar = a_big ? a + o : a;
        const T* br = a_big ? b : b + o;
        T* yr = y + o;
        // batches start where row_broadcast_forward's do (at multiples of the lanes from the
        // row's start); one cut by the range's ends is computed whole and stored in part
        auto cut = [&](std::size_t k) {
            alignas(64) T buf[lanes];
            auto piece = [&](auto tag) {
                xsimd::batch<T>(Rule::forward(simd::load(ar + k, tag), simd::load(br + k, tag))).store_unaligned(buf);
            };
            if (k + lanes <= inner) piece(simd::full{});
            else piece(simd::partial{inner - k});
            for (std::size_t j = std::max(k, lo); j < std::min(k + lanes, hi); ++j) yr[j] = buf[j - k];
        };
        std::size_t k = lo - lo % lanes;
        if (k < lo) {
            cut(k);
            k += lanes;
        }
        for (const simd::full all{}; k + lanes <= hi; k += lanes)
            simd::store(yr + k, xsimd::batch<T>(Rule::forward(simd::load(ar + k, all), simd::load(br + k, all))), all);
        if (k < hi) cut(k);
    }
}

template <class Rule, class T> tensor<T> binary(const tensor<T>& a, const tensor<T>& b) {
    const auto& av = a.value();
    const auto& bv = b.value();
    const bool same = shapes_equal(av.shape(), bv.shape());
    if (!same) broadcast_shape(Rule::name, av.shape(), bv.shape());  // throws before anything is recorded
    tensor<T> out = make_result<T>(Rule::name, &binary_backward<Rule, T>, {&a, &b});
    node<T>* n = out.node_ptr();
    n->forward = &binary_forward<Rule, T>;
    node<T>* const in[2] = {a.node_ptr(), b.node_ptr()};
    binary_forward<Rule>(*n, in);
    if constexpr (simd_rule<Rule>::value) {
        if (same) {
            n->forward_range = &binary_forward_range<Rule, T>;
            n->backward_range = &binary_backward_range<Rule, T>;
            n->backward_kernel = &binary_backward_kernel<Rule, T>;
        } else {
            const bool a_big = av.dimension() >= bv.dimension() && av.size() >= bv.size();
            const std::size_t inner = row_extent((a_big ? av : bv).shape(), (a_big ? bv : av).shape());
            if (inner >= xsimd::batch<T>::size && (a_big ? av : bv).size() == n->value.size() &&
                (a_big ? av : bv).dimension() >= (a_big ? bv : av).dimension())
                n->forward_range = &binary_row_forward_range<Rule, T>;
            if constexpr (!grads_read_operands<Rule>::value) {  // add, sub: a bias row's gradient is a row sum
                const auto& ys = n->value.shape();
                const xt::xarray<T>& full = shapes_equal(av.shape(), ys) ? av : bv;
                const xt::xarray<T>& row = &full == &av ? bv : av;
                if (shapes_equal(full.shape(), ys) && bias_row(ys, row.shape()) != 0)
                    n->backward_kernel = &bias_backward_kernel<Rule, T>;
            }
        }
    }
    return out;
}

/// Normalise a possibly negative axis; throws naming the op when out of range.
inline std::size_t norm_axis(const char* op, int axis, std::size_t rank) {
    int r = static_cast<int>(rank);
    if (axis < -r || axis >= r)
        throw shape_error(std::string(op) + ": axis " + std::to_string(axis) + " is out of range for a tensor of rank " +
                          std::to_string(rank));
    return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

template <class S> shape_t to_shape(const S& s) { return shape_t(s.begin(), s.end()); }

}  // namespace detail
}  // namespace tapegrad

/// Explicit instantiations of an op file's list M for the value types. The heaviest
/// op files are compiled once per type (CMakeLists.txt, TAPEGRAD_SPLIT_BY_TYPE, with
/// TAPEGRAD_INSTANTIATE_ONLY=float or double), so their halves build in parallel.
#ifdef TAPEGRAD_INSTANTIATE_ONLY
#define TAPEGRAD_INSTANTIATE_OPS(M) M(TAPEGRAD_INSTANTIATE_ONLY)
#else
#define TAPEGRAD_INSTANTIATE_OPS(M) M(float) M(double)
#endif
