// tapegrad_bench: the Google Benchmark suite. Op overhead on tiny tensors
// (opchain, reported as ns per op), elementwise ops, reductions,
// softmax/log_softmax and matmul at realistic sizes (forward, and forward +
// backward), and full training steps of every case in benchmarks/cases.hpp in
// tapegrad (core ops and nn/optim) and the hand-written limit.
//
//   tapegrad_bench [--benchmark_filter=REGEX] [--benchmark_min_time=SECONDS]

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include <array>

#include <xsimd/xsimd.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>

#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/float_env.hpp"
#include "autograd/ops.hpp"
#include "benchmarks/alloc_count.hpp"
#include "benchmarks/cases.hpp"

using namespace tapegrad;
using namespace tapegrad::bench;

namespace {

using tf = tensor<float>;
using unary_fn = std::function<tf(const tf&)>;

tf random_leaf(const shape_t& shape, bool requires_grad, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    xt::xarray<float> v = xt::xarray<float>::from_shape(shape);
    for (auto& e : v) e = u(rng);
    return tf(std::move(v), requires_grad);
}

/// Adds the counters every benchmark reports: allocations and tape nodes per iteration.
void report(benchmark::State& state, std::size_t allocs_before, std::size_t nodes) {
    state.counters["allocs/iter"] =
        benchmark::Counter(static_cast<double>(allocation_count() - allocs_before), benchmark::Counter::kAvgIterations);
    state.counters["tape_nodes"] = static_cast<double>(nodes);
}

// ------------------------------------------------------------------ opchain
void run_chain(benchmark::State& state, std::unique_ptr<runner> r, std::size_t ops) {
    flush_denormals_scope ftz;
    for (int i = 0; i < 100; ++i) r->step();
    const std::size_t before = allocation_count();
    for (auto _ : state) benchmark::DoNotOptimize(r->step());
    state.counters["per_op"] =
        benchmark::Counter(static_cast<double>(ops), benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
    const std::size_t allocs = allocation_count() - before;
    state.counters["allocs/iter"] = benchmark::Counter(static_cast<double>(allocs), benchmark::Counter::kAvgIterations);
    state.counters["tape_nodes"] = static_cast<double>(r->memory_step().tape_nodes);
}

void BM_opchain(benchmark::State& state) {
    const bool bwd = state.range(0) != 0;
    auto p = make_opchain({bwd ? "opchain/fwd+bwd" : "opchain/fwd", 100, 16, bwd});
    run_chain(state, make_tapegrad_opchain(p), 100);
}
BENCHMARK(BM_opchain)->ArgName("backward")->Arg(0)->Arg(1);

void BM_opchain_handwritten(benchmark::State& state) {
    const bool bwd = state.range(0) != 0;
    auto p = make_opchain({"opchain", 100, 16, bwd});
    run_chain(state, make_handwritten_opchain(p), 100);
}
BENCHMARK(BM_opchain_handwritten)->ArgName("backward")->Arg(0)->Arg(1);

// --------------------------------------------------- ops at realistic sizes
/// Times `f(x)` on a [rows, cols] input that requires grad, so the forward is
/// recorded as in training (Arg 0), or forward + backward with a ones seed (Arg 1).
/// `BM_inference_*` time the same ops under no_grad.
void op_bench(benchmark::State& state, const unary_fn& f, std::size_t rows, std::size_t cols, double flops_per_iter = 0) {
    flush_denormals_scope ftz;
    blas::set_num_threads(1);
    const bool bwd = state.range(0) != 0;
    tf x = random_leaf({rows, cols}, true, 1);
    tf probe = f(x);
    const xt::xarray<float> seed = xt::ones<float>(probe.value().shape());
    reset_tape<float>();
    std::size_t nodes = 0;
    const std::size_t before = allocation_count();
    for (auto _ : state) {
        tf y = f(x);
        if (bwd) {
            y.backward(seed);
            x.zero_grad();
        }
        nodes = tape<float>::current().size();
        benchmark::DoNotOptimize(y.value().data());
        reset_tape<float>();
    }
    report(state, before, nodes);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * rows * cols * sizeof(float)));
    if (flops_per_iter > 0)
        state.counters["FLOP/s"] = benchmark::Counter(flops_per_iter * (bwd ? 3 : 1), benchmark::Counter::kIsIterationInvariantRate);
}

