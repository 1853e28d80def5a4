// `tapegrad gradcheck`: gradcheck over every op and layer in float64, one row
// per case, then the audit of the article's formulas.

#include "apps/commands.hpp"

#include <functional>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>

#include "apps/layers_check.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"
#include "formulas/audit.hpp"

namespace tapegrad::app {

namespace {

using T = tensor<double>;
using arrays = std::vector<xt::xarray<double>>;

/// Values uniform in [lo, hi), kept `gap` away from `avoid` (kinks of relu, abs, clamp).
xt::xarray<double> rand(const shape_t& shape, std::mt19937_64& rng, double lo = -1, double hi = 1,
                        double avoid = NAN, double gap = 0.05) {
    return random_input(shape, rng, lo, hi, avoid, gap);
}

}  // namespace

std::vector<check_case> op_cases(unsigned seed) {
    std::mt19937_64 r(seed);
    std::vector<check_case> c;
    auto add = [&](std::string name, gradcheck_fn f, arrays in) {
        c.push_back({std::move(name), std::move(f), std::move(in)});
    };
    const shape_t m{3, 4};
    // elementwise, with broadcasting where the op takes two operands
    add("add (broadcast [3,4]+[4])", [](auto& v) { return v[0] + v[1]; }, {rand(m, r), rand({4}, r)});
    add("sub (broadcast [3,1]-[3,4])", [](auto& v) { return v[0] - v[1]; }, {rand({3, 1}, r), rand(m, r)});
    add("mul", [](auto& v) { return v[0] * v[1]; }, {rand(m, r), rand(m, r)});
    add("div", [](auto& v) { return v[0] / v[1]; }, {rand(m, r), rand(m, r, 0.5, 2)});
    add("neg", [](auto& v) { return -v[0]; }, {rand(m, r)});
    add("add_scalar", [](auto& v) { return v[0] + 2.5; }, {rand(m, r)});
    add("mul_scalar", [](auto& v) { return v[0] * 3.0; }, {rand(m, r)});
    add("rsub_scalar", [](auto& v) { return 1.0 - v[0]; }, {rand(m, r)});
    add("rdiv_scalar", [](auto& v) { return 2.0 / v[0]; }, {rand(m, r, 0.5, 2)});
    add("pow (tensor exponent)", [](auto& v) { return pow(v[0], v[1]); }, {rand(m, r, 0.5, 2), rand(m, r)});
    add("pow (scalar exponent)", [](auto& v) { return pow(v[0], 3.0); }, {rand(m, r)});
    add("exp", [](auto& v) { return exp(v[0]); }, {rand(m, r)});
    add("log", [](auto& v) { return log(v[0]); }, {rand(m, r, 0.2, 3)});
    add("sqrt", [](auto& v) { return sqrt(v[0]); }, {rand(m, r, 0.2, 3)});
    add("abs", [](auto& v) { return abs(v[0]); }, {rand(m, r, -1, 1, 0.0)});
    add("erf", [](auto& v) { return erf(v[0]); }, {rand(m, r)});
    add("clamp", [](auto& v) { return clamp(v[0], -0.5, 0.5); }, {rand(m, r, -1, 1, 0.5)});
    add("maximum", [](auto& v) { return maximum(v[0], v[1]); }, {rand(m, r), rand(m, r) + 3.0});
    add("minimum", [](auto& v) { return minimum(v[0], v[1]); }, {rand(m, r), rand(m, r) + 3.0});
    add("where", [](auto& v) { return where(v[0] > 0.0, v[1], v[2]); }, {rand(m, r), rand(m, r), rand(m, r)});
    // linear algebra
    add("matmul", [](auto& v) { return matmul(v[0], v[1]); }, {rand({3, 5}, r), rand({5, 4}, r)});
    add("matmul (a^T b^T)", [](auto& v) { return matmul(v[0], v[1], true, true); }, {rand({5, 3}, r), rand({4, 5}, r)});
    add("matmul (batched 3-D)", [](auto& v) { return matmul(v[0], v[1]); }, {rand({2, 3, 4}, r), rand({2, 4, 2}, r)});
    add("matmul (3-D x 2-D)", [](auto& v) { return matmul(v[0], v[1]); }, {rand({2, 3, 4}, r), rand({4, 2}, r)});
    // shapes
    add("transpose", [](auto& v) { return transpose(v[0]); }, {rand(m, r)});
    add("permute", [](auto& v) { return permute(v[0], {2, 0, 1}); }, {rand({2, 3, 4}, r)});
    add("reshape", [](auto& v) { return reshape(v[0], {2, 6}); }, {rand(m, r)});
    add("slice", [](auto& v) { return slice(v[0], 1, 1, 3); }, {rand(m, r)});
    add("index_select", [](auto& v) { return index_select(v[0], {2, 0, 2}); }, {rand(m, r)});
    add("concat", [](auto& v) { return concat(std::vector<T>{v[0], v[1]}, 0); }, {rand(m, r), rand({2, 4}, r)});
    add("stack", [](auto& v) { return stack(std::vector<T>{v[0], v[1]}, 1); }, {rand(m, r), rand(m, r)});
    add("broadcast_to", [](auto& v) { return broadcast_to(v[0], {3, 4}); }, {rand({1, 4}, r)});
    add("sum_to", [](auto& v) { return sum_to(v[0], {1, 4}); }, {rand(m, r)});
    // reductions
    add("sum", [](auto& v) { return sum(v[0]); }, {rand(m, r)});
    add("sum (axis 1)", [](auto& v) { return sum(v[0], {1}); }, {rand(m, r)});
    add("mean", [](auto& v) { return mean(v[0]); }, {rand(m, r)});
    add("mean (axis 0, keepdims)", [](auto& v) { return mean(v[0], {0}, true); }, {rand(m, r)});
    add("max", [](auto& v) { return max(v[0]); }, {rand(m, r)});
    add("max (axis 1)", [](auto& v) { return max(v[0], {1}); }, {rand(m, r)});
    add("min", [](auto& v) { return min(v[0]); }, {rand(m, r)});
    add("min (axis 0)", [](auto& v) { return min(v[0], {0}); }, {rand(m, r)});
    add("logsumexp", [](auto& v) { return logsumexp(v[0], 1); }, {rand(m, r, -3, 3)});
    // activations
    add("relu", [](auto& v) { return relu(v[0]); }, {rand(m, r, -1, 1, 0.0)});
    add("leaky_relu", [](auto& v) { return leaky_relu(v[0], 0.1); }, {rand(m, r, -1, 1, 0.0)});
    add("elu", [](auto& v) { return elu(v[0]); }, {rand(m, r, -1, 1, 0.0)});
    add("gelu", [](auto& v) { return gelu(v[0]); }, {rand(m, r, -2, 2)});
    add("tanh", [](auto& v) { return tanh(v[0]); }, {rand(m, r, -2, 2)});
    add("sigmoid", [](auto& v) { return sigmoid(v[0]); }, {rand(m, r, -3, 3)});
    add("softplus", [](auto& v) { return softplus(v[0]); }, {rand(m, r, -3, 3)});
    add("softmax", [](auto& v) { return softmax(v[0], 1); }, {rand(m, r, -2, 2)});
    add("log_softmax", [](auto& v) { return log_softmax(v[0], 1); }, {rand(m, r, -2, 2)});
    // losses
    add("mse", [](auto& v) { return mse(v[0], v[1]); }, {rand(m, r), rand(m, r)});
    add("l1", [](auto& v) { return l1(v[0], v[1]); }, {rand(m, r), rand(m, r) + 3.0});
    add("huber", [](auto& v) { return huber(v[0], v[1], 0.5); }, {rand(m, r, -2, 2), rand(m, r, -2, 2)});
    add("nll", [](auto& v) { return nll(log_softmax(v[0], 1), {1, 0, 3}); }, {rand(m, r)});
    add("cross_entropy (labels)", [](auto& v) { return cross_entropy(v[0], {3, 1, 0}); }, {rand(m, r, -2, 2)});
    add("cross_entropy (probabilities)", [](auto& v) { return cross_entropy(v[0], softmax(v[1], 1)); },
        {rand(m, r, -2, 2), rand(m, r)});
    add("bce_with_logits", [](auto& v) { return bce_with_logits(v[0], sigmoid(v[1])); },
        {rand(m, r, -3, 3), rand(m, r)});
    return c;
}

namespace {

/// Run every case; print one summary row each and the full table of failures.
std::size_t run_cases(const std::string& title, const std::vector<check_case>& cases, bool verbose) {
    std::cout << title << "\n";
    std::cout << "  " << std::left << std::setw(36) << "case" << std::setw(8) << "result" << std::right
              << std::setw(12) << "max abs err" << std::setw(12) << "max rel err" << "\n";
    std::size_t failed = 0;
    for (const auto& c : cases) {
        gradcheck_report rep;
        std::string error;
        try {
            rep = gradcheck(c.f, c.inputs, {}, c.name);
        } catch (const std::exception& e) {
            error = e.what();
        }
        double abs_err = 0, rel_err = 0;
        for (const auto& in : rep.inputs) abs_err = std::max(abs_err, in.abs_error), rel_err = std::max(rel_err, in.rel_error);
        const bool ok = error.empty() && rep.passed();
        failed += !ok;
        std::cout << "  " << std::left << std::setw(36) << c.name << std::setw(8) << (ok ? "ok" : "FAIL") << std::right
                  << std::scientific << std::setprecision(2) << std::setw(12) << abs_err << std::setw(12) << rel_err
                  << std::defaultfloat << "\n";
        if (!error.empty()) std::cout << "    error: " << error << "\n";
        if (error.empty() && (!ok || verbose)) std::cout << rep.table() << "\n";
    }
    std::cout << "  " << cases.size() - failed << "/" << cases.size() << " passed\n\n";
    return failed;
}

}  // namespace

int run_gradcheck(const gradcheck_options_cli& o) {
    std::cout << "gradcheck: tape gradients vs float64 central differences (eps 1e-6, atol 1e-5, rtol 1e-3)\n\n";
    std::size_t failed = run_cases("ops", op_cases(o.seed), o.verbose);
    failed += run_cases("layers", layer_cases(o.seed), o.verbose);
    if (o.audit) {
        std::cout << formulas::audit_report(o.seed) << "\n";
    }
    std::cout << (failed ? "gradcheck: " + std::to_string(failed) + " case(s) FAILED\n" : "gradcheck: all cases passed\n");
    return failed ? 1 : 0;
}

}  // namespace tapegrad::app
