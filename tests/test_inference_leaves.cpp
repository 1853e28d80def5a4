// Results of ops that record nothing (under no_grad, or of constants) are leaves
// taken from a per-thread pool of freed ones (autograd/tape.cpp, make_result): a
// freed result's node and value buffer serve the next one. These tests pin down
// that reuse never leaks a previous life into a new result.

#include <mutex>
#include <thread>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::uniform;
using xt::xarray;

TEST_CASE("no_grad results: a freed result's buffer serves the next, values stay right") {
    const tensor<double> x(uniform({3, 5}, -2, 2, 801)), z(uniform({4}, -2, 2, 802));
    no_grad guard;
    const xarray<double> tanh_x = tanh(x).value(), exp_z = exp(z).value();  // copies, from fresh leaves
    const double* freed = nullptr;
    {
        tensor<double> a = tanh(x);
        freed = a.value().data();
    }
    tensor<double> b = tanh(x);
    CHECK(b.value().data() == freed);  // the same buffer, written in place
    CHECK(b.value() == tanh_x);
    CHECK(std::string(b.op_name()) == "tanh");
    CHECK(b.is_leaf());
    // a result of another shape in a reused node, while an earlier one is held
    tensor<double> c = exp(z);
    CHECK(c.value() == exp_z);
    CHECK(c.shape() == shape_t{4});
    {
        tensor<double> d = tanh(x);
        CHECK(d.value() == tanh_x);
    }
    tensor<double> e = exp(z);  // may take d's [3, 5] node: shape and values are e's
    CHECK(e.shape() == shape_t{4});
    CHECK(e.value() == exp_z);
    CHECK(b.value() == tanh_x);  // held results are untouched
    CHECK(c.value() == exp_z);
    // many results alive at once, more than the pool holds
    std::vector<tensor<double>> held;
    for (int i = 0; i < 100; ++i) held.push_back(x * double(i));
    for (int i = 0; i < 100; ++i) CHECK(held[i].value() == x.value() * double(i));
}

TEST_CASE("a result made a parameter keeps its gradient, and the next result starts clean") {
    const tensor<double> x(uniform({2, 3}, -1, 1, 811));
    reset_tape<double>();
    xarray<double> twice, exp_x;
    {
        tensor<double> p;
        {
            no_grad guard;
            p = exp(x);
            exp_x = p.value();
        }
        p.set_requires_grad(true);
        sum(p * p).backward();
        twice = 2.0 * p.value();
        CHECK(p.grad() == twice);
    }
    reset_tape<double>();  // the tape lets go of p; p's node is freed, not pooled
    no_grad guard;
    tensor<double> q = exp(x);
    CHECK_FALSE(q.requires_grad());
    CHECK_FALSE(q.has_grad());
    CHECK(q.value() == exp_x);
}

TEST_CASE("results of constants used by a recorded op, across resets") {
    tensor<double> w(uniform({3}, -1, 1, 821), true);
    const tensor<double> c(uniform({3}, -1, 1, 822));
    for (int step = 0; step < 4; ++step) {
        INFO("step ", step);
        reset_tape<double>();
        tensor<double> k = exp(c);  // a leaf: c needs no gradient
        CHECK(k.is_leaf());
        tensor<double> loss = sum(k * w);
        w.zero_grad();
        loss.backward();
        CHECK(w.grad() == k.value());
    }
}

TEST_CASE("results made on one thread and freed on another, while both make more") {
    const tensor<double> x(uniform({8}, -1, 1, 831));
    std::mutex m;
    std::vector<tensor<double>> handed;  // worker -> main
    bool done = false;
    std::thread worker([&] {
        no_grad guard;
        for (int i = 0; i < 400; ++i) {
            tensor<double> r = x + double(i);
            tensor<double> scratch = r * 2.0;  // made and freed on the worker
            CHECK(scratch.value() == (x.value() + double(i)) * 2.0);  // doctest's CHECK is thread-safe
            std::lock_guard<std::mutex> lock(m);
            handed.push_back(r);
        }
        std::lock_guard<std::mutex> lock(m);
        done = true;
    });
    no_grad guard;
    int checked = 0;
    for (;;) {
        std::vector<tensor<double>> batch;
        bool finished;
        {
            std::lock_guard<std::mutex> lock(m);
            batch.swap(handed);
            finished = done;
        }
        for (const auto& r : batch) {
            const tensor<double> mine = r - double(checked);  // a result of main's own pool
            const xt::xarray<double> expected = (x.value() + double(checked)) - double(checked);
            CHECK(r.value() == x.value() + double(checked));
            CHECK(mine.value() == expected);
            ++checked;
        }
        batch.clear();  // the worker's results freed here, into main's pool
        if (finished) break;  // done was set after the last push, so that swap took it
    }
    worker.join();
    CHECK(checked == 400);
}