constexpr std::size_t R = 256, C = 1024;

void BM_add_bias(benchmark::State& s) {
    tf bias = random_leaf({C}, true, 2);
    op_bench(s, [&](const tf& x) { return x + bias; }, R, C);
}
void BM_mul(benchmark::State& s) {
    tf other = random_leaf({R, C}, true, 3);
    op_bench(s, [&](const tf& x) { return x * other; }, R, C);
}
void BM_relu(benchmark::State& s) { op_bench(s, [](const tf& x) { return relu(x); }, R, C); }
void BM_tanh(benchmark::State& s) { op_bench(s, [](const tf& x) { return tapegrad::tanh(x); }, R, C); }
void BM_exp(benchmark::State& s) { op_bench(s, [](const tf& x) { return tapegrad::exp(x); }, R, C); }
void BM_sigmoid(benchmark::State& s) { op_bench(s, [](const tf& x) { return sigmoid(x); }, R, C); }
void BM_sum_all(benchmark::State& s) { op_bench(s, [](const tf& x) { return sum(x); }, R, C); }
void BM_sum_axis0(benchmark::State& s) { op_bench(s, [](const tf& x) { return sum(x, {0}); }, R, C); }
void BM_sum_axis1(benchmark::State& s) { op_bench(s, [](const tf& x) { return sum(x, {1}); }, R, C); }
void BM_mean_axis1(benchmark::State& s) { op_bench(s, [](const tf& x) { return mean(x, {1}); }, R, C); }
void BM_max_axis1(benchmark::State& s) { op_bench(s, [](const tf& x) { return tapegrad::max(x, {1}); }, R, C); }
void BM_softmax(benchmark::State& s) { op_bench(s, [](const tf& x) { return softmax(x, -1); }, R, 1000); }
// Paths that were 5-50x slower than an elementwise op until 2026-12-03 (docs/benchmarks.md, "Slow paths")
void BM_max_all(benchmark::State& s) { op_bench(s, [](const tf& x) { return tapegrad::max(x); }, R, C); }
void BM_mul_column(benchmark::State& s) {
    tf col = random_leaf({R, 1}, true, 5);
    op_bench(s, [&](const tf& x) { return x * col; }, R, C);
}
void BM_softmax_axis0(benchmark::State& s) { op_bench(s, [](const tf& x) { return softmax(x, 0); }, R, 1000); }
void BM_cumsum_axis0(benchmark::State& s) { op_bench(s, [](const tf& x) { return cumsum(x, 0); }, R, C); }
void BM_concat(benchmark::State& s) { op_bench(s, [](const tf& x) { return concat<float>({x, x}, 1); }, R, C); }
void BM_slice(benchmark::State& s) { op_bench(s, [](const tf& x) { return slice(x, 1, 0, C / 2); }, R, C); }
void BM_transpose(benchmark::State& s) { op_bench(s, [](const tf& x) { return transpose(x); }, R, C); }
void BM_softplus(benchmark::State& s) { op_bench(s, [](const tf& x) { return softplus(x); }, R, C); }
void BM_log_softmax(benchmark::State& s) { op_bench(s, [](const tf& x) { return log_softmax(x, -1); }, R, 1000); }
void BM_cross_entropy(benchmark::State& s) {
    std::vector<std::size_t> labels(R);
    for (std::size_t i = 0; i < R; ++i) labels[i] = (i * 7) % 1000;
    op_bench(s, [&](const tf& x) { return cross_entropy(x, labels); }, R, 1000);
}
void BM_matmul_64x784x256(benchmark::State& s) {
    tf w = random_leaf({256, 784}, true, 4);
    op_bench(s, [&](const tf& x) { return matmul(x, w, false, true); }, 64, 784, 2.0 * 64 * 784 * 256);
}
void BM_matmul_256cubed(benchmark::State& s) {
    tf w = random_leaf({256, 256}, true, 5);
    op_bench(s, [&](const tf& x) { return matmul(x, w); }, 256, 256, 2.0 * 256 * 256 * 256);
}
/// An op under no_grad (inference): its result is a fresh leaf, not a tape slot.
void inference_bench(benchmark::State& state, const unary_fn& f, std::size_t rows, std::size_t cols) {
    tf x = random_leaf({rows, cols}, false, 1);
    no_grad guard;
    const std::size_t before = allocation_count();
    for (auto _ : state) benchmark::DoNotOptimize(f(x).value().data());
    report(state, before, 0);
}
void BM_inference_tanh_1x16(benchmark::State& s) {
    inference_bench(s, [](const tf& x) { return tapegrad::tanh(x); }, 1, 16);
}
void BM_inference_tanh_256x1024(benchmark::State& s) {
    inference_bench(s, [](const tf& x) { return tapegrad::tanh(x); }, R, C);
}
BENCHMARK(BM_inference_tanh_1x16);
BENCHMARK(BM_inference_tanh_256x1024);

