#include "formulas/audit.hpp"

#include <cmath>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include "autograd/format.hpp"
#include "autograd/ops.hpp"

namespace tapegrad::formulas {

namespace {

using tensors = std::vector<tensor<double>>;
using xarr = xt::xarray<double>;

/// The network on the tape, from z2 on: E = 1/2 sum((t - act(z2))^2).
tensor<double> tape_loss_from_z2(const tensor<double>& z2, const xarr& target, output_activation a) {
    tensor<double> out = a == output_activation::softmax ? softmax(z2, 0) : sigmoid(z2);
    return 0.5 * mse(out, tensor<double>(target), reduction::sum);
}

tensor<double> tape_loss_from_z1(const tensor<double>& z1, const problem& p) {
    tensor<double> z2 = matmul(tensor<double>(p.net.W2), tanh(z1)) + tensor<double>(p.net.b2);
    return tape_loss_from_z2(z2, p.target, p.net.activation);
}

tensor<double> tape_loss(const tensor<double>& x, const tensor<double>& W1, const tensor<double>& b1,
                         const tensor<double>& W2, const tensor<double>& b2, const problem& p) {
    tensor<double> z2 = matmul(W2, tanh(matmul(W1, x) + b1)) + b2;
    return tape_loss_from_z2(z2, p.target, p.net.activation);
}

/// Fill the article-side fields of a check from one parameter of a report.
void take_article(formula_check& c, const hand_check_report& r, const std::string& param) {
    const auto& p = r.param(param);
    c.param = param;
    c.holds = p.passed();
    c.max_abs_error = p.max_abs_error;
    c.max_rel_error = p.max_rel_error;
    c.max_abs_error_numeric = p.max_abs_error_numeric;
    c.diagnosis = p.diagnosis;
    c.ratio = p.ratio;
    c.report = r;
}

void take_corrected(formula_check& c, const std::string& formula, const hand_check_report& r,
                    const std::string& param) {
    const auto& p = r.param(param);
    c.corrected = formula;
    c.corrected_holds = p.passed();
    c.corrected_max_abs_error = p.max_abs_error;
    c.corrected_max_abs_error_numeric = p.max_abs_error_numeric;
    c.corrected_report = r;
}

formula_check make_check(output_activation a, std::string name, std::string article, std::string meaning) {
    formula_check c;
    c.activation = a;
    c.name = std::move(name);
    c.article = std::move(article);
    c.meaning = std::move(meaning);
    return c;
}

void audit_network(output_activation act, unsigned seed, audit_result& result) {
    const problem p = make_problem(act, seed);
    const network& net = p.net;
    const xarr& x = p.input;
    const xarr& t = p.target;
    const forward_values fw = forward(net, x);
    const bool is_softmax = act == output_activation::softmax;
    auto& checks = result.checks;

    // The article's chain and the corrected chain, by hand.
    const xarr d3 = article_delta3(fw.output, t);
    const xarr d2 = article_delta2(net, fw, d3);
    const xarr d1 = article_delta1(net, d2, x);
    const gradients g = article_gradients(fw, x, d3, d2);
    const xarr c3 = correct_delta3(act, fw.output, t);
    const xarr c2 = article_delta2(net, fw, c3);
    const xarr c1 = correct_delta1(net, c2);
    const gradients cg = article_gradients(fw, x, c3, c2);

    const hand_check_fn f_z2 = [&](const tensors& v) { return tape_loss_from_z2(v[0], t, act); };
    const hand_check_fn f_z1 = [&](const tensors& v) { return tape_loss_from_z1(v[0], p); };
    const hand_check_fn f_x = [&](const tensors& v) {
        return tape_loss(v[0], tensor<double>(net.W1), tensor<double>(net.b1), tensor<double>(net.W2),
                         tensor<double>(net.b2), p);
    };
    const hand_check_fn f_params = [&](const tensors& v) { return tape_loss(tensor<double>(x), v[0], v[1], v[2], v[3], p); };
    const std::string tag = std::string(to_string(act)) + ": ";

    // ---- forward: the hand-written pass against the tape's
    {
        formula_check c = make_check(act, "forward", std::string(is_softmax ? "softmax" : "sigmoid") +
                                                         "(W2 tanh(W1 input + b1) + b2)",
                                     "tape forward");
        tensor<double> z2 = matmul(tensor<double>(net.W2), tanh(matmul(tensor<double>(net.W1), tensor<double>(x)) +
                                                                tensor<double>(net.b1))) +
                            tensor<double>(net.b2);
        const xarr out = (is_softmax ? softmax(z2, 0) : sigmoid(z2)).value();
        const double tape_e = tape_loss_from_z2(z2, t, act).item();
        double err = std::abs(tape_e - loss(fw.output, t));
        for (std::size_t i = 0; i < out.size(); ++i) err = std::max(err, std::abs(out.data()[i] - fw.output.data()[i]));
        c.max_abs_error = err;
        c.max_abs_error_numeric = NAN;
        c.holds = err <= 1e-12;
        c.diagnosis = c.holds ? hand_diagnosis::agrees : hand_diagnosis::structural;
        c.ratio = NAN;
        c.why = c.holds ? "output and loss match the tape to rounding" : "the hand forward pass differs from the tape's";
        checks.push_back(std::move(c));
        reset_tape<double>();
    }

    // ---- tanh'
    {
        formula_check c = make_check(act, "tanh'", "tanh'(z1) = 1 - tanh(z1)^2", "d tanh(z1) / dz1");
        const xarr hand = 1.0 - fw.hidden * fw.hidden;
        auto r = hand_check([](const tensors& v) { return sum(tanh(v[0])); }, {{"z1", fw.z1, hand}}, {},
                            tag + "tanh'");
        take_article(c, r, "z1");
        c.why = c.holds ? "the derivative of tanh written from its output" : "1 - tanh^2 disagrees with the tape";
        checks.push_back(std::move(c));
    }

    // ---- delta3 = -dE/dz2
    {
        formula_check c = make_check(act, "delta3", "output .* (1 - output) .* (target - output)", "-dE/dz2");
        auto r = hand_check(f_z2, {{"z2", fw.z2, -d3}}, {}, tag + "article delta3");
        take_article(c, r, "z2");
        if (c.holds) {
            c.why = is_softmax ? "holds here (unexpected for softmax: its Jacobian is not diagonal)"
                               : "exact for an elementwise output: do_j/dz_k = o_j (1 - o_j) if j = k, else 0";
        } else {
            c.why = is_softmax
                        ? "softmax couples the outputs: do_j/dz_k = o_j (delta_jk - o_k). The article keeps only "
                          "the diagonal term o_j (1 - o_j) (t_j - o_j) and misses the cross terms "
                          "-o_j * sum_{k != j} o_k (t_k - o_k)"
                        : "does not hold even for the elementwise sigmoid (unexpected; see the table)";
            auto rc = hand_check(f_z2, {{"z2", fw.z2, -c3}}, {}, tag + "corrected delta3");
            take_corrected(c, "delta3_j = o_j * ((t_j - o_j) - sum_k o_k (t_k - o_k))", rc, "z2");
        }
        checks.push_back(std::move(c));
    }

    // ---- delta2 step alone, fed the true delta3 from the tape
    bool step_holds = false;
    {
        formula_check c = make_check(act, "delta2 step", "(W2' delta3) .* tanh'(z1), fed the true delta3 = -dE/dz2",
                                     "-dE/dz1");
        xarr true_d3;
        {
            tensor<double> z2(fw.z2, true);
            true_d3 = -tape<double>::current().gradient(tape_loss_from_z2(z2, t, act), {z2})[0].value();
            reset_tape<double>();
        }
        auto r = hand_check(f_z1, {{"z1", fw.z1, -article_delta2(net, fw, true_d3)}}, {}, tag + "delta2 step");
        take_article(c, r, "z1");
        step_holds = c.holds;
        c.why = c.holds ? "the backpropagation step itself is right" : "the step itself is wrong (unexpected)";
        checks.push_back(std::move(c));
    }

    const std::string inherited =
        step_holds ? "its own step is right (row 'delta2 step'); the error is inherited from the article's delta3"
                   : "the delta2 step is wrong too (row 'delta2 step')";

    // ---- delta2 as the article chains it
    {
        formula_check c = make_check(act, "delta2", "(W2' delta3) .* tanh'(z1), with the article's delta3", "-dE/dz1");
        auto r = hand_check(f_z1, {{"z1", fw.z1, -d2}}, {}, tag + "article delta2");
        take_article(c, r, "z1");
        if (c.holds) {
            c.why = "backpropagates an exact delta3 through W2 and tanh";
        } else {
            c.why = inherited;
            auto rc = hand_check(f_z1, {{"z1", fw.z1, -c2}}, {}, tag + "corrected delta2");
            take_corrected(c, "delta2 = (W2' delta3) .* (1 - tanh(z1)^2) with the corrected delta3", rc, "z1");
        }
        checks.push_back(std::move(c));
    }

    // ---- delta1, literal reading, as the error at the input
    const bool d2_holds = checks.back().holds;
    {
        formula_check c = make_check(act, "delta1", "(W1' delta2) .* input  (literal \"delta2 * W1' * input\")",
                                     "-dE/dinput");
        auto r = hand_check(f_x, {{"input", x, -d1}}, {}, tag + "article delta1");
        take_article(c, r, "input");
        if (c.holds) {
            c.why = "holds here (unexpected: input enters z1 = W1 input + b1 linearly, so no input factor belongs)";
        } else {
            c.why = "the '.* input' is extra: input enters z1 = W1 input + b1 linearly, so -dE/dinput = W1' delta2 "
                    "with no input factor; scaling each element by its own input leaves no constant ratio";
            if (!d2_holds) c.why += "; it also inherits delta2's error";
            auto rc = hand_check(f_x, {{"input", x, -c1}}, {}, tag + "corrected delta1");
            take_corrected(c, "delta1 = W1' delta2 (the error at the input; no '* input')", rc, "input");
        }
        checks.push_back(std::move(c));
    }

    // ---- delta1 read as the gradient of W1
    {
        formula_check c = make_check(act, "delta1 as dW1", "(W1' delta2) .* input, read as W1's update",
                                     "-dE/dW1");
        auto r = hand_check(f_params, {{"W1", net.W1, -d1}, {"b1", net.b1, cg.b1}, {"W2", net.W2, cg.W2},
                                       {"b2", net.b2, cg.b2}},
                            {}, tag + "article delta1 as W1 gradient");
        take_article(c, r, "W1");
        if (c.holds) {
            c.why = "holds here (unexpected)";
        } else {
            c.why = "the literal delta1 has the input's shape " + shape_str(x.shape()) + ", not W1's " +
                    shape_str(net.W1.shape()) + ": W1's gradient is the outer product of delta2 and the input";
            auto rc = hand_check(f_params, {{"W1", net.W1, cg.W1}, {"b1", net.b1, cg.b1}, {"W2", net.W2, cg.W2},
                                            {"b2", net.b2, cg.b2}},
                                 {}, tag + "corrected W1 gradient");
            take_corrected(c, "dE/dW1 = -delta2 * input' (outer product; W1 += lr * delta2 * input')", rc, "W1");
        }
        checks.push_back(std::move(c));
    }

    // ---- the weight and bias gradients the updates imply
    {
        auto r = hand_check(f_params, {{"W1", net.W1, g.W1}, {"b1", net.b1, g.b1}, {"W2", net.W2, g.W2},
                                       {"b2", net.b2, g.b2}},
                            {}, tag + "article weight/bias gradients");
        auto rc = hand_check(f_params, {{"W1", net.W1, cg.W1}, {"b1", net.b1, cg.b1}, {"W2", net.W2, cg.W2},
                                        {"b2", net.b2, cg.b2}},
                             {}, tag + "corrected weight/bias gradients");
        struct row { const char* param; const char* article; const char* meaning; const char* delta; };
        const row rows[] = {
            {"W2", "W2 += lr * delta3 * hidden'  =>  dE/dW2 = -delta3 hidden'", "dE/dW2", "delta3"},
            {"b2", "b2 += lr * delta3  =>  dE/db2 = -delta3", "dE/db2", "delta3"},
            {"W1", "W1 += lr * delta2 * input'  =>  dE/dW1 = -delta2 input'", "dE/dW1", "delta2"},
            {"b1", "b1 += lr * delta2  =>  dE/db1 = -delta2", "dE/db1", "delta2"},
        };
        for (const row& w : rows) {
            formula_check c = make_check(act, std::string(w.param) + " gradient", w.article, w.meaning);
            take_article(c, r, w.param);
            if (c.holds) {
                c.why = std::string("right, given a right ") + w.delta;
            } else {
                c.why = std::string("the update's form is right (the corrected row uses it unchanged); it is wrong only "
                                    "because the article's ") +
                        w.delta + (w.delta == std::string("delta3") ? " is wrong" : " is built on the article's delta3");
                take_corrected(c, std::string(w.article) + ", with the corrected " + w.delta, rc, w.param);
            }
            checks.push_back(std::move(c));
        }
    }

    // ---- the loss convention: the deltas belong to E = 1/2 sum, not to mse's mean
    {
        const double scale = 2.0 / static_cast<double>(t.size());
        formula_check c = make_check(act, "delta3 vs mean", "the (correct) delta3 used with mse(reduction::mean)",
                                     "-d mse_mean/dz2");
        const hand_check_fn f_mean = [&](const tensors& v) {
            tensor<double> out = is_softmax ? softmax(v[0], 0) : sigmoid(v[0]);
            return mse(out, tensor<double>(t), reduction::mean);
        };
        auto r = hand_check(f_mean, {{"z2", fw.z2, -c3}}, {}, tag + "delta3 against mean MSE");
        take_article(c, r, "z2");
        if (c.holds) {
            c.why = "holds (unexpected: mean MSE is E * 2/(out*N))";
        } else {
            std::ostringstream os;
            os << "the deltas are for E = 1/2 sum((t - o)^2); mse(mean) = E * 2/(out*N) = E * " << scale
               << ", so every gradient is off by the factor out*N/2 = " << 1 / scale;
            c.why = os.str();
            auto rc = hand_check(f_mean, {{"z2", fw.z2, -scale * c3}}, {}, tag + "delta3 scaled for mean MSE");
            take_corrected(c, "delta3 * 2/(out*N) for mse(reduction::mean)", rc, "z2");
        }
        checks.push_back(std::move(c));
    }
}

std::string num(double v, int precision = 2) { return std::isnan(v) ? "-" : tapegrad::detail::num(v, precision); }

}  // namespace

const formula_check& audit_result::find(output_activation a, const std::string& name) const {
    for (const auto& c : checks)
        if (c.activation == a && c.name == name) return c;
    throw std::out_of_range(std::string("audit_result::find: no check '") + name + "' for the " + to_string(a) +
                            " network");
}

bool audit_result::all_corrected_hold() const {
    for (const auto& c : checks)
        if (!(c.holds || (!c.corrected.empty() && c.corrected_holds))) return false;
    return true;
}

audit_result run_audit(unsigned seed) {
    audit_result result;
    result.seed = seed;
    const problem p = make_problem(output_activation::softmax, seed);
    result.in = p.net.W1.shape()[1];
    result.hidden = p.net.W1.shape()[0];
    result.out = p.net.W2.shape()[0];
    result.samples = p.input.shape()[1];
    audit_network(output_activation::softmax, seed, result);
    audit_network(output_activation::sigmoid, seed, result);
    return result;
}

std::string audit_report(const audit_result& r) {
    std::ostringstream os;
    os << "Audit of the article's formulas (seed " << r.seed << "; in " << r.in << ", hidden " << r.hidden << ", out "
       << r.out << ", " << r.samples << " samples as columns; float64)\n"
       << "Loss E = 1/2 * sum((target - output)^2); deltas are negative gradients; each formula is checked against\n"
       << "the tape and against central differences (eps 1e-6; an element agrees when |err| <= 1e-6 + 1e-5*|true|).\n";
    for (auto act : {output_activation::softmax, output_activation::sigmoid}) {
        os << "\n== " << to_string(act) << " output" << (act == output_activation::softmax ? " (the article)" : "")
           << " ==\n";
        os << std::left << std::setw(15) << "formula" << std::setw(17) << "must equal" << std::setw(7) << "holds"
           << std::setw(11) << "err tape" << std::setw(11) << "err diff" << std::setw(9) << "ratio" << std::setw(17)
           << "diagnosis" << "corrected: holds (err tape, err diff)\n";
        for (const auto& c : r.checks) {
            if (c.activation != act) continue;
            os << std::left << std::setw(15) << c.name << std::setw(17) << c.meaning << std::setw(7)
               << (c.holds ? "yes" : "NO") << std::setw(11) << num(c.max_abs_error) << std::setw(11)
               << num(c.max_abs_error_numeric) << std::setw(9) << num(c.ratio, 3) << std::setw(17)
               << to_string(c.diagnosis);
            if (c.corrected.empty())
                os << (c.holds ? "" : "none");
            else
                os << (c.corrected_holds ? "yes" : "NO") << " (" << num(c.corrected_max_abs_error) << ", "
                   << num(c.corrected_max_abs_error_numeric) << ")";
            os << '\n';
        }
        os << '\n';
        for (const auto& c : r.checks) {
            if (c.activation != act) continue;
            os << "  " << c.name << ": " << c.article << "\n      " << (c.holds ? "holds: " : "DOES NOT HOLD: ")
               << c.why << '\n';
            if (c.holds) continue;
            if (!c.param.empty()) {
                const auto& p = c.report.param(c.param);
                if (p.diagnosis == hand_diagnosis::shape_mismatch) {
                    os << "      " << p.explanation << '\n';
                } else if (!p.worst.empty()) {
                    const auto& w = p.worst.front();
                    os << "      worst element " << p.name << w.index << ": formula " << std::setprecision(6)
                       << w.hand << ", tape " << w.autodiff << ", central difference " << w.numeric << '\n';
                }
            }
            if (!c.corrected.empty())
                os << "      corrected: " << c.corrected << "  -> " << (c.corrected_holds ? "holds" : "STILL FAILS")
                   << " (max error " << num(c.corrected_max_abs_error) << " vs tape, "
                   << num(c.corrected_max_abs_error_numeric) << " vs central differences)\n";
        }
    }
    os << "\nEvery corrected formula holds: " << (r.all_corrected_hold() ? "yes" : "NO") << '\n';
    return os.str();
}

std::string audit_report(unsigned seed) { return audit_report(run_audit(seed)); }

}  // namespace tapegrad::formulas
