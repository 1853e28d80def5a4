// hand_check: a correct hand gradient passes; a sign error, a factor-of-2 error
// and a missing term are each detected and named; bad input gives clear errors.

#include <cmath>
#include <sstream>
#include <stdexcept>

#include <doctest/doctest.h>
#include <xtensor/xmath.hpp>

#include "autograd/ops.hpp"
#include "formulas/article.hpp"
#include "formulas/hand_check.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;

namespace {

// L(W, v) = sum(tanh(W v)^2) with W [3, 4], v [4, 1].
tensor<double> model(const args& p) {
    tensor<double> s = tanh(matmul(p[0], p[1]));
    return sum(s * s);
}

struct fixture {
    xarray<double> W = uniform({3, 4}, -1, 1, 11);
    xarray<double> v = uniform({4, 1}, -1, 1, 12);
    xarray<double> dW, dv;        // correct: dL/du = 2 s (1 - s^2), dW = dL/du v', dv = W' dL/du
    xarray<double> dW_missing;    // "forgot tanh'": dL/du = 2 s
    fixture() {
        const xarray<double> s = xt::tanh(formulas::matmul(W, v));
        const xarray<double> du = 2.0 * s * (1.0 - s * s);
        dW = formulas::matmul(du, formulas::transpose(v));
        dv = formulas::matmul(formulas::transpose(W), du);
        const xarray<double> du_missing = 2.0 * s;
        dW_missing = formulas::matmul(du_missing, formulas::transpose(v));
    }
};

}  // namespace

TEST_CASE("a correct hand gradient agrees with the tape and with central differences") {
    fixture f;
    const auto before = tape<double>::current().size();
    auto r = hand_check(model, {{"W", f.W, f.dW}, {"v", f.v, f.dv}}, {}, "tanh squared");
    INFO(r.table());
    CHECK(r.passed());
    CHECK(tape<double>::current().size() == before);  // the tape is rewound
    REQUIRE(r.params.size() == 2);
    for (const auto& p : r.params) {
        CHECK(p.diagnosis == hand_diagnosis::agrees);
        CHECK(p.agrees_autodiff);
        CHECK(p.agrees_numeric);
        CHECK(p.autodiff_agrees_numeric);
        CHECK(p.max_abs_error < 1e-12);
        CHECK(p.max_abs_error_numeric < 1e-8);
        CHECK(p.ratio == doctest::Approx(1.0).epsilon(1e-12));
        CHECK(p.worst.empty());
    }
    CHECK(r.param("W").numeric_elements == 12);
    // the loss value is reported
    const xarray<double> s = xt::tanh(formulas::matmul(f.W, f.v));
    CHECK(r.loss == doctest::Approx(xt::sum(s * s)()).epsilon(1e-14));
    CHECK(r.table().find("PASS") != std::string::npos);
}

TEST_CASE("a sign error is diagnosed with ratio -1, and only for the wrong parameter") {
    fixture f;
    auto r = hand_check(model, {{"W", f.W, -f.dW}, {"v", f.v, f.dv}});
    INFO(r.table());
    CHECK_FALSE(r.passed());
    const auto& w = r.param("W");
    CHECK(w.diagnosis == hand_diagnosis::sign_error);
    CHECK_FALSE(w.agrees_autodiff);
    CHECK_FALSE(w.agrees_numeric);
    CHECK(w.ratio == doctest::Approx(-1.0).epsilon(1e-12));
    CHECK(w.fit_residual < 1e-12);
    REQUIRE(w.worst.size() == 3);
    // worst first, each with hand = -true and the difference agreeing
    CHECK(std::abs(w.worst[0].hand - w.worst[0].autodiff) >= std::abs(w.worst[1].hand - w.worst[1].autodiff));
    for (const auto& e : w.worst) {
        CHECK(e.hand == doctest::Approx(-e.autodiff));
        CHECK(e.numeric == doctest::Approx(e.autodiff).epsilon(1e-6));
    }
    CHECK(r.param("v").passed());
    const std::string table = r.table();
    CHECK(table.find("sign error") != std::string::npos);
    CHECK(table.find("FAIL") != std::string::npos);
    std::ostringstream os;
    os << r;
    CHECK(os.str() == table);
}

