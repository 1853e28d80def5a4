// gradcheck as a user feature: it passes correct gradients and pinpoints wrong ones.

#include <doctest/doctest.h>

#include "autograd/check_core.hpp"
#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;

TEST_CASE("gradcheck passes a correct function and reports every input") {
    auto r = gradcheck([](const args& a) { return tapegrad::tanh(matmul(a[0], a[1])); },
                       {uniform({2, 3}, -1, 1, 1), uniform({3, 2}, -1, 1, 2)});
    CHECK(r.passed());
    REQUIRE(r.inputs.size() == 2);
    CHECK(r.outputs == 4);
    CHECK_FALSE(r.projected);
    CHECK(r.reentrant);
    CHECK(r.inputs[1].shape == shape_t{3, 2});
    CHECK(r.inputs[0].abs_error < 1e-8);
    CHECK(r.table().find("PASS") != std::string::npos);
}

TEST_CASE("gradcheck finds a wrong derivative and names the input and element") {
    // x * detach(x): the tape sees d/dx = x, the truth is 2x. Only input 0 is wrong.
    auto buggy = [](const args& a) { return a[0] * a[0].detach() + a[1] * 3.0; };
    xarray<double> x{0.5, -2.0, 1.0}, y{1.0, 2.0, 3.0};
    auto r = gradcheck(buggy, {x, y});
    INFO(r.table());
    CHECK_FALSE(r.passed());
    CHECK_FALSE(r.inputs[0].passed);
    CHECK(r.inputs[1].passed);
    CHECK(r.inputs[0].worst_element == 1);  // |x| largest at element 1
    CHECK(r.inputs[0].worst_index == "(1)");
    CHECK(r.inputs[0].numeric == doctest::Approx(-4.0));
    CHECK(r.inputs[0].analytic == doctest::Approx(-2.0));
    CHECK(r.inputs[0].abs_error == doctest::Approx(2.0));
    CHECK(r.table().find("FAIL") != std::string::npos);
}

TEST_CASE("gradcheck uses random projections for large outputs") {
    gradcheck_options o;
    o.max_outputs = 4;
    auto r = gradcheck([](const args& a) { return a[0] * a[0]; }, {uniform({5, 5}, -1, 1, 3)}, o);
    CHECK(r.projected);
    CHECK(r.passed());
    auto bad = gradcheck([](const args& a) { return a[0] * a[0].detach(); }, {uniform({5, 5}, 0.5, 1, 4)}, o);
    CHECK_FALSE(bad.passed());
}

TEST_CASE("gradcheck leaves the tape where it was") {
    reset_tape<double>();
    tensor<double> w(xarray<double>{1.0}, true);
    auto before = w * 2.0;
    const auto size = tape<double>::current().size();
    gradcheck([](const args& a) { return exp(a[0]); }, {uniform({3}, -1, 1, 5)});
    CHECK(tape<double>::current().size() == size);
    CHECK(before.value()(0) == 2.0);
}

TEST_CASE("gradgradcheck finds a wrong second derivative") {
    // tanh(x) * detach-free first derivative is right, but this hides x from the
    // recorded backward: d/dx [x * detach(x)^2] = 3x^2 truly; the tape says x^2 ...
    auto r1 = gradgradcheck([](const args& a) { return tapegrad::tanh(a[0]); }, {uniform({3}, -1, 1, 6)});
    CHECK(r1.passed());
    auto r2 = gradgradcheck([](const args& a) { return a[0] * a[0] * a[0].detach(); }, {uniform({3}, 0.5, 1, 7)});
    CHECK_FALSE(r2.passed());
}

TEST_CASE("gradcheck reports no relative error against an exact-zero numeric gradient") {
    auto zero = gradcheck([](const args& a) { return a[0] * 0.0; }, {xarray<double>{0.5, -1.0}});
    CHECK(zero.passed());
    CHECK(zero.inputs[0].numeric == 0.0);
    CHECK(zero.inputs[0].rel_error == 0.0);
    // x 1e-9 - detach(x) 1e-9 is exactly 0 for every x, so the central difference is exactly 0,
    // while the tape sees 1e-9. Relative to 0 is undefined: NaN, printed "-" (it was 1e+291
    // next to "ok"); atol decides.
    auto tiny = gradcheck([](const args& a) { return a[0] * 1e-9 - a[0].detach() * 1e-9; }, {xarray<double>{0.3}});
    INFO(tiny.table());
    CHECK(tiny.passed());
    CHECK(tiny.inputs[0].numeric == 0.0);
    CHECK(tiny.inputs[0].analytic == doctest::Approx(1e-9));
    CHECK(std::isnan(tiny.inputs[0].rel_error));
    const std::string table = tiny.table();
    CHECK(table.find("e+2") == std::string::npos);
    CHECK(table.find(" -") != std::string::npos);
}

TEST_CASE("gradcheck rewinds the tape when the checked function throws") {
    reset_tape<double>();
    tensor<double> w(xarray<double>{1.0}, true);
    auto before = w * 2.0;
    const auto size = tape<double>::current().size();
    int calls = 0;
    auto throws_late = [&](const args& a) {
        tensor<double> y = exp(a[0]) * 3.0;  // recorded before the throw
        if (++calls == 2) throw std::runtime_error("user function failed");
        return y;
    };
    CHECK_THROWS_WITH_AS(gradcheck(throws_late, {xarray<double>{0.1, 0.2}}), "user function failed",
                         std::runtime_error);
    CHECK(tape<double>::current().size() == size);
    CHECK(before.value()(0) == 2.0);  // handles recorded before the check are still alive
    calls = 0;
    CHECK_THROWS_AS(gradgradcheck(throws_late, {xarray<double>{0.1, 0.2}}), std::runtime_error);
    CHECK(tape<double>::current().size() == size);
}

TEST_CASE("the shared checking core: multi_index, and plus_minus restores the element even when f throws") {
    CHECK(check::multi_index({2, 3, 4}, 0) == "(0, 0, 0)");
    CHECK(check::multi_index({2, 3, 4}, 23) == "(1, 2, 3)");
    CHECK(check::multi_index({}, 0) == "()");
    xarray<double> x{1.0, 2.0, 3.0};
    auto [p, m] = check::plus_minus(x, 1, 0.5, [&] { return x(1); });
    CHECK(p == 2.5);
    CHECK(m == 1.5);
    CHECK(x(1) == 2.0);
    CHECK_THROWS_AS(check::plus_minus(x, 2, 0.5, [&]() -> double { throw std::runtime_error("f failed"); }),
                    std::runtime_error);
    CHECK(x(2) == 3.0);  // restored
    CHECK(grad_enabled());  // the no_grad scope closed again
}
