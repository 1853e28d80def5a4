// The threading rule (docs/threads.md): recorded tensors belong to the thread that
// recorded them; misuse on another thread, or after that thread exited, is a clear
// error, never a crash or a read of freed memory. Leaves (parameters) may be read by
// several threads at once, and each thread trains on its own tape. Built and run under
// ThreadSanitizer by scripts/test.sh (TAPEGRAD_TSAN).

#include <cmath>
#include <future>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"

using namespace tapegrad;
using xt::xarray;

namespace {
std::string id_str(std::thread::id id) {
    std::ostringstream os;
    os << id;
    return os.str();
}

/// Runs f on a new thread and returns the message of the std::logic_error it threw ("" if none).
template <class F> std::string error_on_thread(F f) {
    std::string message = "";
    std::thread t([&] {
        try {
            f();
        } catch (const std::logic_error& e) {
            message = e.what();
        }
    });
    t.join();
    return message;
}

/// A few steps of gradient descent on a small least-squares model, all on the calling thread.
xarray<double> train(unsigned seed) {
    xarray<double> x = xt::zeros<double>({8, 3}), y = xt::zeros<double>({8, 1});
    for (std::size_t i = 0; i < 8; ++i) {
        for (std::size_t j = 0; j < 3; ++j) x(i, j) = std::sin(double(seed + 3 * i + j));
        y(i, 0) = std::cos(double(seed + i));
    }
    tensor<double> w(xt::zeros<double>({3, 1}), true), b(xt::zeros<double>({1}), true);
    for (int step = 0; step < 200; ++step) {
        w.zero_grad();
        b.zero_grad();
        tensor<double> loss = mse(matmul(tensor<double>(x), w) + b, tensor<double>(y));
        loss.backward();
        w.mutable_value() -= 0.1 * w.grad();
        b.mutable_value() -= 0.1 * b.grad();
        reset_tape<double>();
    }
    xarray<double> params = xt::zeros<double>({4});
    for (std::size_t j = 0; j < 3; ++j) params(j) = w.value()(j, 0);
    params(3) = b.value()(0);
    return params;
}
}  // namespace

TEST_CASE("threads: backward on another thread throws naming the recording thread") {
    reset_tape<double>();
    tensor<double> w(xarray<double>{1.0, 2.0}, true);
    tensor<double> loss = sum(w * w);
    const std::string main_id = id_str(std::this_thread::get_id());

    std::string msg = error_on_thread([&] { loss.backward(); });
    CHECK(msg.find("recorded op on thread " + main_id) != std::string::npos);
    CHECK(msg.find("detach()") != std::string::npos);
    CHECK(error_on_thread([&] { (void)loss.item(); }).find(main_id) != std::string::npos);
    CHECK(error_on_thread([&] { (void)tape<double>::current().gradient(loss, {w}); }).find(main_id) !=
          std::string::npos);
    CHECK(error_on_thread([&] { (void)(loss * 2.0); }).find(main_id) != std::string::npos);

    // Nothing was touched: the recording thread still runs the backward.
    loss.backward();
    CHECK(w.grad()(0) == 2.0);
    CHECK(w.grad()(1) == 4.0);
    // A detached copy is a leaf any thread may read; leaves themselves are fine too.
    tensor<double> copy = loss.detach();
    double seen = 0, seen_w = 0;
    std::thread t([&] { seen = copy.item(); seen_w = w.value()(1); });
    t.join();
    CHECK(seen == 5.0);
    CHECK(seen_w == 2.0);
}

TEST_CASE("threads: a tensor used after its recording thread exited is a clear error") {
    tensor<double> w(xarray<double>{3.0}, true);
    tensor<double> y, kept;
    std::thread t([&] {
        y = w * 2.0;        // recorded on this thread's tape
        kept = y.detach();  // what should outlive the thread
    });
    t.join();
    // The tape outlives the thread (it is reset and recycled), so this reads no freed memory.
    CHECK_THROWS_WITH_AS((void)y.item(), doctest::Contains("thread that recorded it exited"), std::logic_error);
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("thread that recorded it exited"), std::logic_error);
    CHECK(kept.item() == 6.0);
    // A new thread may be handed the recycled tape; the stale handle still fails cleanly there.
    double z_value = 0;
    std::string msg = error_on_thread([&] {
        tensor<double> z = w * 5.0;  // records on (possibly) the same tape object
        z_value = z.item();
        (void)y.value();
    });
    CHECK(z_value == 15.0);
    CHECK(msg.find("thread that recorded it exited") != std::string::npos);
}