TEST_CASE("a factor-of-2 error and a factor-of-1/2 error are diagnosed as constant factors") {
    fixture f;
    auto r2 = hand_check(model, {{"W", f.W, f.dW}, {"v", f.v, 2.0 * f.dv}});
    INFO(r2.table());
    const auto& v2 = r2.param("v");
    CHECK(v2.diagnosis == hand_diagnosis::constant_factor);
    CHECK(v2.ratio == doctest::Approx(2.0).epsilon(1e-12));
    CHECK(v2.explanation.find("hand = 2 x true") != std::string::npos);
    CHECK(r2.param("W").passed());

    auto rh = hand_check(model, {{"W", f.W, 0.5 * f.dW}, {"v", f.v, f.dv}});
    CHECK(rh.param("W").diagnosis == hand_diagnosis::constant_factor);
    CHECK(rh.param("W").explanation.find("hand = 1/2 x true") != std::string::npos);

    auto rn = hand_check(model, {{"W", f.W, -2.0 * f.dW}, {"v", f.v, f.dv}});
    CHECK(rn.param("W").diagnosis == hand_diagnosis::constant_factor);
    CHECK(rn.param("W").ratio == doctest::Approx(-2.0));
}

TEST_CASE("a missing term is diagnosed as structural: no constant ratio fits") {
    fixture f;
    auto r = hand_check(model, {{"W", f.W, f.dW_missing}, {"v", f.v, f.dv}});
    INFO(r.table());
    const auto& w = r.param("W");
    CHECK(w.diagnosis == hand_diagnosis::structural);
    CHECK(w.fit_residual > 1e-2);
    CHECK(w.explanation.find("term is missing") != std::string::npos);
    CHECK(r.table().find("structural") != std::string::npos);

    // one wrong element is found and listed first
    xarray<double> one = f.dW;
    one(1, 2) += 0.5;
    auto r1 = hand_check(model, {{"W", f.W, one}, {"v", f.v, f.dv}});
    REQUIRE_FALSE(r1.param("W").worst.empty());
    CHECK(r1.param("W").worst[0].index == "(1, 2)");
    CHECK(r1.param("W").worst[0].flat == 6);
    CHECK(r1.param("W").max_abs_error == doctest::Approx(0.5).epsilon(1e-9));
}

TEST_CASE("zero, non-finite and wrongly shaped hand gradients, and a parameter the loss ignores") {
    fixture f;
    auto rz = hand_check(model, {{"W", f.W, xt::zeros<double>({3, 4})}, {"v", f.v, f.dv}});
    CHECK(rz.param("W").diagnosis == hand_diagnosis::hand_is_zero);

    xarray<double> bad = f.dv;
    bad(2, 0) = NAN;
    auto rnan = hand_check(model, {{"W", f.W, f.dW}, {"v", f.v, bad}});
    CHECK(rnan.param("v").diagnosis == hand_diagnosis::not_finite);
    CHECK_FALSE(rnan.passed());

    auto rs = hand_check(model, {{"W", f.W, formulas::transpose(f.dW)}, {"v", f.v, f.dv}});
    const auto& ws = rs.param("W");
    CHECK(ws.diagnosis == hand_diagnosis::shape_mismatch);
    CHECK(ws.explanation.find("[4, 3]") != std::string::npos);
    CHECK(ws.explanation.find("[3, 4]") != std::string::npos);
    CHECK(rs.table().find("shape mismatch") != std::string::npos);

    // the loss does not depend on the second parameter: its true gradient is zero
    auto ri = hand_check([](const args& p) { return sum(p[0] * p[0]); },
                         {{"a", xarray<double>{1.0, 2.0}, xarray<double>{2.0, 4.0}},
                          {"unused", xarray<double>{3.0}, xarray<double>{1.0}}});
    CHECK(ri.param("a").passed());
    CHECK(ri.param("unused").diagnosis == hand_diagnosis::true_is_zero);
    auto rok = hand_check([](const args& p) { return sum(p[0] * p[0]); },
                          {{"a", xarray<double>{1.0, 2.0}, xarray<double>{2.0, 4.0}},
                           {"unused", xarray<double>{3.0}, xarray<double>{0.0}}});
    CHECK(rok.passed());
}

