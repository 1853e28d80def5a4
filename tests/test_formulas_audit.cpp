// The article's formulas: closed-form values of the hand-written pieces, and the
// audit's findings (whatever the numbers say): softmax delta3 is wrong and drags
// delta2 and every weight gradient with it, sigmoid delta3 is exact, the literal
// delta1 is wrong for both, and every corrected formula holds.

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "formulas/article.hpp"
#include "formulas/audit.hpp"

using namespace tapegrad;
using namespace tapegrad::formulas;
using xt::xarray;
using args = std::vector<tensor<double>>;

namespace {
/// A [rows, cols] array from row-major values (brace-init of 1x1 arrays is ambiguous in xtensor).
xarray<double> mat(std::size_t rows, std::size_t cols, std::vector<double> values) {
    xarray<double> a = xarray<double>::from_shape({rows, cols});
    std::copy(values.begin(), values.end(), a.begin());
    return a;
}
}  // namespace

TEST_CASE("the hand-written forward pass and deltas match closed forms") {
    // one input, one hidden unit, two outputs: z1 = 0.5 * 2 = 1, z2 = (tanh 1, -tanh 1)
    network net{mat(1, 1, {0.5}), mat(1, 1, {0.0}), mat(2, 1, {1.0, -1.0}), mat(2, 1, {0.0, 0.0}),
                output_activation::softmax};
    const xarray<double> x = mat(1, 1, {2.0});
    auto fw = forward(net, x);
    const double th = std::tanh(1.0);
    CHECK(fw.hidden(0, 0) == doctest::Approx(th));
    CHECK(fw.output(0, 0) == doctest::Approx(1 / (1 + std::exp(-2 * th))));
    CHECK(fw.output(0, 0) + fw.output(1, 0) == doctest::Approx(1.0));
    net.activation = output_activation::sigmoid;
    CHECK(forward(net, x).output(1, 0) == doctest::Approx(1 / (1 + std::exp(th))));

    // output (0.2, 0.8), target (0, 1)
    const xarray<double> o = mat(2, 1, {0.2, 0.8}), t = mat(2, 1, {0.0, 1.0});
    CHECK(loss(o, t) == doctest::Approx(0.5 * (0.04 + 0.04)));
    const auto a3 = article_delta3(o, t);
    CHECK(a3(0, 0) == doctest::Approx(-0.032));
    CHECK(a3(1, 0) == doctest::Approx(0.032));
    // two-class softmax, one-hot target: -dE/dz = +-2 p (1-p)^2 with p = o of the target class
    const auto c3 = correct_delta3(output_activation::softmax, o, t);
    CHECK(c3(0, 0) == doctest::Approx(-0.064));
    CHECK(c3(1, 0) == doctest::Approx(0.064));
    CHECK(correct_delta3(output_activation::sigmoid, o, t) == a3);

    // delta2 = (W2' delta3) .* (1 - h^2); literal delta1 = (W1' delta2) .* input; corrected W1' delta2
    net.activation = output_activation::softmax;
    const auto d2 = article_delta2(net, fw, a3);
    CHECK(d2(0, 0) == doctest::Approx((-0.032 - 0.032) * (1 - th * th)));
    CHECK(article_delta1(net, d2, x)(0, 0) == doctest::Approx(0.5 * d2(0, 0) * 2.0));
    CHECK(correct_delta1(net, d2)(0, 0) == doctest::Approx(0.5 * d2(0, 0)));
    const auto g = article_gradients(fw, x, a3, d2);
    CHECK(g.W2(1, 0) == doctest::Approx(-0.032 * th));
    CHECK(g.b2(0, 0) == doctest::Approx(0.032));
    CHECK(g.W1(0, 0) == doctest::Approx(-d2(0, 0) * 2.0));
    CHECK(g.b1(0, 0) == doctest::Approx(-d2(0, 0)));
}

TEST_CASE("for two softmax classes the article's delta3 is exactly half the truth") {
    // With out = 2 and one-hot targets the missing cross term equals the kept one,
    // so hand_check calls it a constant factor 1/2 rather than a structural error.
    const problem p = make_problem(output_activation::softmax, 5, 3, 4, 2, 3);
    const auto fw = forward(p.net, p.input);
    const xarray<double> t = p.target;
    auto r = hand_check([&](const args& v) { return 0.5 * mse(softmax(v[0], 0), tensor<double>(t), reduction::sum); },
                        {{"z2", fw.z2, -article_delta3(fw.output, t)}});
    INFO(r.table());
    CHECK(r.param("z2").diagnosis == hand_diagnosis::constant_factor);
    CHECK(r.param("z2").ratio == doctest::Approx(0.5).epsilon(1e-10));
}