// The ops of the `tiny` step one by one, at its sizes (batch 1, 4-16-3): where its
// microseconds go. Each iteration records the op, runs its backward (Arg 1) and resets.
void BM_tiny_matmul_1x4x16(benchmark::State& s) {
    tf w = random_leaf({16, 4}, true, 4);
    op_bench(s, [&](const tf& x) { return matmul(x, w, false, true); }, 1, 4);
}
void BM_tiny_add_bias_1x16(benchmark::State& s) {
    tf b = random_leaf({16}, true, 2);
    op_bench(s, [&](const tf& x) { return x + b; }, 1, 16);
}
void BM_tiny_tanh_1x16(benchmark::State& s) { op_bench(s, [](const tf& x) { return tapegrad::tanh(x); }, 1, 16); }
void BM_tiny_softmax_1x3(benchmark::State& s) { op_bench(s, [](const tf& x) { return softmax(x, -1); }, 1, 3); }
void BM_tiny_mse_1x3(benchmark::State& s) {
    tf t = random_leaf({1, 3}, false, 3);
    op_bench(s, [&](const tf& x) { return mse(x, t); }, 1, 3);
}
void BM_tiny_cross_entropy_1x3(benchmark::State& s) {
    const std::vector<std::size_t> labels{1};
    op_bench(s, [&](const tf& x) { return cross_entropy(x, labels); }, 1, 3);
}
void BM_tiny_empty_step(benchmark::State& s) { op_bench(s, [](const tf& x) { return x; }, 1, 16); }

// Hand-written references for the row-wise ops: one loop per row over raw
// pointers (xsimd through rank-1 adaptors), what the engine's ops could reach.
auto row_view(float* p, std::size_t n) { return xt::adapt(p, n, xt::no_ownership(), std::array<std::size_t, 1>{n}); }
auto row_view(const float* p, std::size_t n) {
    return xt::adapt(p, n, xt::no_ownership(), std::array<std::size_t, 1>{n});
}

