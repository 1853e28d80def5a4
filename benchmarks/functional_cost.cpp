// functional_cost: what functional::jvp (the double-vjp) costs against one
// functional::vjp, and both against a plain forward + backward on the tape, for a
// small MLP's loss and for chains of tanh. Interleaved: every round times a block
// of calls of each variant in turn; the table gives median times per call and the
// ratios (docs/higher_order.md quotes it).
//
//   functional_cost [--rounds N] [--block-ms M]   (float64, one thread, flush-to-zero on)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "autograd/functional.hpp"
#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/float_env.hpp"
#include "autograd/ops.hpp"

using namespace tapegrad;
namespace fx = tapegrad::functional;
using args = std::vector<tensor<double>>;

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

xt::xarray<double> normal(const shape_t& shape, double scale, std::mt19937_64& rng) {
    std::normal_distribution<double> d(0.0, scale);
    xt::xarray<double> a = xt::zeros<double>(shape);
    for (auto& e : a) e = d(rng);
    return a;
}

/// One benchmark case: a function, its inputs, a cotangent u and tangents v.
struct bench_case {
    std::string name;
    fx::fn<double> f;
    args inputs;
    tensor<double> u;
    args v;
};

/// Median seconds per call of each variant, timed in rotating blocks.
std::vector<double> interleaved(const std::vector<std::function<void()>>& variants, int rounds, double block_ms) {
    // calibrate: calls per block from one warm-up call of each
    std::vector<int> calls(variants.size(), 1);
    for (std::size_t k = 0; k < variants.size(); ++k) {
        for (int w = 0; w < 3; ++w) variants[k]();
        const auto t0 = clock_type::now();
        variants[k]();
        const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        calls[k] = std::max(1, static_cast<int>(block_ms * 1e-3 / std::max(s, 1e-9)));
    }
    std::vector<std::vector<double>> per_call(variants.size());
    for (int r = 0; r < rounds; ++r) {
        for (std::size_t j = 0; j < variants.size(); ++j) {
            const std::size_t k = (j + static_cast<std::size_t>(r)) % variants.size();  // rotate the order
            const auto t0 = clock_type::now();
            for (int c = 0; c < calls[k]; ++c) variants[k]();
            per_call[k].push_back(std::chrono::duration<double>(clock_type::now() - t0).count() / calls[k]);
        }
    }
    std::vector<double> med;
    for (auto& p : per_call) med.push_back(median(p));
    return med;
}

std::string us(double s) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f us", s * 1e6);
    return b;
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 21;
    double block_ms = 20;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = std::atoi(argv[++i]);
        } else if (!std::strcmp(argv[i], "--block-ms") && i + 1 < argc) {
            block_ms = std::atof(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: functional_cost [--rounds N] [--block-ms M]\n");
            return 2;
        }
    }
    blas::set_num_threads(1);
    flush_denormals_scope ftz;
    std::mt19937_64 rng(7);

    std::vector<bench_case> cases;
    {
        // MLP loss of its parameters: mse(tanh(x W1 + b1) W2 + b2, y), batch 64, 64-128-10
        auto x = std::make_shared<tensor<double>>(normal({64, 64}, 1.0, rng));
        auto y = std::make_shared<tensor<double>>(normal({64, 10}, 1.0, rng));
        bench_case c;
        c.name = "mlp 64-128-10 loss, batch 64";
        c.f = [x, y](const args& p) {
            return mse(matmul(tapegrad::tanh(matmul(*x, p[0]) + p[1]), p[2]) + p[3], *y);
        };
        for (const shape_t& s : {shape_t{64, 128}, shape_t{128}, shape_t{128, 10}, shape_t{10}}) {
            c.inputs.emplace_back(normal(s, 0.1, rng));
            c.v.emplace_back(normal(s, 1.0, rng));
        }
        cases.push_back(std::move(c));
    }
    for (int depth : {10, 100}) {
        bench_case c;
        c.name = "tanh chain x" + std::to_string(depth) + ", [1024]";
        c.f = [depth](const args& in) {
            tensor<double> h = in[0];
            for (int k = 0; k < depth; ++k) h = tapegrad::tanh(h);
            return h;
        };
        c.inputs.emplace_back(normal({1024}, 1.0, rng));
        c.u = tensor<double>(normal({1024}, 1.0, rng));
        c.v.emplace_back(normal({1024}, 1.0, rng));
        cases.push_back(std::move(c));
    }

    std::printf("float64, one thread, %d rounds of ~%.0f ms blocks per variant, interleaved\n", rounds, block_ms);
    std::printf("%-30s %12s %12s %12s %10s %10s\n", "case", "fwd+bwd", "vjp", "jvp", "vjp/bwd", "jvp/vjp");
    for (const auto& c : cases) {
        auto& tp = tape<double>::current();
        // the reference: the same forward and one reverse pass straight on the tape
        std::function<void()> plain = [&] {
            const auto start = tp.mark();
            args xs;
            for (const auto& in : c.inputs) xs.emplace_back(in.value(), true);
            tensor<double> out = c.f(xs);
            auto g = c.u.defined() ? tp.gradient(out, xs, c.u, {}) : tp.gradient(out, xs);
            tp.rewind(start);
        };
        std::function<void()> vjp = [&] { fx::vjp<double>(c.f, c.inputs, c.u); };
        std::function<void()> jvp = [&] { fx::jvp<double>(c.f, c.inputs, c.v); };
        const auto t = interleaved({plain, vjp, jvp}, rounds, block_ms);
        std::printf("%-30s %12s %12s %12s %9.2fx %9.2fx\n", c.name.c_str(), us(t[0]).c_str(), us(t[1]).c_str(),
                    us(t[2]).c_str(), t[1] / t[0], t[2] / t[1]);
    }
    return 0;
}
