// matmul (checked against xtensor-blas's dot) and the shape ops.

#include <algorithm>
#include <limits>

#include <doctest/doctest.h>
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xview.hpp>

#include "autograd/kernels/blas.hpp"
#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;

TEST_CASE("matmul 2-D matches xtensor-blas for every transpose flag, small (loops) and large (BLAS)") {
    struct dims { std::size_t m, k, n; bool second_order; };
    for (dims d : {dims{3, 5, 4, true}, dims{17, 23, 19, false}}) {  // 60 and 7429 multiply-adds
        const std::size_t m = d.m, k = d.k, n = d.n;
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                CAPTURE(m);
                CAPTURE(ta);
                CAPTURE(tb);
                xarray<double> a = uniform(ta ? shape_t{k, m} : shape_t{m, k}, -1, 1, 11);
                xarray<double> b = uniform(tb ? shape_t{n, k} : shape_t{k, n}, -1, 1, 12);
                xarray<double> ea = ta ? xarray<double>(xt::transpose(a)) : a;
                xarray<double> eb = tb ? xarray<double>(xt::transpose(b)) : b;
                xarray<double> expected = xt::linalg::dot(ea, eb);
                auto y = matmul(tensor<double>(a), tensor<double>(b), ta, tb).value();
                REQUIRE(y.shape() == expected.shape());
                CHECK(xt::allclose(y, expected, 1e-12, 1e-12));
                expect_grads([ta, tb](const args& x) { return matmul(x[0], x[1], ta, tb); }, {a, b}, d.second_order);

                // the raw gemm: C = alpha op(A) op(B) + beta C, and beta = 0 overwrites even NaN
                xarray<double> c0 = uniform({m, n}, -1, 1, 13);
                xarray<double> c = c0;
                blas::gemm(ta, tb, m, n, k, 0.5, a.data(), a.shape()[1], b.data(), b.shape()[1], -2.0, c.data(), n);
                CHECK(xt::allclose(c, 0.5 * expected - 2.0 * c0, 1e-12, 1e-12));
                c.fill(std::numeric_limits<double>::quiet_NaN());
                blas::gemm(ta, tb, m, n, k, 1.0, a.data(), a.shape()[1], b.data(), b.shape()[1], 0.0, c.data(), n);
                CHECK(xt::allclose(c, expected, 1e-12, 1e-12));
            }
    }
}

TEST_CASE("matmul in float agrees with double") {
    xarray<double> a = uniform({7, 9}, -1, 1, 1), b = uniform({9, 2}, -1, 1, 2);
    auto yd = matmul(tensor<double>(a), tensor<double>(b)).value();
    auto yf = matmul(tensor<float>(xarray<float>(a)), tensor<float>(xarray<float>(b))).value();
    CHECK(xt::allclose(xarray<double>(yf), yd, 1e-5, 1e-5));
}

TEST_CASE("batched matmul: 3-D x 3-D and 3-D x shared 2-D") {
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            CAPTURE(ta);
            CAPTURE(tb);
            xarray<double> a = uniform(ta ? shape_t{2, 4, 3} : shape_t{2, 3, 4}, -1, 1, 21);
            xarray<double> b3 = uniform(tb ? shape_t{2, 5, 4} : shape_t{2, 4, 5}, -1, 1, 22);
            xarray<double> b2 = uniform(tb ? shape_t{5, 4} : shape_t{4, 5}, -1, 1, 23);
            auto y = matmul(tensor<double>(a), tensor<double>(b3), ta, tb).value();
            for (std::size_t p = 0; p < 2; ++p) {
                xarray<double> ap = xt::view(a, p), bp = xt::view(b3, p);
                if (ta) ap = xt::transpose(ap);
                if (tb) bp = xt::transpose(bp);
                xarray<double> yp = xt::view(y, p);
                CHECK(xt::allclose(yp, xt::linalg::dot(ap, bp)));
            }
            expect_grads([ta, tb](const args& x) { return matmul(x[0], x[1], ta, tb); }, {a, b3}, true);
            expect_grads([ta, tb](const args& x) { return matmul(x[0], x[1], ta, tb); }, {a, b2}, true);
        }
}