TEST_CASE("threads: two threads train their own models at once, as they would alone") {
    const xarray<double> alone_a = train(1), alone_b = train(2);
    xarray<double> got_a, got_b;
    std::thread ta([&] { got_a = train(1); });
    std::thread tb([&] { got_b = train(2); });
    ta.join();
    tb.join();
    CHECK(got_a == alone_a);  // bit for bit: each thread has its own tape
    CHECK(got_b == alone_b);
    CHECK(xt::amax(xt::abs(alone_a - alone_b))() > 1e-3);  // the two models really differ
}

TEST_CASE("threads: one model's parameters read by two threads at once") {
    // Shared parameters that require grad: both threads record ops reading them.
    tensor<double> w(xarray<double>{{0.5, -1.0}, {2.0, 0.25}}, true);
    tensor<double> b(xarray<double>{0.1, -0.2}, true);
    auto model = [&](const xarray<double>& x) { return tapegrad::tanh(matmul(tensor<double>(x), w) + b); };
    const xarray<double> xa{{1.0, 2.0}}, xb{{-0.5, 3.0}};

    // Reference on this thread.
    reset_tape<double>();
    const xarray<double> ya = model(xa).value(), yb = model(xb).value();
    auto& tp = tape<double>::current();
    const xarray<double> ga = tp.gradient(sum(model(xa)), {w})[0].value();
    const xarray<double> gb = tp.gradient(sum(model(xb)), {w})[0].value();
    reset_tape<double>();

    std::mutex backward_mutex;  // reverse passes that reach the same leaf take turns (docs/threads.md)
    auto worker = [&](const xarray<double>& x, xarray<double>& y_inf, xarray<double>& y_rec, xarray<double>& g) {
        for (int rep = 0; rep < 50; ++rep) {
            {
                no_grad inference;
                y_inf = model(x).value();
            }
            tensor<double> out = model(x);  // recorded on this thread's tape, reading the shared leaves
            y_rec = out.value();
            {
                std::lock_guard<std::mutex> lock(backward_mutex);
                g = tape<double>::current().gradient(sum(out), {w})[0].value();
            }
            reset_tape<double>();
        }
    };
    xarray<double> ia, ra, ha, ib, rb, hb;
    std::thread t1([&] { worker(xa, ia, ra, ha); });
    std::thread t2([&] { worker(xb, ib, rb, hb); });
    t1.join();
    t2.join();
    CHECK(ia == ya);
    CHECK(ra == ya);
    CHECK(ha == ga);
    CHECK(ib == yb);
    CHECK(rb == yb);
    CHECK(hb == gb);
    CHECK_FALSE(w.has_grad());  // tape.gradient() never touches .grad()
}

TEST_CASE("threads: a reverse pass into a leaf another thread's pass holds is a clear error") {
    tensor<double> w(xarray<double>{1.0, 2.0}, true);
    std::promise<void> claimed, go_on;
    std::future<void> go = go_on.get_future();
    // Thread A holds w's gradient buffers as its reverse pass would, through the internal
    // claim (a real pass holds it only while it runs, too briefly to hit on purpose).
    std::thread a([&] {
        auto& tp = tape<double>::current();
        tp.claim(w.node_ptr());
        claimed.set_value();
        go.wait();
        tensor<double> u(xarray<double>{1.0}, true);
        (void)tp.gradient(sum(u * u), {u});  // the pass ends: everything A claimed is released
    });
    claimed.get_future().wait();
    reset_tape<double>();
    CHECK_THROWS_WITH_AS(tape<double>::current().gradient(sum(w * w), {w}),
                         doctest::Contains("two threads ran reverse passes into the same leaf (shape [2])"),
                         std::logic_error);
    CHECK_THROWS_WITH_AS(sum(w * w).backward(), doctest::Contains("serialise backward()/gradient() with a mutex"),
                         std::logic_error);
    go_on.set_value();
    a.join();
    // Released: this thread's passes reach w again, and our own failed passes released nothing of A's.
    CHECK(tape<double>::current().gradient(sum(w * w), {w})[0].value() == xarray<double>{2.0, 4.0});
    reset_tape<double>();
}
