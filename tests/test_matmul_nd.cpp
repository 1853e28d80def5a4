// matmul for 1-D vectors and N-D stacks with broadcast batch axes (attention's
// [B, H, T, D] x [B, H, D, T]), with transpose flags: values against a naive loop,
// gradcheck + gradgradcheck, and shape errors naming both shapes.

#include <numeric>

#include <doctest/doctest.h>
#include <xtensor/xmanipulation.hpp>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;

namespace {
/// op(a) op(b) for N-D a, b by broadcasting through xtensor, one element at a time.
xarray<double> swap_last(const xarray<double>& x) {
    std::vector<std::size_t> perm(x.dimension());
    std::iota(perm.begin(), perm.end(), 0);
    std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
    return xt::transpose(x, perm);
}

xarray<double> naive(const xarray<double>& a0, const xarray<double>& b0, bool ta, bool tb) {
    xarray<double> a = ta ? swap_last(a0) : a0;
    xarray<double> b = tb ? swap_last(b0) : b0;
    // a[..., m, k, 1] * b[..., 1, k, n] summed over k
    auto as = a.shape(), bs = b.shape();
    shape_t ae(as.begin(), as.end()), be(bs.begin(), bs.end());
    ae.push_back(1);
    be.insert(be.end() - 2, 1);
    xarray<double> prod = xt::reshape_view(a, ae) * xt::reshape_view(b, be);
    return xt::sum(prod, {int(prod.dimension()) - 2}, xt::evaluation_strategy::immediate);
}

struct nd_case {
    shape_t a, b;
    bool ta, tb;
};
const std::vector<nd_case> cases = {
    {{2, 3, 4, 5}, {2, 3, 5, 4}, false, false},  // attention scores [B, H, T, D] x [B, H, D, T]
    {{2, 3, 4, 5}, {2, 3, 4, 5}, false, true},   // Q K^T without a transpose copy
    {{2, 1, 4, 3}, {5, 3, 2}, false, false},     // batch axes broadcast both ways
    {{3, 4}, {2, 4, 5}, false, false},           // 2-D x 3-D: the matrix shared by every batch
    {{2, 4, 3}, {1, 4, 5}, true, false},         // 3-D with batch 1 on the right
    {{1, 3, 4}, {2, 5, 4}, false, true},
    {{2, 2, 3, 4}, {4, 3}, true, true},
};
}  // namespace

TEST_CASE("N-D matmul with broadcast batch axes matches a naive product") {
    unsigned seed = 501;
    for (const auto& c : cases) {
        INFO(shape_str(c.a), " x ", shape_str(c.b), " ta=", c.ta, " tb=", c.tb);
        xarray<double> a = uniform(c.a, -1, 1, seed++), b = uniform(c.b, -1, 1, seed++);
        xarray<double> y = matmul(tensor<double>(a), tensor<double>(b), c.ta, c.tb).value();
        xarray<double> want = naive(a, b, c.ta, c.tb);
        CHECK(shape_str(y.shape()) == shape_str(want.shape()));
        CHECK(xt::allclose(y, want, 1e-13, 1e-14));
    }
}

TEST_CASE("N-D matmul: gradcheck and gradgradcheck, broadcast operands sum their gradients") {
    unsigned seed = 521;
    for (const auto& c : cases) {
        INFO(shape_str(c.a), " x ", shape_str(c.b), " ta=", c.ta, " tb=", c.tb);
        xarray<double> a = uniform(c.a, -1, 1, seed++), b = uniform(c.b, -1, 1, seed++);
        const bool ta = c.ta, tb = c.tb;
        expect_grads([ta, tb](const args& x) { return matmul(x[0], x[1], ta, tb); }, {a, b}, true);
    }
    // a shared [D, E] weight gets the sum over the batch of each batch's gradient
    xarray<double> x = uniform({3, 2, 4}, -1, 1, 541), w = uniform({4, 5}, -1, 1, 542);
    tensor<double> tw(w, true);
    sum(matmul(tensor<double>(x), tw)).backward();
    xarray<double> want = xt::zeros<double>({4, 5});
    for (std::size_t p = 0; p < 3; ++p)
        for (std::size_t i = 0; i < 2; ++i)
            for (std::size_t k = 0; k < 4; ++k)
                for (std::size_t j = 0; j < 5; ++j) want(k, j) += x(p, i, k);
    CHECK(xt::allclose(tw.grad(), want, 1e-13, 1e-14));
}

TEST_CASE("matmul with 1-D vectors, as torch.matmul") {
    xarray<double> v{1, 2, 3}, u{4, 5, 6}, m{{1, 0, 2}, {0, 1, 1}};
    CHECK(matmul(tensor<double>(v), tensor<double>(u)).shape() == shape_t{});
    CHECK(matmul(tensor<double>(v), tensor<double>(u)).item() == 32);
    CHECK(matmul(tensor<double>(m), tensor<double>(v)).value() == xarray<double>{7, 5});
    CHECK(matmul(tensor<double>(xarray<double>{1, 2}), tensor<double>(m)).value() == xarray<double>{1, 2, 4});
    CHECK(matmul(tensor<double>(m), tensor<double>(xarray<double>{1, 2}), true, false).value() == xarray<double>{1, 2, 4});
    xarray<double> s = uniform({2, 3, 4}, -1, 1, 551);
    CHECK(matmul(tensor<double>(s), tensor<double>(uniform({4}, -1, 1, 552))).shape() == shape_t{2, 3});
    CHECK(matmul(tensor<double>(uniform({3}, -1, 1, 553)), tensor<double>(s)).shape() == shape_t{2, 4});
    expect_grads([](const args& x) { return matmul(x[0], x[1]); }, {uniform({5}, -1, 1, 561), uniform({5}, -1, 1, 562)}, true);
    expect_grads([](const args& x) { return matmul(x[0], x[1]); }, {s, uniform({4}, -1, 1, 563)}, true);
    expect_grads([](const args& x) { return matmul(x[0], x[1], false, true); }, {uniform({4}, -1, 1, 564), uniform({2, 5, 4}, -1, 1, 565)}, true);
}

TEST_CASE("N-D matmul errors name both shapes") {
    tensor<double> a(xarray<double>::from_shape({2, 3, 4})), b(xarray<double>::from_shape({3, 5, 2}));
    CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("matmul: shapes [2, 3, 4] and [3, 5, 2]"), shape_error);
    CHECK_THROWS_WITH_AS(matmul(tensor<double>(xarray<double>::from_shape({2, 2, 3, 4})), tensor<double>(xarray<double>::from_shape({3, 4, 2}))),
                         doctest::Contains("batch axes [2, 2] and [3] do not broadcast"), shape_error);
    CHECK_THROWS_WITH_AS(matmul(tensor<double>(xarray<double>{1.0, 2.0}), tensor<double>(xarray<double>{1.0, 2.0, 3.0})),
                         doctest::Contains("inner dimensions 2 and 3 differ"), shape_error);
    CHECK_THROWS_WITH_AS(matmul(tensor<double>(xarray<double>{1.0, 2.0}), tensor<double>(xarray<double>::from_shape({2, 2})), true, false),
                         doctest::Contains("a 1-D operand takes no transpose flag"), shape_error);
    CHECK_THROWS_WITH_AS(matmul(tensor<double>::scalar(1.0), tensor<double>(xarray<double>{1.0})), doctest::Contains("0-d operand"),
                         shape_error);
}