TEST_CASE("matmul of a tensor with itself accumulates both gradients") {
    xarray<double> a = uniform({3, 3}, -1, 1, 31);
    expect_grads([](const args& x) { return matmul(x[0], x[0], false, true); }, {a}, true);
    expect_grads([](const args& x) { return matmul(x[0], x[0]); }, {a});
}

TEST_CASE("matmul shape errors come before BLAS and name both shapes") {
    tensor<double> a(xarray<double>::from_shape({2, 3})), b(xarray<double>::from_shape({4, 5}));
    CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("matmul: shapes [2, 3] and [4, 5]"), shape_error);
    CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("inner dimensions 3 and 4 differ"), shape_error);
    tensor<double> v(xarray<double>::from_shape({3}));
    CHECK_THROWS_WITH_AS(matmul(v, a), doctest::Contains("matmul: shapes [3] and [2, 3]: inner dimensions 3 and 2 differ"),
                         shape_error);
    tensor<double> p(xarray<double>::from_shape({2, 2, 3})), q(xarray<double>::from_shape({3, 3, 2}));
    CHECK_THROWS_WITH_AS(matmul(p, q), doctest::Contains("batch axes [2] and [3] do not broadcast"), shape_error);
}

TEST_CASE("transpose and permute") {
    xarray<double> x = uniform({2, 3, 4}, -1, 1, 41);
    auto y = permute(tensor<double>(x), {2, 0, 1}).value();
    CHECK(y == xarray<double>(xt::transpose(x, {2, 0, 1})));
    expect_grads([](const args& a) { return permute(a[0], {2, 0, 1}); }, {x}, true);
    expect_grads([](const args& a) { return transpose(a[0]); }, {x}, true);
    CHECK_THROWS_WITH_AS(permute(tensor<double>(x), {0, 0, 1}), doctest::Contains("not a permutation"), shape_error);
}

TEST_CASE("permute: every order of a rank-4 tensor with tiles, a tail and a size-1 axis, and accumulated gradients") {
    xarray<double> x = uniform({3, 17, 1, 20}, -1, 1, 42);  // 17 and 20: a whole 16 x 16 tile and a partial one
    std::vector<int> order{0, 1, 2, 3};
    do {
        INFO(order[0], order[1], order[2], order[3]);
        tensor<double> t(x, true);
        const std::vector<std::size_t> o(order.begin(), order.end());
        tensor<double> y = permute(t, order);
        CHECK(y.value() == xarray<double>(xt::transpose(x, o)));
        const xarray<double> g = uniform(y.shape(), -1, 1, 43);
        sum((y + permute(t, order)) * tensor<double>(g)).backward();  // x read twice: the second gradient adds
        std::vector<std::size_t> inv(4);
        for (std::size_t i = 0; i < 4; ++i) inv[o[i]] = i;
        CHECK(xt::allclose(t.grad(), 2.0 * xarray<double>(xt::transpose(g, inv)), 0.0, 0.0));
        reset_tape<double>();
    } while (std::next_permutation(order.begin(), order.end()));
}

TEST_CASE("reshape") {
    xarray<double> x = uniform({2, 6}, -1, 1, 51);
    CHECK(reshape(tensor<double>(x), {3, 4}).value()(2, 3) == x(1, 5));
    expect_grads([](const args& a) { return reshape(a[0], {4, 3}) * reshape(a[0], {4, 3}); }, {x}, true);
    CHECK_THROWS_WITH_AS(reshape(tensor<double>(x), {5, 2}),
                         doctest::Contains("cannot reshape [2, 6] (12 elements) into [5, 2] (10 elements)"), shape_error);
}

