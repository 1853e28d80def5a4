#include "autograd/gradcheck.hpp"

#include <cmath>
#include <iomanip>
#include <ostream>
#include <random>
#include <sstream>

#include "autograd/check_core.hpp"
#include "autograd/ops.hpp"

namespace tapegrad {

namespace {

/// Directions the output is seen along: one-hot rows, or random projections.
std::vector<xt::xarray<double>> directions(const xt::xarray<double>& y, const gradcheck_options& o, bool& projected) {
    std::vector<xt::xarray<double>> dirs;
    projected = y.size() > o.max_outputs;
    const std::size_t count = projected ? o.max_outputs : y.size();
    std::mt19937_64 rng(o.seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (std::size_t k = 0; k < count; ++k) {
        xt::xarray<double> d = xt::zeros<double>(y.shape());
        if (projected)
            for (auto& v : d) v = normal(rng);
        else
            d.data()[k] = 1.0;
        dirs.push_back(std::move(d));
    }
    return dirs;
}

double project(const xt::xarray<double>& y, const xt::xarray<double>& dir) {
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += y.data()[i] * dir.data()[i];
    return s;
}

}  // namespace

namespace {
std::string fmt(double v) {
    std::ostringstream os;
    os << std::setprecision(2) << v;
    return os.str();
}
}  // namespace

bool gradcheck_report::passed() const {
    if (!reentrant) return false;
    for (const auto& r : inputs)
        if (!r.passed || !r.shape_ok) return false;
    return true;
}

std::string gradcheck_report::table() const {
    std::ostringstream os;
    os << "gradcheck" << (name.empty() ? "" : " " + name) << ": " << (passed() ? "PASS" : "FAIL") << "  ("
       << inputs.size() << " inputs, " << outputs << " outputs" << (projected ? " seen along random projections" : "")
       << ", eps " << options.eps << ", atol " << options.atol << ", rtol " << options.rtol << ")\n";
    os << std::left << std::setw(6) << "input" << std::setw(14) << "shape" << std::setw(14) << "worst at"
       << std::setw(8) << "output" << std::setw(15) << "numeric" << std::setw(15) << "analytic" << std::setw(11)
       << "abs err" << std::setw(11) << "rel err" << "result\n";
    for (const auto& r : inputs) {
        os << std::left << std::setw(6) << r.input << std::setw(14) << shape_str(r.shape) << std::setw(14)
           << r.worst_index << std::setw(8) << r.worst_output << std::setw(15) << std::setprecision(8) << r.numeric
           << std::setw(15) << r.analytic << std::setw(11) << std::setprecision(2) << r.abs_error << std::setw(11)
           << (std::isnan(r.rel_error) && !std::isnan(r.abs_error) ? std::string("-") : fmt(r.rel_error)) << (!r.shape_ok ? "WRONG SHAPE" : r.passed ? "ok" : "FAIL") << '\n';
    }
    os << "reentrant backward: " << (reentrant ? "ok" : "FAIL") << " (max difference " << reentrant_max_diff
       << ")\n";
    return os.str();
}

std::ostream& operator<<(std::ostream& os, const gradcheck_report& r) { return os << r.table(); }

gradcheck_report gradcheck(const gradcheck_fn& f, const std::vector<xt::xarray<double>>& inputs,
                           const gradcheck_options& o, const std::string& name) {
    tape<double>& tp = tape<double>::current();
    check::rewind_guard guard;  // the tape is left where it was, also when f throws
    gradcheck_report report;
    report.name = name;
    report.options = o;

    std::vector<tensor<double>> leaves;
    for (const auto& x : inputs) leaves.emplace_back(x, true);

    xt::xarray<double> y0;
    std::vector<xt::xarray<double>> dirs;
    // analytic[k][i] = J_i^T dir_k, the gradient of <y, dir_k> w.r.t. input i
    std::vector<std::vector<xt::xarray<double>>> analytic;
    {
        enable_grad recording;
        tensor<double> y = f(leaves);
        y0 = y.value();
        dirs = directions(y0, o, report.projected);
        for (const auto& d : dirs) {
            std::vector<xt::xarray<double>> row;
            if (y.requires_grad()) {
                auto g = tp.gradient(y, leaves, tensor<double>(d), {});
                for (std::size_t i = 0; i < g.size(); ++i) row.push_back(g[i].value());
            } else {
                for (const auto& x : inputs) row.push_back(xt::zeros<double>(x.shape()));
            }
            analytic.push_back(std::move(row));
        }
        // Reentrancy: the same backward again must give the same numbers.
        if (y.requires_grad() && !dirs.empty()) {
            auto again = tp.gradient(y, leaves, tensor<double>(dirs[0]), {});
            for (std::size_t i = 0; i < again.size(); ++i) {
                const auto& a = again[i].value();
                const auto& b = analytic[0][i];
                for (std::size_t e = 0; e < a.size() && e < b.size(); ++e)
                    report.reentrant_max_diff = std::max(report.reentrant_max_diff, std::abs(a.data()[e] - b.data()[e]));
            }
            report.reentrant = report.reentrant_max_diff == 0.0;
        }
    }
    report.outputs = y0.size();

    for (std::size_t i = 0; i < inputs.size(); ++i) {
        gradcheck_input_report r;
        r.input = i;
        r.shape = shape_t(inputs[i].shape().begin(), inputs[i].shape().end());
        for (const auto& row : analytic)
            if (shape_t(row[i].shape().begin(), row[i].shape().end()) != r.shape) r.shape_ok = false;
        double worst_margin = -INFINITY;
        auto& xv = leaves[i].mutable_value();
        for (std::size_t e = 0; e < xv.size(); ++e) {
            const auto [yp, ym] = check::plus_minus(xv, e, o.eps, [&] { return f(leaves).value(); });
            for (std::size_t k = 0; k < dirs.size(); ++k) {
                const double numeric = (project(yp, dirs[k]) - project(ym, dirs[k])) / (2 * o.eps);
                const double an = r.shape_ok ? analytic[k][i].data()[e] : NAN;
                const double err = std::abs(an - numeric);
                // how close to failing: > 1 fails
                const double margin = err / (o.atol + o.rtol * std::abs(numeric));
                const bool ok = margin <= 1 && std::isnan(an) == std::isnan(numeric);
                if (!ok) r.passed = false;
                if (margin > worst_margin || std::isnan(err)) {
                    worst_margin = std::isnan(err) ? INFINITY : margin;
                    r.worst_element = e;
                    r.worst_output = k;
                    r.numeric = numeric;
                    r.analytic = an;
                    r.abs_error = err;
                    // relative to an exact 0 is undefined: NaN, printed "-" (the check then rests on atol)
                    r.rel_error = err == 0 ? 0 : numeric == 0 ? NAN : err / std::abs(numeric);
                }
            }
        }
        r.worst_index = check::multi_index(r.shape, r.worst_element);
        report.inputs.push_back(std::move(r));
    }
    return report;
}

gradcheck_report gradgradcheck(const gradcheck_fn& f, const std::vector<xt::xarray<double>>& inputs,
                               const gradcheck_options& o, const std::string& name) {
    // Shape of f's output, for the cotangent v.
    xt::xarray<double> y0;
    {
        no_grad quiet;
        std::vector<tensor<double>> xs;
        for (const auto& x : inputs) xs.emplace_back(x);
        y0 = f(xs).value();
    }
    std::mt19937_64 rng(o.seed + 1);
    std::normal_distribution<double> normal(0.0, 1.0);
    xt::xarray<double> v(y0.shape());
    for (auto& e : v) e = normal(rng);

    const std::size_t n = inputs.size();
    gradcheck_fn vjp = [&f, n](const std::vector<tensor<double>>& args) {
        std::vector<tensor<double>> xs(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(n));
        const tensor<double>& cot = args[n];
        tensor<double> y = f(xs);
        std::vector<tensor<double>> parts;
        if (!grad_enabled() || !y.requires_grad()) {
            // numeric pass (no_grad): evaluate v^T J by an inner recorded backward
            enable_grad recording;
            std::vector<tensor<double>> live;
            for (const auto& x : xs) live.emplace_back(x.value(), true);
            tensor<double> yl = f(live);
            auto g = tape<double>::current().gradient(yl, live, tensor<double>(cot.value()), {});
            for (auto& gi : g) parts.push_back(reshape(gi.detach(), {gi.size()}));
        } else {
            auto g = tape<double>::current().gradient(y, xs, cot, {true});
            for (auto& gi : g) parts.push_back(reshape(gi, {gi.size()}));
        }
        return concat(parts, 0);
    };
    std::vector<xt::xarray<double>> args(inputs);
    args.push_back(v);
    gradcheck_report r = gradcheck(vjp, args, o, name.empty() ? "second order" : name + " (second order)");
    return r;
}

}  // namespace tapegrad
