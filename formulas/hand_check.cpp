#include "formulas/hand_check.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <ostream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "autograd/check_core.hpp"
#include "autograd/ops.hpp"

namespace tapegrad {

namespace {

/// "2", "1/2", "-3/2" when r is close to a small fraction, else r itself.
std::string fraction_str(double r) {
    for (int q = 1; q <= 16; ++q) {
        const double p = std::round(r * q);
        if (p != 0 && std::abs(p) <= 64 && std::abs(r - p / q) <= 1e-4 * std::abs(r)) {
            std::ostringstream os;
            os << static_cast<long>(p);
            if (q != 1) os << '/' << q;
            return os.str();
        }
    }
    std::ostringstream os;
    os << std::setprecision(6) << r;
    return os.str();
}

bool close(double a, double truth, const hand_check_options& o) {
    return std::abs(a - truth) <= o.atol + o.rtol * std::abs(truth);
}

/// Elements to difference: all, or `limit` evenly spaced ones.
std::vector<std::size_t> numeric_elements(std::size_t size, std::size_t limit) {
    std::vector<std::size_t> idx;
    if (limit == 0 || size <= limit) {
        idx.resize(size);
        std::iota(idx.begin(), idx.end(), std::size_t{0});
    } else {
        for (std::size_t k = 0; k < limit; ++k) idx.push_back(k * size / limit);
    }
    return idx;
}

void diagnose(hand_param_report& r, const xt::xarray<double>& h, const xt::xarray<double>& t,
              const hand_check_options& o) {
    double hh = 0, tt = 0, ht = 0;
    for (std::size_t e = 0; e < h.size(); ++e) {
        hh += h.data()[e] * h.data()[e];
        tt += t.data()[e] * t.data()[e];
        ht += h.data()[e] * t.data()[e];
    }
    r.ratio = tt > 0 ? ht / tt : NAN;
    if (tt > 0 && hh > 0) {
        double res = 0;
        for (std::size_t e = 0; e < h.size(); ++e) {
            const double d = h.data()[e] - r.ratio * t.data()[e];
            res += d * d;
        }
        r.fit_residual = std::sqrt(res / hh);
    } else {
        r.fit_residual = NAN;
    }
    if (r.agrees_autodiff && r.agrees_numeric) {
        r.diagnosis = hand_diagnosis::agrees;
        r.explanation = "the hand gradient agrees with autodiff and with finite differences";
        return;
    }
    std::ostringstream os;
    if (!r.autodiff_agrees_numeric) {
        // Without a reliable truth, any ratio would be a guess.
        r.diagnosis = hand_diagnosis::truth_unsure;
        os << "the tape and the finite differences disagree by " << std::setprecision(3) << r.autodiff_numeric_error
           << ": the loss may not be differentiable here (a kink, a non-pure function) or eps=" << o.eps
           << " may not suit its scale";
    } else if (hh == 0) {
        r.diagnosis = hand_diagnosis::hand_is_zero;
        os << "the hand gradient is zero but the true one is not: a whole term is missing";
    } else if (tt == 0) {
        r.diagnosis = hand_diagnosis::true_is_zero;
        os << "the true gradient is zero (the loss does not depend on this parameter here) but the hand one is not";
    } else if (r.fit_residual <= o.fit_tolerance && std::abs(r.ratio + 1) <= 1e-3) {
        r.diagnosis = hand_diagnosis::sign_error;
        os << "hand = -1 x true: the sign is flipped (an update direction -dL/dp given instead of dL/dp?)";
    } else if (r.fit_residual <= o.fit_tolerance) {
        r.diagnosis = hand_diagnosis::constant_factor;
        os << "hand = " << fraction_str(r.ratio) << " x true: a constant factor is wrong (a 1/2 in the loss, a "
           << "mean vs a sum, a missing 2 from a square?)";
    } else {
        r.diagnosis = hand_diagnosis::structural;
        os << "no constant ratio fits (best ratio " << std::setprecision(4) << r.ratio << " leaves "
           << std::setprecision(3) << 100 * r.fit_residual
           << "% of the hand gradient unexplained): a term is missing, extra or wrong";
    }
    r.explanation = os.str();
}

}  // namespace

const char* to_string(hand_diagnosis d) {
    switch (d) {
        case hand_diagnosis::agrees: return "agrees";
        case hand_diagnosis::sign_error: return "sign error";
        case hand_diagnosis::constant_factor: return "constant factor";
        case hand_diagnosis::structural: return "structural";
        case hand_diagnosis::hand_is_zero: return "hand is zero";
        case hand_diagnosis::true_is_zero: return "true is zero";
        case hand_diagnosis::shape_mismatch: return "shape mismatch";
        case hand_diagnosis::not_finite: return "not finite";
        case hand_diagnosis::truth_unsure: return "truth unsure";
    }
    return "?";
}

bool hand_check_report::passed() const {
    return std::all_of(params.begin(), params.end(), [](const hand_param_report& p) { return p.passed(); });
}

const hand_param_report& hand_check_report::param(const std::string& n) const {
    for (const auto& p : params)
        if (p.name == n) return p;
    throw std::out_of_range("hand_check_report::param: no parameter named '" + n + "' in report '" + name + "'");
}

std::string hand_check_report::table() const {
    std::ostringstream os;
    os << "hand_check" << (name.empty() ? "" : " " + name) << ": " << (passed() ? "PASS" : "FAIL") << "  (loss "
       << std::setprecision(8) << loss << ", " << params.size() << " parameters, eps " << std::setprecision(2)
       << options.eps << ", atol " << options.atol << ", rtol " << options.rtol << ")\n";
    os << std::left << std::setw(10) << "param" << std::setw(10) << "shape" << std::setw(9) << "vs tape"
       << std::setw(9) << "vs diff" << std::setw(13) << "max abs err" << std::setw(13) << "max rel err"
       << std::setw(11) << "ratio" << std::setw(11) << "fit resid" << "diagnosis\n";
    for (const auto& p : params) {
        const bool shaped = p.diagnosis != hand_diagnosis::shape_mismatch;
        os << std::left << std::setw(10) << p.name << std::setw(10) << shape_str(p.shape) << std::setw(9)
           << (shaped ? (p.agrees_autodiff ? "ok" : "FAIL") : "-") << std::setw(9)
           << (shaped ? (p.agrees_numeric ? "ok" : "FAIL") : "-") << std::setprecision(2) << std::setw(13)
           << p.max_abs_error << std::setw(13) << p.max_rel_error << std::setprecision(4) << std::setw(11) << p.ratio
           << std::setprecision(2) << std::setw(11) << p.fit_residual << to_string(p.diagnosis) << '\n';
        if (p.passed()) continue;
        os << "    " << p.explanation << '\n';
        for (const auto& w : p.worst)
            os << "    at " << std::setw(10) << w.index << std::setprecision(8) << " hand " << std::setw(15) << w.hand
               << " autodiff " << std::setw(15) << w.autodiff << " numeric " << w.numeric << '\n';
    }
    return os.str();
}

std::ostream& operator<<(std::ostream& os, const hand_check_report& r) { return os << r.table(); }

hand_check_report hand_check(const hand_check_fn& loss, const std::vector<hand_param>& params,
                             const hand_check_options& o, const std::string& name) {
    if (params.empty())
        throw std::invalid_argument("hand_check" + (name.empty() ? "" : " '" + name + "'") +
                                    ": no parameters given; pass {name, value, hand_gradient} for each");
    std::set<std::string> seen;
    for (const auto& p : params) {
        if (p.name.empty())
            throw std::invalid_argument("hand_check: a parameter has an empty name; name every parameter");
        if (!seen.insert(p.name).second)
            throw std::invalid_argument("hand_check: parameter name '" + p.name + "' is used twice; names must be unique");
    }

    tape<double>& tp = tape<double>::current();
    check::rewind_guard guard;  // the tape is left where it was, also when the loss throws
    hand_check_report report;
    report.name = name;
    report.options = o;

    std::vector<tensor<double>> leaves;
    for (const auto& p : params) leaves.emplace_back(p.value, true);

    std::vector<xt::xarray<double>> autodiff;
    {
        enable_grad recording;
        tensor<double> l = loss(leaves);
        if (!l.defined() || l.size() != 1)
            throw std::invalid_argument("hand_check" + (name.empty() ? "" : " '" + name + "'") +
                                        ": the loss must be a one-element tensor, got shape " +
                                        (l.defined() ? shape_str(l.shape()) : std::string("undefined")) +
                                        "; reduce it with sum() or mean()");
        report.loss = l.item();
        if (l.requires_grad()) {
            for (auto& g : tp.gradient(l, leaves)) autodiff.push_back(g.value());
        } else {
            for (const auto& p : params) autodiff.push_back(xt::zeros<double>(p.value.shape()));
        }
    }

    for (std::size_t i = 0; i < params.size(); ++i) {
        const auto& p = params[i];
        hand_param_report r;
        r.name = p.name;
        r.shape = shape_t(p.value.shape().begin(), p.value.shape().end());
        r.hand_shape = shape_t(p.hand_gradient.shape().begin(), p.hand_gradient.shape().end());
        if (r.hand_shape != r.shape) {
            r.diagnosis = hand_diagnosis::shape_mismatch;
            r.ratio = r.fit_residual = r.max_abs_error = r.max_rel_error = r.max_abs_error_numeric = NAN;
            r.explanation = "the hand gradient has shape " + shape_str(r.hand_shape) + " but '" + p.name +
                            "' has shape " + shape_str(r.shape) + "; a gradient has its parameter's shape";
            report.params.push_back(std::move(r));
            continue;
        }
        const auto& h = p.hand_gradient;
        const auto& t = autodiff[i];

        // Central differences at the chosen elements, the rest left NaN.
        xt::xarray<double> numeric = xt::xarray<double>::from_shape(p.value.shape());
        std::fill(numeric.begin(), numeric.end(), NAN);
        auto& xv = leaves[i].mutable_value();
        const auto elements = numeric_elements(xv.size(), o.max_numeric_elements);
        r.numeric_elements = elements.size();
        for (std::size_t e : elements) {
            const auto [lp, lm] = check::plus_minus(xv, e, o.eps, [&] { return loss(leaves).item(); });
            numeric.data()[e] = (lp - lm) / (2 * o.eps);
        }

        bool finite = true;
        r.agrees_autodiff = r.agrees_numeric = true;
        for (std::size_t e = 0; e < h.size(); ++e) {
            const double hv = h.data()[e], tv = t.data()[e], nv = numeric.data()[e];
            if (!std::isfinite(hv)) finite = false;
            const double err = std::abs(hv - tv);
            r.max_abs_error = std::max(r.max_abs_error, err);
            r.max_rel_error = std::max(r.max_rel_error, tv != 0 ? err / std::abs(tv) : (err == 0 ? 0.0 : INFINITY));
            if (!close(hv, tv, o)) r.agrees_autodiff = false;
            if (std::isnan(nv)) continue;
            r.max_abs_error_numeric = std::max(r.max_abs_error_numeric, std::abs(hv - nv));
            r.autodiff_numeric_error = std::max(r.autodiff_numeric_error, std::abs(tv - nv));
            if (!close(hv, nv, o)) r.agrees_numeric = false;
            if (!close(tv, nv, o)) r.autodiff_agrees_numeric = false;
        }
        if (!finite) {
            r.agrees_autodiff = r.agrees_numeric = false;
            r.max_abs_error = r.max_rel_error = INFINITY;
            r.ratio = r.fit_residual = NAN;
            r.diagnosis = hand_diagnosis::not_finite;
            r.explanation = "the hand gradient contains NaN or infinity";
        } else {
            diagnose(r, h, t, o);
        }

        if (!r.passed()) {
            std::vector<std::size_t> order(h.size());
            std::iota(order.begin(), order.end(), std::size_t{0});
            auto badness = [&](std::size_t e) {
                const double d = std::abs(h.data()[e] - t.data()[e]);
                return std::isnan(d) ? INFINITY : d;
            };
            const std::size_t k = std::min(o.worst_count, order.size());
            std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                              [&](std::size_t a, std::size_t b) { return badness(a) > badness(b); });
            for (std::size_t j = 0; j < k; ++j) {
                const std::size_t e = order[j];
                r.worst.push_back({e, check::multi_index(r.shape, e), h.data()[e], t.data()[e], numeric.data()[e]});
            }
        }
        report.params.push_back(std::move(r));
    }
    return report;
}

}  // namespace tapegrad