TEST_CASE("slice along each axis") {
    xarray<double> x = uniform({4, 5, 3}, -1, 1, 61);
    CHECK(slice(tensor<double>(x), 1, 1, 3).value() == xarray<double>(xt::view(x, xt::all(), xt::range(1, 3))));
    for (int axis : {0, 1, 2, -1}) {
        CAPTURE(axis);
        expect_grads([axis](const args& a) { return slice(a[0], axis, 1, 3); }, {x}, true);
    }
    // two overlapping slices of one tensor accumulate
    expect_grads([](const args& a) { return slice(a[0], 0, 0, 3) * slice(a[0], 0, 1, 4); }, {x});
    CHECK_THROWS_WITH_AS(slice(tensor<double>(x), 1, 2, 9), doctest::Contains("out of bounds for axis 1"), shape_error);
    CHECK_THROWS_WITH_AS(slice(tensor<double>(x), 3, 0, 1), doctest::Contains("axis 3 is out of range"), shape_error);
}

TEST_CASE("index_select gathers rows and scatter-adds repeated rows") {
    xarray<double> x = uniform({5, 3}, -1, 1, 71);
    std::vector<std::size_t> idx{4, 0, 4, 2};
    auto y = index_select(tensor<double>(x), idx).value();
    CHECK(y(2, 1) == x(4, 1));
    expect_grads([idx](const args& a) { return index_select(a[0], idx); }, {x}, true);
    tensor<double> t(x, true);
    sum(index_select(t, idx)).backward();
    CHECK(t.grad()(4, 0) == 2.0);  // row 4 picked twice
    CHECK(t.grad()(1, 0) == 0.0);
    CHECK_THROWS_WITH_AS(index_select(tensor<double>(x), {1, 5}), doctest::Contains("index 5 at position 1"),
                         std::out_of_range);
}

TEST_CASE("concat and stack") {
    xarray<double> a = uniform({2, 3}, -1, 1, 81), b = uniform({2, 1}, -1, 1, 82), c = uniform({2, 3}, -1, 1, 83);
    auto y = concat<double>({tensor<double>(a), tensor<double>(b)}, 1).value();
    CHECK(y.shape() == std::vector<std::size_t>{2, 4});
    CHECK(y(1, 3) == b(1, 0));
    expect_grads([](const args& x) { return concat<double>({x[0], x[1], x[0]}, 1); }, {a, b}, true);
    expect_grads([](const args& x) { return stack<double>({x[0], x[1]}, 0); }, {a, c}, true);
    expect_grads([](const args& x) { return stack<double>({x[0], x[1]}, 2); }, {a, c});
    auto s = stack<double>({tensor<double>(a), tensor<double>(c)}, 1).value();
    CHECK(s.shape() == std::vector<std::size_t>{2, 2, 3});
    CHECK(s(1, 1, 2) == c(1, 2));
    CHECK_THROWS_WITH_AS(concat<double>({tensor<double>(a), tensor<double>(b)}, 0),
                         doctest::Contains("input 1 has shape [2, 1]"), shape_error);
    CHECK_THROWS_WITH_AS(stack<double>({tensor<double>(a), tensor<double>(b)}, 0),
                         doctest::Contains("stack: input 1 has shape [2, 1]"), shape_error);
}

TEST_CASE("broadcast_to and sum_to are each other's backward") {
    xarray<double> x = uniform({3, 1}, -1, 1, 91);
    expect_grads([](const args& a) { return broadcast_to(a[0], {2, 3, 4}); }, {x}, true);
    xarray<double> big = uniform({2, 3, 4}, -1, 1, 92);
    expect_grads([](const args& a) { return sum_to(a[0], {3, 1}); }, {big}, true);
    expect_grads([](const args& a) { return sum_to(a[0], {4}); }, {big}, true);
    CHECK(sum_to(tensor<double>(big), {}).value()() == doctest::Approx(xt::sum(big)()));
    CHECK_THROWS_WITH_AS(broadcast_to(tensor<double>(x), {3, 2, 2}), doctest::Contains("broadcast_to"), shape_error);
    CHECK_THROWS_WITH_AS(sum_to(tensor<double>(big), {5}), doctest::Contains("sum_to"), shape_error);
}
