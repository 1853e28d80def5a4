// detail::sum_to and detail::broadcast_back (the loops behind every broadcast
// gradient and every reduction) against xtensor's own sum and broadcast, on
// random shape pairs of rank 0 to 5 with kept, reduced and missing axes.

#include <cmath>
#include <random>

#include <doctest/doctest.h>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xreducer.hpp>

#include "autograd/detail/record.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using detail::xshape;
using xt::xarray;

namespace {

struct shape_pair {
    xshape big, small;  // small broadcasts to big
};

shape_pair random_pair(std::mt19937& rng) {
    std::uniform_int_distribution<std::size_t> rank(0, 5), extent(1, 5), coin(0, 3);
    shape_pair p;
    const std::size_t r = rank(rng);
    for (std::size_t i = 0; i < r; ++i) p.big.push_back(coin(rng) == 0 ? 1 : extent(rng));
    const std::size_t dropped = r ? std::uniform_int_distribution<std::size_t>(0, r)(rng) : 0;
    for (std::size_t i = dropped; i < r; ++i) p.small.push_back(coin(rng) == 0 ? 1 : p.big[i]);
    return p;
}

/// xtensor's sum of `big` down to `small`'s shape: sum the leading axes away, then keep-dims sums.
xarray<double> reference_sum(const xarray<double>& big, const xshape& small) {
    const std::size_t lead = big.dimension() - small.size();
    xarray<double> s = big;
    for (std::size_t i = 0; i < lead; ++i) s = xt::sum(s, {0}, xt::evaluation_strategy::immediate);
    for (std::size_t j = 0; j < small.size(); ++j)
        if (small[j] == 1 && s.shape()[j] != 1) s = xt::sum(s, {j}, xt::keep_dims | xt::evaluation_strategy::immediate);
    return s;
}

}  // namespace

TEST_CASE("sum_to and broadcast_back agree with xtensor on 2000 random shape pairs") {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 2000; ++trial) {
        const shape_pair p = random_pair(rng);
        INFO("big ", shape_str(p.big), " small ", shape_str(p.small));
        const xarray<double> big = testing::uniform(shape_t(p.big.begin(), p.big.end()), -1, 1, rng());
        const xarray<double> expected = reference_sum(big, p.small);

        xarray<double> got;
        detail::sum_to<double>(big, got, p.small, false);
        REQUIRE(detail::shapes_equal(got.shape(), p.small));
        CHECK(xt::allclose(got, expected, 1e-12, 1e-12));
        detail::sum_to<double>(big, got, p.small, true);  // accumulate: twice the sum
        CHECK(xt::allclose(got, 2.0 * expected, 1e-12, 1e-12));

        const xarray<double> small = testing::uniform(shape_t(p.small.begin(), p.small.end()), -1, 1, rng());
        const xarray<double> spread = xt::broadcast(small, p.big);
        xarray<double> back;
        detail::broadcast_back<double>(small.data(), p.small, back, p.big, false, 1.0);
        REQUIRE(detail::shapes_equal(back.shape(), p.big));
        CHECK(back == spread);
        detail::broadcast_back<double>(small.data(), p.small, back, p.big, true, -0.5);  // accumulate, scaled
        CHECK(xt::allclose(back, 0.5 * spread, 1e-15, 1e-15));
    }
}

TEST_CASE("sum_to and broadcast_back name both shapes when they do not broadcast") {
    xarray<double> a = xt::ones<double>({2, 3});
    xarray<double> out;
    CHECK_THROWS_WITH_AS(detail::sum_to<double>(a, out, xshape{2, 2}, false),
                         "sum_to: shape [2, 3] is not a broadcast of [2, 2]", shape_error);
    CHECK_THROWS_WITH_AS(detail::sum_to<double>(a, out, xshape{1, 2, 3}, false),
                         "sum_to: shape [2, 3] is not a broadcast of [1, 2, 3]", shape_error);
    CHECK_THROWS_WITH_AS(detail::broadcast_back<double>(a.data(), xshape{2, 3}, out, xshape{3, 3}, false, 1.0),
                         "broadcast_back: shape [3, 3] is not a broadcast of [2, 3]", shape_error);
}

TEST_CASE("a bias row's gradient adds the rows in order, as the general loops do (bit for bit)") {
    // float values whose sum depends on the order: the row fast path must add row 0, then 1, ...
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1e4f, 1e4f);
    for (const xshape& big : {xshape{37, 3}, xshape{5, 2, 16}, xshape{1, 9}, xshape{64, 5}}) {
        xarray<float> src = xarray<float>::from_shape(big);
        for (auto& v : src) v = u(rng) * (u(rng) > 0 ? 1e-4f : 1.0f);
        const std::size_t inner = big.back() * (big.size() == 3 ? big[1] : 1);
        const xshape small = big.size() == 3 ? xshape{big[1], big[2]} : xshape{1, big.back()};
        xarray<float> want = xt::zeros<float>({inner});
        for (std::size_t r = 0; r < src.size() / inner; ++r)
            for (std::size_t j = 0; j < inner; ++j) want.data()[j] += src.data()[r * inner + j];
        xarray<float> out;
        detail::sum_to<float>(src, out, small, false);
        REQUIRE(out.size() == inner);
        CHECK(detail::shapes_equal(out.shape(), small));
        for (std::size_t j = 0; j < inner; ++j) CHECK(out.data()[j] == want.data()[j]);
        xarray<float> again = want;  // accumulating adds each row onto the held sums, in order
        for (std::size_t r = 0; r < src.size() / inner; ++r)
            for (std::size_t j = 0; j < inner; ++j) again.data()[j] += src.data()[r * inner + j];
        detail::sum_to<float>(src, out, small, true);
        for (std::size_t j = 0; j < inner; ++j) CHECK(out.data()[j] == again.data()[j]);
    }
    // -0.0 rows sum to +0.0, as the general path's zero-filled start gives
    xarray<float> neg = {{-0.0f, -0.0f}, {-0.0f, -0.0f}};
    xarray<float> out;
    detail::sum_to<float>(neg, out, xshape{2}, false);
    CHECK_FALSE(std::signbit(out(0)));
}
