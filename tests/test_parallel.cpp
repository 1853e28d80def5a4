// Engine threads: large elementwise ops and line loops give the same bits with
// one thread and with several, and the pool survives concurrent users.

#include <atomic>
#include <stdexcept>
#include <thread>

#include <doctest/doctest.h>

#include "autograd/kernels/float_env.hpp"
#include "autograd/ops.hpp"
#include "autograd/kernels/parallel.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using xt::xarray;

namespace {

/// Values and input gradients of a chain that exercises every threaded loop.
std::vector<xarray<float>> run_chain(const xarray<float>& xv, const xarray<float>& bv) {
    tape<float>::current().reset();
    tensor<float> x(xv, true), b(bv, true);
    tensor<float> h = tanh(x * b + b);        // unary, equal-shape binary, row broadcast
    tensor<float> p = softmax(h, 1);          // line loops along the last axis
    tensor<float> q = log_softmax(h, 0);      // strided lines
    tensor<float> l = logsumexp(relu(h), 1);  // line loops with a per-line output
    tensor<float> loss = sum(p * q) + sum(l);
    loss.backward();
    std::vector<xarray<float>> out{h.value(), p.value(), q.value(), l.value(), x.grad(), b.grad()};
    tape<float>::current().reset();
    return out;
}

}  // namespace

TEST_CASE("engine threads give bit-identical results to one thread") {
    const xarray<float> x = testing::uniform({64, 1024}, -2, 2, 1);  // 65536 elements: above the grain
    const xarray<float> b = testing::uniform({1024}, -1, 1, 2);
    REQUIRE(x.size() >= detail::parallel_grain);
    set_engine_threads(1);
    const auto one = run_chain(x, b);
    set_engine_threads(2);
    CHECK(engine_threads() == 2);
    const auto two = run_chain(x, b);
    set_engine_threads(3);  // more pieces than cores still covers every element once
    const auto three = run_chain(x, b);
    set_engine_threads(1);
    REQUIRE(one.size() == two.size());
    for (std::size_t i = 0; i < one.size(); ++i) {
        CAPTURE(i);
        CHECK(one[i] == two[i]);
        CHECK(one[i] == three[i]);
    }
}

TEST_CASE("two user threads share the engine pool without deadlock or races") {
    const xarray<float> x = testing::uniform({64, 1024}, -2, 2, 3);
    const xarray<float> b = testing::uniform({1024}, -1, 1, 4);
    set_engine_threads(1);
    const auto expected = run_chain(x, b);
    set_engine_threads(2);
    std::vector<std::vector<xarray<float>>> got(2);
    {
        std::thread t0([&] { for (int i = 0; i < 20; ++i) got[0] = run_chain(x, b); });
        std::thread t1([&] { for (int i = 0; i < 20; ++i) got[1] = run_chain(x, b); });
        t0.join();
        t1.join();
    }
    set_engine_threads(1);
    for (const auto& g : got)
        for (std::size_t i = 0; i < expected.size(); ++i) CHECK(g[i] == expected[i]);
}

TEST_CASE("workers run with the caller's flush-to-zero setting") {
    // 1e-30 * 1e-10 = 1e-40 is a float denormal: flushed to 0 with FTZ on, kept with it off
    const tensor<float> x = tensor<float>::full({std::size_t(1) << 16}, 1e-30f);
    set_engine_threads(2);
    for (bool ftz : {true, false}) {
        CAPTURE(ftz);
        flush_denormals_scope scope(ftz);
        const xarray<float> y = mul_scalar(x, 1e-10f).value();
        CHECK((ftz ? y(0) == 0.f : y(0) > 0.f));
        CHECK(y(y.size() - 1) == y(0));  // the last element is a worker's
    }
    set_engine_threads(1);
}

TEST_CASE("a throwing piece reaches the caller and the pool keeps working; nested loops run serially") {
    set_engine_threads(2);
    const std::size_t n = std::size_t(1) << 16;
    CHECK_THROWS_AS(detail::parallel_for(n, 8,
                                         [&](std::size_t begin, std::size_t) {
                                             if (begin > 0) throw std::runtime_error("worker piece");
                                         }),
                    std::runtime_error);
    CHECK_THROWS_AS(detail::parallel_for(n, 8,
                                         [&](std::size_t begin, std::size_t) {
                                             if (begin == 0) throw std::runtime_error("caller piece");
                                         }),
                    std::runtime_error);
    std::atomic<std::size_t> covered{0};
    detail::parallel_for(n, 8, [&](std::size_t begin, std::size_t end) {
        detail::parallel_for(n, 8, [&](std::size_t, std::size_t) {});  // nested: must not deadlock
        covered += end - begin;
    });
    CHECK(covered == n);
    set_engine_threads(1);
}
