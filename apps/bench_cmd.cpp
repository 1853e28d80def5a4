// `tapegrad bench`: one training step of an MLP timed in tapegrad and in a
// hand-written xtensor + BLAS backprop of the same step, side by side. The
// engines are the benchmarks' own (benchmarks/handwritten.hpp,
// benchmarks/tapegrad_engine.cpp), so there is one hand-written network to keep.

#include "apps/commands.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/float_env.hpp"
#include "benchmarks/cases.hpp"

namespace tapegrad::app {

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int run_bench(const bench_options& o) {
    flush_denormals_scope ftz(o.flush_denormals);
    blas::set_num_threads(o.threads);
    bench::mlp_case c;
    c.name = "tapegrad bench";
    c.sizes = {784};
    c.sizes.insert(c.sizes.end(), o.layers.begin(), o.layers.end());
    c.sizes.push_back(10);
    c.act = bench::act_kind::relu;
    c.loss = bench::loss_kind::cross_entropy;
    c.batch = o.batch_size;
    c.opt = bench::opt_kind::sgd;
    c.threads = o.threads;
    c.ftz = o.flush_denormals;
    const bench::mlp_problem p = bench::make_problem(c);

    struct engine {
        const char* name = "";
        std::unique_ptr<bench::runner> run;
        float first_loss = 0;
        std::vector<double> us;
    };
    std::vector<engine> engines;
    auto add = [&](const char* name, std::unique_ptr<bench::runner> r) {
        engines.emplace_back();
        engines.back().name = name;
        engines.back().run = std::move(r);
    };
    add("hand-written xtensor+BLAS", bench::make_handwritten(p));
    add("tapegrad ops + manual SGD", bench::make_tapegrad(p));
    add("tapegrad nn::mlp + optim::sgd", bench::make_tapegrad_nn(p));
    // Same start, same data: the first losses must agree, or the comparison is meaningless.
    for (auto& e : engines) e.first_loss = e.run->step();
    for (std::size_t i = 0; i < o.warmup; ++i)
        for (auto& e : engines) e.run->step();
    // Interleave the engines so load from other processes hits all alike.
    for (std::size_t r = 0; r < o.repeats; ++r) {
        for (auto& e : engines) {
            const auto t0 = clock_type::now();
            for (std::size_t i = 0; i < o.steps; ++i) e.run->step();
            e.us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() /
                           static_cast<double>(o.steps));
        }
    }
    const double mh = median(engines[0].us);
    std::ostringstream arch;
    for (std::size_t i = 0; i < c.sizes.size(); ++i) arch << (i ? "-" : "") << c.sizes[i];
    std::cout << "bench: MLP " << arch.str() << " ReLU, softmax cross-entropy, SGD, batch " << o.batch_size
              << ", float32\n"
              << "       BLAS threads " << blas::num_threads() << ", flush-to-zero " << (o.flush_denormals ? "on" : "off")
              << ", " << o.repeats << " interleaved repeats of " << o.steps << " steps after " << o.warmup
              << " warm-up steps (medians)\n"
              << "       " << blas::info() << "\n"
              << "       first-step loss: hand-written " << engines[0].first_loss << ", tapegrad ops "
              << engines[1].first_loss << ", nn + optim " << engines[2].first_loss << "\n\n";
    std::cout << std::left << std::setw(32) << "engine" << std::right << std::setw(14) << "us/step" << std::setw(16)
              << "samples/s" << std::setw(12) << "ratio\n";
    for (const auto& e : engines) {
        const double us = median(e.us);
        std::cout << std::left << std::setw(32) << e.name << std::right << std::fixed << std::setprecision(1)
                  << std::setw(14) << us << std::setw(16) << std::setprecision(0)
                  << 1e6 * static_cast<double>(o.batch_size) / us << std::setw(11) << std::setprecision(2) << us / mh
                  << "\n"
                  << std::defaultfloat;
    }
    const float l_hand = engines[0].first_loss;
    const float tol = 1e-4f * std::max(1.f, std::abs(l_hand));
    bool agree = true;
    for (const auto& e : engines) agree = agree && std::abs(e.first_loss - l_hand) <= tol;
    if (!agree) std::cout << "WARNING: the engines' first-step losses differ\n";
    return agree ? 0 : 1;
}

}  // namespace tapegrad::app