TEST_CASE("the audit's findings") {
    for (unsigned seed : {2024u, 7u, 123456u}) {
        CAPTURE(seed);
        const audit_result a = run_audit(seed);
        INFO(audit_report(a));
        REQUIRE(a.checks.size() == 24);
        const auto S = output_activation::softmax, G = output_activation::sigmoid;

        for (auto act : {S, G}) {
            CHECK(a.find(act, "forward").holds);
            CHECK(a.find(act, "forward").max_abs_error < 1e-12);
            CHECK(a.find(act, "tanh'").holds);
            CHECK(a.find(act, "delta2 step").holds);
            // literal delta1 is wrong for both networks, with no constant ratio
            const auto& d1 = a.find(act, "delta1");
            CHECK_FALSE(d1.holds);
            CHECK(d1.diagnosis == hand_diagnosis::structural);
            CHECK(d1.max_abs_error > 1e-2);
            CHECK(d1.corrected_holds);
            CHECK(d1.corrected_max_abs_error < 1e-12);
            CHECK(d1.corrected_max_abs_error_numeric < 1e-7);
            const auto& d1w = a.find(act, "delta1 as dW1");
            CHECK(d1w.diagnosis == hand_diagnosis::shape_mismatch);
            CHECK(d1w.corrected_holds);
            // the deltas belong to E = 1/2 sum; mean MSE scales everything by 2/(out*N)
            const auto& m = a.find(act, "delta3 vs mean");
            CHECK(m.diagnosis == hand_diagnosis::constant_factor);
            CHECK(m.ratio == doctest::Approx(double(a.out * a.samples) / 2).epsilon(1e-10));
            CHECK(m.corrected_holds);
        }

        // softmax: delta3 misses the cross terms; everything built on it inherits the error
        const auto& s3 = a.find(S, "delta3");
        CHECK_FALSE(s3.holds);
        CHECK(s3.diagnosis == hand_diagnosis::structural);
        CHECK(s3.max_abs_error > 1e-2);
        CHECK(s3.max_abs_error_numeric > 1e-2);
        CHECK(s3.corrected_holds);
        CHECK(s3.corrected_max_abs_error < 1e-12);
        CHECK(s3.corrected_max_abs_error_numeric < 1e-7);
        for (const char* name : {"delta2", "W2 gradient", "b2 gradient", "W1 gradient", "b1 gradient"}) {
            CAPTURE(name);
            const auto& c = a.find(S, name);
            CHECK_FALSE(c.holds);
            CHECK(c.corrected_holds);
            CHECK(c.corrected_max_abs_error < 1e-12);
            CHECK(c.why.find("article's delta3") != std::string::npos);
        }

        // sigmoid: the article's chain is exact
        for (const char* name : {"delta3", "delta2", "W2 gradient", "b2 gradient", "W1 gradient", "b1 gradient"}) {
            CAPTURE(name);
            const auto& c = a.find(G, name);
            CHECK(c.holds);
            CHECK(c.diagnosis == hand_diagnosis::agrees);
            CHECK(c.max_abs_error < 1e-12);
            CHECK(c.max_abs_error_numeric < 1e-7);
            CHECK(c.corrected.empty());
        }
        CHECK(a.all_corrected_hold());
    }
}

TEST_CASE("audit_report prints every finding") {
    const std::string text = audit_report(2024u);
    CHECK(text.find("== softmax output (the article) ==") != std::string::npos);
    CHECK(text.find("== sigmoid output ==") != std::string::npos);
    CHECK(text.find("delta3_j = o_j * ((t_j - o_j) - sum_k o_k (t_k - o_k))") != std::string::npos);
    CHECK(text.find("delta1 = W1' delta2") != std::string::npos);
    CHECK(text.find("Every corrected formula holds: yes") != std::string::npos);
    CHECK(text.find("STILL FAILS") == std::string::npos);
}

TEST_CASE("bad shapes in the hand-written formulas give clear errors") {
    CHECK_THROWS_WITH_AS(make_problem(output_activation::softmax, 1, 0), doctest::Contains("sizes must be positive"),
                         std::invalid_argument);
    const problem p = make_problem(output_activation::sigmoid, 1);
    CHECK_THROWS_WITH_AS(forward(p.net, xarray<double>::from_shape({5, 2})),
                         doctest::Contains("input has shape [5, 2], expected [4, 2]"), std::invalid_argument);
    network wrong = p.net;
    wrong.b1 = xarray<double>::from_shape({5});
    CHECK_THROWS_WITH_AS(forward(wrong, p.input), doctest::Contains("b1 must be 2-D"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(matmul(xarray<double>::from_shape({2, 3}), xarray<double>::from_shape({2, 3})),
                         doctest::Contains("inner sizes differ: [2, 3] . [2, 3]"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(article_delta3(xarray<double>::from_shape({3, 1}), xarray<double>::from_shape({2, 1})),
                         doctest::Contains("article_delta3: output and target shapes differ"), std::invalid_argument);
    const audit_result a = run_audit(1);
    CHECK_THROWS_WITH_AS(a.find(output_activation::sigmoid, "delta4"), doctest::Contains("no check 'delta4'"),
                         std::out_of_range);
}