TEST_CASE("at a kink the tape and the differences disagree, and the report says so") {
    // relu at exactly 0: the tape's derivative is 0, a central difference gives 1/2
    auto r = hand_check([](const args& p) { return sum(relu(p[0])); },
                        {{"x", xarray<double>{0.0, 1.0}, xarray<double>{0.0, 1.0}}});
    INFO(r.table());
    const auto& x = r.param("x");
    CHECK(x.agrees_autodiff);
    CHECK_FALSE(x.autodiff_agrees_numeric);
    CHECK(x.diagnosis == hand_diagnosis::truth_unsure);
    CHECK(x.autodiff_numeric_error == doctest::Approx(0.5).epsilon(1e-6));
}

TEST_CASE("max_numeric_elements differences a spread subset; the tape check covers everything") {
    xarray<double> a = uniform({10, 10}, -1, 1, 21);
    hand_check_options o;
    o.max_numeric_elements = 7;
    auto r = hand_check([](const args& p) { return sum(p[0] * p[0] * p[0]); }, {{"a", a, 3.0 * a * a}}, o);
    CHECK(r.passed());
    CHECK(r.param("a").numeric_elements == 7);
    xarray<double> wrong = 3.0 * a * a;
    wrong(9, 9) += 1;  // not among the differenced elements, still caught by the tape
    auto rw = hand_check([](const args& p) { return sum(p[0] * p[0] * p[0]); }, {{"a", a, wrong}}, o);
    CHECK_FALSE(rw.param("a").agrees_autodiff);
    CHECK(rw.param("a").worst[0].index == "(9, 9)");
    CHECK(std::isnan(rw.param("a").worst[0].numeric));
}

TEST_CASE("bad input to hand_check gives a clear error and leaves the tape as it was") {
    const auto before = tape<double>::current().size();
    auto square = [](const args& p) { return sum(p[0] * p[0]); };
    xarray<double> a{1.0, 2.0};
    CHECK_THROWS_WITH_AS(hand_check(square, {}), doctest::Contains("no parameters given"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(hand_check(square, {{"", a, a}}), doctest::Contains("empty name"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(hand_check(square, {{"a", a, a}, {"a", a, a}}), doctest::Contains("'a' is used twice"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(hand_check([](const args& p) { return p[0] * p[0]; }, {{"a", a, 2.0 * a}}, {}, "vector"),
                         doctest::Contains("one-element tensor, got shape [2]"), std::invalid_argument);
    // an exception from the user's loss propagates and the tape is rewound
    CHECK_THROWS_AS(hand_check([](const args& p) { return matmul(p[0], p[0]); }, {{"m", xarray<double>{{1, 2, 3}},
                                                                                   xarray<double>{{0, 0, 0}}}}),
                    std::exception);
    CHECK(tape<double>::current().size() == before);
    auto r = hand_check(square, {{"a", a, 2.0 * a}});
    CHECK_THROWS_WITH_AS(r.param("b"), doctest::Contains("no parameter named 'b'"), std::out_of_range);
}

TEST_CASE("the docs/formulas.md example: a forgotten 2 from a square is a factor 1/2") {
    // L = sum((w*x + b - y)^2), elementwise
    xarray<double> x{0.5, -1.0, 2.0}, y{1.0, 0.0, -1.0};
    xarray<double> w{0.3, 0.7, -0.2}, b{0.1, 0.1, 0.1};
    auto loss = [&](const args& p) {
        tensor<double> r = p[0] * tensor<double>(x) + p[1] - tensor<double>(y);
        return sum(r * r);
    };
    const xarray<double> r = w * x + b - y;
    auto report = hand_check(loss, {{"w", w, r * x}, {"b", b, 2.0 * r}});
    INFO(report.table());
    CHECK(report.loss == doctest::Approx(1.4125));
    CHECK(report.param("w").diagnosis == hand_diagnosis::constant_factor);
    CHECK(report.param("w").ratio == doctest::Approx(0.5));
    CHECK(report.param("w").worst[0].index == "(2)");
    CHECK(report.param("w").worst[0].autodiff == doctest::Approx(2.8));
    CHECK(report.param("b").passed());
}