/// Sum and max with eight independent accumulators (one AVX register), as a
/// careful loop would; xtensor's lazy reducers are several times slower.
float row_sum(const float* p, std::size_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const std::size_t full = n / 8 * 8;
    for (std::size_t i = 0; i < full; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += p[i + k];
    float total = 0;
    for (std::size_t i = full; i < n; ++i) total += p[i];
    for (float a : acc) total += a;
    return total;
}
float row_max(const float* p, std::size_t n) {
    float acc[8];
    std::fill_n(acc, 8, p[0]);
    const std::size_t full = n / 8 * 8;
    for (std::size_t i = 0; i < full; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] = acc[k] < p[i + k] ? p[i + k] : acc[k];
    float m = *std::max_element(acc, acc + 8);
    for (std::size_t i = full; i < n; ++i) m = m < p[i] ? p[i] : m;
    return m;
}

void BM_softmax_handwritten(benchmark::State& state) {
    flush_denormals_scope ftz;
    const bool bwd = state.range(0) != 0;
    const std::size_t rows = R, cols = 1000;
    const xt::xarray<float> x = random_leaf({rows, cols}, false, 1).value();
    xt::xarray<float> y = xt::xarray<float>::from_shape({rows, cols}), gx = y;
    const xt::xarray<float> gy = xt::ones<float>({rows, cols});
    for (auto _ : state) {
        for (std::size_t i = 0; i < rows; ++i) {
            auto xi = row_view(x.data() + i * cols, cols);
            auto yi = row_view(y.data() + i * cols, cols);
            const float mx = row_max(xi.data(), cols);
            xt::noalias(yi) = xt::exp(xi - mx);
            const float total = row_sum(yi.data(), cols);
            yi *= 1.0f / total;
            if (bwd) {
                auto gyi = row_view(gy.data() + i * cols, cols);
                auto gxi = row_view(gx.data() + i * cols, cols);
                float dot = 0;
                for (std::size_t j = 0; j < cols; ++j) dot += gyi(j) * yi(j);
                xt::noalias(gxi) = yi * (gyi - dot);
            }
        }
        benchmark::DoNotOptimize(gx.data());
        benchmark::DoNotOptimize(y.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * rows * cols * sizeof(float)));
}

void BM_sum_axis1_handwritten(benchmark::State& state) {
    const bool bwd = state.range(0) != 0;
    const xt::xarray<float> x = random_leaf({R, C}, false, 1).value();
    xt::xarray<float> out = xt::xarray<float>::from_shape({R}), gx = x;
    const xt::xarray<float> gy = xt::ones<float>({R});
    for (auto _ : state) {
        for (std::size_t i = 0; i < R; ++i) out(i) = row_sum(x.data() + i * C, C);
        if (bwd)
            for (std::size_t i = 0; i < R; ++i) std::fill_n(gx.data() + i * C, C, gy(i));
        benchmark::DoNotOptimize(out.data());
        benchmark::DoNotOptimize(gx.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * R * C * sizeof(float)));
}

void BM_sum_all_handwritten(benchmark::State& state) {
    const bool bwd = state.range(0) != 0;
    const xt::xarray<float> x = random_leaf({R, C}, false, 1).value();
    xt::xarray<float> gx = x;
    for (auto _ : state) {
        float total = row_sum(x.data(), R * C);
        benchmark::DoNotOptimize(total);
        if (bwd) std::fill_n(gx.data(), R * C, 1.0f);
        benchmark::DoNotOptimize(gx.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * R * C * sizeof(float)));
}

// What one elementwise assignment on a 1x16 tensor costs through dynamic-rank
// xt::xarray (how tape values are stored) against the same data seen as rank-1
// adaptors: the difference is shape bookkeeping the engine pays per op.
void BM_assign_1x16_xarray(benchmark::State& state) {
    xt::xarray<float> a = random_leaf({1, 16}, false, 1).value(), b = random_leaf({1, 16}, false, 2).value();
    xt::xarray<float> y = xt::xarray<float>::from_shape({1, 16});
    for (auto _ : state) {
        y.resize(a.shape());  // as an op does before writing its result
        xt::noalias(y) = a * b + a;
        benchmark::DoNotOptimize(y.data());
    }
}
BENCHMARK(BM_assign_1x16_xarray);

void BM_assign_1x16_flat(benchmark::State& state) {
    xt::xarray<float> a = random_leaf({1, 16}, false, 1).value(), b = random_leaf({1, 16}, false, 2).value();
    xt::xarray<float> y = xt::xarray<float>::from_shape({1, 16});
    for (auto _ : state) {
        y.resize(a.shape());
        auto yf = row_view(y.data(), y.size());
        xt::noalias(yf) = row_view(a.data(), a.size()) * row_view(b.data(), b.size()) + row_view(a.data(), a.size());
        benchmark::DoNotOptimize(y.data());
    }
}
BENCHMARK(BM_assign_1x16_flat);

void BM_assign_1x16_raw_loop(benchmark::State& state) {
    xt::xarray<float> a = random_leaf({1, 16}, false, 1).value(), b = random_leaf({1, 16}, false, 2).value();
    xt::xarray<float> y = xt::xarray<float>::from_shape({1, 16});
    for (auto _ : state) {
        y.resize(a.shape());
        float* __restrict out = y.data();
        const float* pa = a.data();
        const float* pb = b.data();
        for (std::size_t i = 0, n = y.size(); i < n; ++i) out[i] = pa[i] * pb[i] + pa[i];
        benchmark::DoNotOptimize(y.data());
    }
}
BENCHMARK(BM_assign_1x16_raw_loop);

// Would splitting large elementwise ops over both cores pay (issue 5, threads)?
// tanh over [rows, 1024] on 1 or 2 OpenMP threads, each thread a contiguous half
// through xsimd; range(0) = rows, range(1) = threads.
void BM_tanh_split_threads(benchmark::State& state) {
    const std::size_t rows = static_cast<std::size_t>(state.range(0)), cols = 1024;
    const int threads = static_cast<int>(state.range(1));
    const xt::xarray<float> x = random_leaf({rows, cols}, false, 1).value();
    xt::xarray<float> y = xt::xarray<float>::from_shape({rows, cols});
    const std::size_t n = rows * cols;
    for (auto _ : state) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int t = 0; t < threads; ++t) {
            const std::size_t begin = n * t / threads, end = n * (t + 1) / threads;
            auto out = row_view(y.data() + begin, end - begin);
            xt::noalias(out) = xt::tanh(row_view(x.data() + begin, end - begin));
        }
        benchmark::DoNotOptimize(y.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
}
BENCHMARK(BM_tanh_split_threads)->ArgNames({"rows", "threads"})->ArgsProduct({{16, 64, 256}, {1, 2}})->UseRealTime();

// Finding 2's proposal in miniature: a rule written once as a template, run on
// xsimd batches over the raw buffer (scalar tail), against the same rule assigned
// through xtensor on xt::xarray. The rule mirrors autograd's tanh rule (forward
// tanh(x), grad gy * (1 - y*y)).
struct tanh_like_rule {
    template <class X> static X forward(const X& x) { return tanh(x); }
    template <class Y> static Y grad(const Y& y, const Y& gy) { return gy * (Y(1) - y * y); }
};

template <class Rule> void run_rule_simd(const float* x, float* y, std::size_t n) {
    using batch = xsimd::batch<float>;
    constexpr std::size_t w = batch::size;
    std::size_t i = 0;
    for (; i + w <= n; i += w) Rule::forward(batch::load_unaligned(x + i)).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = std::tanh(x[i]);
}

void BM_rule_tanh_1x16_xarray(benchmark::State& state) {
    xt::xarray<float> x = random_leaf({1, 16}, false, 1).value();
    xt::xarray<float> y = xt::xarray<float>::from_shape({1, 16});
    for (auto _ : state) {
        y.resize(x.shape());
        xt::noalias(y) = xt::tanh(x);
        benchmark::DoNotOptimize(y.data());
    }
}
BENCHMARK(BM_rule_tanh_1x16_xarray);

void BM_rule_tanh_1x16_xsimd_loop(benchmark::State& state) {
    xt::xarray<float> x = random_leaf({1, 16}, false, 1).value();
    xt::xarray<float> y = xt::xarray<float>::from_shape({1, 16});
    for (auto _ : state) {
        y.resize(x.shape());
        run_rule_simd<tanh_like_rule>(x.data(), y.data(), x.size());
        benchmark::DoNotOptimize(y.data());
    }
}
BENCHMARK(BM_rule_tanh_1x16_xsimd_loop);

#define TAPEGRAD_OP_BENCH(fn) BENCHMARK(fn)->ArgName("backward")->Arg(0)->Arg(1)
TAPEGRAD_OP_BENCH(BM_add_bias);
TAPEGRAD_OP_BENCH(BM_mul);
TAPEGRAD_OP_BENCH(BM_relu);
TAPEGRAD_OP_BENCH(BM_tanh);
TAPEGRAD_OP_BENCH(BM_exp);
TAPEGRAD_OP_BENCH(BM_sigmoid);
TAPEGRAD_OP_BENCH(BM_sum_all);
TAPEGRAD_OP_BENCH(BM_sum_all_handwritten);
TAPEGRAD_OP_BENCH(BM_sum_axis0);
TAPEGRAD_OP_BENCH(BM_sum_axis1);
TAPEGRAD_OP_BENCH(BM_sum_axis1_handwritten);
TAPEGRAD_OP_BENCH(BM_mean_axis1);
TAPEGRAD_OP_BENCH(BM_max_axis1);
TAPEGRAD_OP_BENCH(BM_softmax);
TAPEGRAD_OP_BENCH(BM_max_all);
TAPEGRAD_OP_BENCH(BM_mul_column);
TAPEGRAD_OP_BENCH(BM_softmax_axis0);
TAPEGRAD_OP_BENCH(BM_cumsum_axis0);
TAPEGRAD_OP_BENCH(BM_concat);
TAPEGRAD_OP_BENCH(BM_slice);
TAPEGRAD_OP_BENCH(BM_transpose);
TAPEGRAD_OP_BENCH(BM_softplus);
TAPEGRAD_OP_BENCH(BM_softmax_handwritten);
TAPEGRAD_OP_BENCH(BM_log_softmax);
TAPEGRAD_OP_BENCH(BM_cross_entropy);
TAPEGRAD_OP_BENCH(BM_matmul_64x784x256);
TAPEGRAD_OP_BENCH(BM_matmul_256cubed);
TAPEGRAD_OP_BENCH(BM_tiny_matmul_1x4x16);
TAPEGRAD_OP_BENCH(BM_tiny_add_bias_1x16);
TAPEGRAD_OP_BENCH(BM_tiny_tanh_1x16);
TAPEGRAD_OP_BENCH(BM_tiny_softmax_1x3);
TAPEGRAD_OP_BENCH(BM_tiny_mse_1x3);
TAPEGRAD_OP_BENCH(BM_tiny_cross_entropy_1x3);
BENCHMARK(BM_tiny_empty_step)->ArgName("backward")->Arg(0);

// ----------------------------------------------------------- training steps
void train_bench(benchmark::State& state, const mlp_case& c, int engine) {
    blas::set_num_threads(c.threads);
    flush_denormals_scope ftz(c.ftz);
    const auto p = make_problem(c);
    auto r = engine == 0 ? make_tapegrad(p) : engine == 1 ? make_tapegrad_nn(p) : make_handwritten(p);
    for (int i = 0; i < 20; ++i) r->step();
    const std::size_t before = allocation_count();
    for (auto _ : state) benchmark::DoNotOptimize(r->step());
    const std::size_t allocs = allocation_count() - before;
    const step_memory mem = r->memory_step();
    state.counters["allocs/iter"] = benchmark::Counter(static_cast<double>(allocs), benchmark::Counter::kAvgIterations);
    state.counters["tape_nodes"] = static_cast<double>(mem.tape_nodes);
    state.counters["tape_bytes"] = static_cast<double>(mem.tape_bytes);
    blas::set_num_threads(1);
}

}  // namespace

int main(int argc, char** argv) {
    const char* engines[] = {"tapegrad", "tapegrad_nn", "handwritten"};
    for (const auto& c : mlp_cases())
        for (int e = 0; e < 3; ++e)
            benchmark::RegisterBenchmark(("BM_train/" + c.name + "/" + engines[e]).c_str(),
                                         [c, e](benchmark::State& s) { train_bench(s, c, e); })
                ->Unit(benchmark::kMicrosecond);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("blas", blas::info());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
