// tapegrad_compare: the same cases (benchmarks/cases.hpp) in tapegrad (core ops,
// and nn/optim), a hand-written xtensor + BLAS backprop (SGD fused into the gemm,
// and not) and LibTorch, interleaved in one process:
// warm-up first, then rounds in which every engine times a block of steps in
// rotating order; the table shows each engine's median time per step and the
// ratios. Also prints the machine's settings and GEMM ceiling, tape counters,
// allocations per step and peak RSS (each engine alone in a child process).
//
//   tapegrad_compare [--rounds N] [--block-ms M] [--case SUBSTR] [--no-rss]
//   tapegrad_compare --profile CASE --engine ENGINE --seconds S   (for perf)
//   tapegrad_compare --fashion [--epochs N]   (Fashion-MNIST end to end)
//   tapegrad_compare --breakdown cnn/adam [--rounds N]   (the tapegrad CNN step, stage by stage)
//   tapegrad_compare --passes [--case SUBSTR] [--rounds N] [--block-ms M]   (what each compiled-step pass gains)


#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/parallel.hpp"
#include "autograd/kernels/float_env.hpp"
#include "benchmarks/alloc_count.hpp"
#include "benchmarks/cases.hpp"
#include "data/dataset.hpp"

using namespace tapegrad;
using namespace tapegrad::bench;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct options {
    int rounds = 21;
    double block_ms = 15;
    std::string only;
    bool rss = true;
    std::string profile_case, profile_engine;
    double profile_seconds = 10;
    int rss_case = -2;  // child mode: run one case in one engine, report nothing
    std::string rss_engine;
    bool fashion = false;
    int epochs = 10;
    std::string breakdown_case;
    bool passes = false;
};

const char* engine_names[] = {"tapegrad", "tapegrad-nn", "handwritten", "libtorch", "handwritten-unfused",
                              "handwritten-wide", "tapegrad-compiled"};
constexpr int n_engines = 7;

/// A case of either kind, as the runner sees it.
struct any_case {
    std::string name;
    int threads = 1;
    bool ftz = true;
    std::size_t warmup_steps = 20;
    double per_op = 0;  // opchain: divide the step time by the op count
    std::function<std::unique_ptr<runner>(int engine)> make;
};

std::vector<any_case> all_cases() {
    std::vector<any_case> out;
    for (const auto& c : opchain_cases()) {
        auto p = std::make_shared<opchain_problem>(make_opchain(c));
        out.push_back({c.name, 1, true, 200, static_cast<double>(c.ops), [p](int e) -> std::unique_ptr<runner> {
                           if (e == 0) return make_tapegrad_opchain(*p);
                           if (e == 6) return make_tapegrad_opchain(*p, true);
                           if (e == 2) return make_handwritten_opchain(*p);
                           if (e == 3) return make_torch_opchain(*p);
                           return nullptr;
                       }});
    }
    for (const auto& c : conv_cases()) {
        auto p = std::make_shared<conv_problem>(make_conv(c));
        out.push_back({c.name, 1, true, 5, 0, [p](int e) -> std::unique_ptr<runner> {
                           if (e == 0) return make_tapegrad_conv(*p);
                           if (e == 2) return make_handwritten_conv(*p);
                           if (e == 5) return make_handwritten_conv(*p, true);
                           if (e == 3) return make_torch_conv(*p);
                           return nullptr;
                       }});
    }
    for (const auto& c : cnn_cases()) {
        auto p = std::make_shared<cnn_problem>(make_cnn(c));
        out.push_back({c.name, 1, true, 5, 0, [p](int e) -> std::unique_ptr<runner> {
                           if (e == 0) return make_tapegrad_cnn(*p);
                           if (e == 1) return make_tapegrad_nn_cnn(*p);
                           if (e == 6) return make_tapegrad_nn_cnn(*p, true);
                           if (e == 2) return make_handwritten_cnn(*p);
                           if (e == 5) return make_handwritten_cnn(*p, true);
                           if (e == 3) return make_torch_cnn(*p);
                           return nullptr;
                       }});
    }
    for (const auto& c : mlp_cases()) {
        auto p = std::make_shared<mlp_problem>(make_problem(c));
        // Adam without FTZ: moments need a few hundred steps to decay into denormals.
        const std::size_t warm = c.ftz ? 20 : 600;
        out.push_back({c.name, c.threads, c.ftz, warm, 0, [p](int e) -> std::unique_ptr<runner> {
                           switch (e) {
                               case 0: return make_tapegrad(*p);
                               case 1: return make_tapegrad_nn(*p);
                               case 2: return make_handwritten(*p);
                               case 3: return make_torch(*p);
                               case 6: return make_tapegrad_compiled(*p);
                               case 4:  // only SGD differs when not fused
                                   return p->spec.opt == opt_kind::sgd ? make_handwritten_unfused(*p) : nullptr;
                               default: return nullptr;
                           }
                       }});
    }
    return out;
}

void set_threads(int n) {
    blas::set_num_threads(n);
    torch_set_threads(n);
    set_engine_threads(n);  // tapegrad's elementwise/optimizer loops, and the hand-written Adam loop
}

/// Median GFLOP/s of a float gemm m x n x k with `threads` BLAS threads.
double gemm_gflops(std::size_t m, std::size_t n, std::size_t k, bool tb, int threads) {
    blas::set_num_threads(threads);
    std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
    std::vector<double> t;
    for (int r = 0; r < 31; ++r) {
        auto t0 = clock_type::now();
        blas::gemm(false, tb, m, n, k, 1.0f, a.data(), k, b.data(), tb ? k : n, 0.0f, c.data(), n);
        if (r >= 5) t.push_back(seconds_since(t0));
    }
    return 2.0 * m * n * k / median(t) * 1e-9;
}

std::string fmt_time(double s) {
    char buf[32];
    if (s < 1e-6) std::snprintf(buf, sizeof buf, "%.0f ns", s * 1e9);
    else if (s < 1e-3) std::snprintf(buf, sizeof buf, "%.2f us", s * 1e6);
    else std::snprintf(buf, sizeof buf, "%.3f ms", s * 1e3);
    return buf;
}

std::string fmt_ratio(double a, double b) {
    if (!(a > 0) || !(b > 0)) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fx", a / b);
    return buf;
}

/// Peak RSS (MB) of a child process running `case_index` in `engine` alone: the
/// child's own VmHWM, read by itself after exec (ru_maxrss of a forked child would
/// include the parent's pages it inherited before the exec).
double child_rss_mb(const char* self, int case_index, const std::string& engine) {
    char path[4096];  // /proc/self/exe would name the shell popen starts
    const ssize_t len = readlink(self, path, sizeof path - 1);
    if (len <= 0) return -1;
    path[len] = '\0';
    const std::string cmd =
        std::string("'") + path + "' --rss-child " + std::to_string(case_index) + " '" + engine + "'";
    FILE* f = popen(cmd.c_str(), "r");
    if (!f) return -1;
    double kb = -1;
    if (std::fscanf(f, "%lf", &kb) != 1) kb = -1;
    if (pclose(f) != 0) return -1;
    return kb < 0 ? -1 : kb / 1024.0;
}

/// This process's peak resident set (VmHWM) in kB, or -1.
double self_peak_rss_kb() {
    FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
    std::fclose(f);
    return kb;
}

int engine_index(const std::string& name) {
    for (int e = 0; e < n_engines; ++e)
        if (name == engine_names[e]) return e;
    return -1;
}

int run_child(const options& o) {
    auto cases = all_cases();  // the cases' data, in the baseline too
    if (o.rss_case < 0) {      // baseline: the process with nothing run
        std::printf("%.0f\n", self_peak_rss_kb());
        return 0;
    }
    const auto& c = cases.at(static_cast<std::size_t>(o.rss_case));
    set_threads(c.threads);
    flush_denormals_scope ftz(c.ftz);
    auto r = c.make(engine_index(o.rss_engine));
    if (!r) return 1;
    for (int i = 0; i < 50; ++i) r->step();
    std::printf("%.0f\n", self_peak_rss_kb());
    return 0;
}

int run_profile(const options& o) {
    for (const auto& c : all_cases()) {
        if (c.name != o.profile_case) continue;
        set_threads(c.threads);
        flush_denormals_scope ftz(c.ftz);
        auto r = c.make(engine_index(o.profile_engine));
        if (!r) {
            std::fprintf(stderr, "no engine '%s' for case '%s'\n", o.profile_engine.c_str(), c.name.c_str());
            return 1;
        }
        std::size_t steps = 0;
        auto t0 = clock_type::now();
        while (seconds_since(t0) < o.profile_seconds) {
            for (int i = 0; i < 10; ++i) r->step();
            steps += 10;
        }
        const double per = seconds_since(t0) / steps;
        std::printf("%s in %s: %zu steps, %s per step%s\n", c.name.c_str(), o.profile_engine.c_str(), steps,
                    fmt_time(per).c_str(),
                    c.per_op > 0 ? (", " + fmt_time(per / c.per_op) + " per op").c_str() : "");
        return 0;
    }
    std::fprintf(stderr, "no case named '%s'\n", o.profile_case.c_str());
    return 1;
}

/// What each pass of a compiled step gains: the compiled step with every pass, with
/// each pass off in turn and with none, next to the hand-written step; interleaved
/// rounds as in the main table, medians of the per-step times.
int run_passes(const options& o) {
    struct variant {
        const char* name;
        compiled_passes passes;
    };
    const variant variants[] = {{"all passes", {true, true, true, true, true, true}},
                                {"no fuse_elementwise", {false, true, true, true, true, true}},
                                {"no fuse_bias_activation", {true, false, true, true, true, true}},
                                {"no fuse_sgd", {true, true, false, true, true, true}},
                                {"no fuse_backward_elementwise", {true, true, true, false, true, true}},
                                {"no plan_backward", {true, true, true, true, false, false}},
                                {"no alias_bias_grad", {true, true, true, true, true, false}},
                                {"no passes", {false, false, false, false, false, false}}};
    constexpr int n_variants = 8, hand = n_variants;
    std::printf("Compiled step with its passes switched off one at a time (opchain: per op), medians of %d rounds of "
                "~%.0f ms blocks; 'gain' is the median over the rounds of the step's time with that pass off over "
                "its time with all passes in the same round\n",
                o.rounds, o.block_ms);
    std::printf("| case | all passes | no fuse_elementwise | no fuse_bias_activation | no fuse_sgd | "
                "no fuse_backward_elementwise | no plan_backward | no alias_bias_grad | no passes | hand-written | "
                "all/hand | gain: elementwise | gain: bias+activation | gain: sgd | gain: backward elementwise | "
                "gain: plan (alias too) | gain: alias | gain: all |\n"
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    struct one_case {
        std::string name;
        int threads;
        bool ftz;
        double per_op;
        std::function<std::unique_ptr<runner>(int)> make;
    };
    std::vector<one_case> cases;
    for (const auto& c : opchain_cases()) {
        if (!c.backward) continue;
        auto p = std::make_shared<opchain_problem>(make_opchain(c));
        cases.push_back({c.name, 1, true, double(c.ops), [p, &variants](int v) {
                             return v == hand ? make_handwritten_opchain(*p)
                                              : make_tapegrad_opchain(*p, true, variants[v].passes);
                         }});
    }
    for (const auto& c : mlp_cases()) {
        auto p = std::make_shared<mlp_problem>(make_problem(c));
        cases.push_back({c.name, c.threads, c.ftz, 0, [p, &variants](int v) {
                             return v == hand ? make_handwritten(*p) : make_tapegrad_compiled(*p, variants[v].passes);
                         }});
    }
    for (const auto& c : cases) {
        if (!o.only.empty() && c.name.find(o.only) == std::string::npos) continue;
        set_threads(c.threads);
        flush_denormals_scope ftz(c.ftz);
        std::unique_ptr<runner> eng[n_variants + 1];
        std::size_t block[n_variants + 1];
        for (int v = 0; v <= n_variants; ++v) {
            eng[v] = c.make(v);
            auto t0 = clock_type::now();
            std::size_t n = 0;
            while (n < 20 || seconds_since(t0) < 0.1) {
                eng[v]->step();
                ++n;
            }
            block[v] = std::max<std::size_t>(1, static_cast<std::size_t>(o.block_ms * 1e-3 * n / seconds_since(t0)));
        }
        std::vector<double> times[n_variants + 1];
        for (int round = 0; round < o.rounds; ++round)
            for (int k = 0; k <= n_variants; ++k) {
                const int v = (k + round) % (n_variants + 1);
                auto t0 = clock_type::now();
                for (std::size_t i = 0; i < block[v]; ++i) eng[v]->step();
                times[v].push_back(seconds_since(t0) / block[v] / (c.per_op > 0 ? c.per_op : 1));
            }
        double t[n_variants + 1];
        for (int v = 0; v <= n_variants; ++v) t[v] = median(times[v]);
        // paired: variant v over all passes within each round, then the median over rounds
        auto paired = [&](int v) {
            std::vector<double> r;
            for (int round = 0; round < o.rounds; ++round) r.push_back(times[v][round] / times[0][round]);
            return median(r);
        };
        std::printf("| %s |", c.name.c_str());
        for (int v = 0; v <= n_variants; ++v) std::printf(" %s |", fmt_time(t[v]).c_str());
        std::printf(" %s |", fmt_ratio(t[0], t[hand]).c_str());
        for (int v = 1; v < n_variants; ++v) std::printf(" %.3fx |", paired(v));
        std::printf("\n");
        std::fflush(stdout);
    }
    return 0;
}

/// Where the tapegrad CNN step's time goes, stage by stage (forward and backward),
/// next to the plain step's median time (the hooks that mark the backward stages
/// copy each stage's output gradient once, which the plain step does not).
int run_breakdown(const options& o) {
    for (const auto& c : cnn_cases()) {
        if (c.name != o.breakdown_case) continue;
        set_threads(1);
        flush_denormals_scope ftz(true);
        const cnn_problem p = make_cnn(c);
        // Interleaved, so load from elsewhere falls on both engines alike: per round an
        // untimed and a timed step of each, in rotating order.
        auto tg_timer = tapegrad_cnn_timer(p, &allocation_count);
        auto hw_timer = handwritten_cnn_timer(p);
        auto tg_plain = make_tapegrad_cnn(p), hw_plain = make_handwritten_cnn(p);
        for (int i = 0; i < 5; ++i) tg_plain->step(), hw_plain->step();
        std::vector<std::vector<op_time>> runs[2];
        std::vector<double> plain_t[2];
        for (int round = 0; round < o.rounds; ++round)
            for (int k = 0; k < 2; ++k) {
                const int e = (k + round) % 2;
                auto t0 = clock_type::now();
                (e == 0 ? tg_plain : hw_plain)->step();
                plain_t[e].push_back(seconds_since(t0));
                runs[e].push_back(e == 0 ? tg_timer() : hw_timer());
            }
        auto medians = [](const std::vector<std::vector<op_time>>& all) {
            std::vector<op_time> out = all.front();
            for (std::size_t k = 0; k < out.size(); ++k) {
                std::vector<double> f, b, a;
                for (const auto& r : all) f.push_back(r[k].forward), b.push_back(r[k].backward),
                                          a.push_back(r[k].forward_allocs);
                out[k].forward = median(f);
                out[k].backward = median(b);
                out[k].forward_allocs = median(a);
            }
            return out;
        };
        const auto tg = medians(runs[0]), hw = medians(runs[1]);
        const double plain = median(plain_t[0]), hw_plain_t = median(plain_t[1]);
        double sum[2][2] = {{0, 0}, {0, 0}};
        for (std::size_t k = 0; k < tg.size(); ++k) {
            sum[0][0] += tg[k].forward, sum[0][1] += tg[k].backward;
            sum[1][0] += hw[k].forward, sum[1][1] += hw[k].backward;
        }
        std::printf("%s, medians of %d interleaved rounds. tapegrad: untimed step %s, stages sum to %s (forward %s, "
                    "backward + update %s); hand-written: untimed step %s (tapegrad/hand %s), stages sum to %s "
                    "(forward %s, backward + update %s)\n",
                    c.name.c_str(), o.rounds, fmt_time(plain).c_str(), fmt_time(sum[0][0] + sum[0][1]).c_str(),
                    fmt_time(sum[0][0]).c_str(), fmt_time(sum[0][1]).c_str(), fmt_time(hw_plain_t).c_str(),
                    fmt_ratio(plain, hw_plain_t).c_str(), fmt_time(sum[1][0] + sum[1][1]).c_str(),
                    fmt_time(sum[1][0]).c_str(), fmt_time(sum[1][1]).c_str());
        auto cell = [](double t) { return t > 0 ? fmt_time(t) : std::string("-"); };
        std::printf("| stage | tapegrad forward | tapegrad backward | hand forward | hand backward | tapegrad/hand "
                    "(fwd+bwd) | share of tapegrad's step | tapegrad forward allocations |\n"
                    "|---|---:|---:|---:|---:|---:|---:|---:|\n");
        double fwd_allocs = 0;
        for (std::size_t k = 0; k < tg.size(); ++k) {
            char allocs[32] = "-";
            if (tg[k].forward_allocs >= 0 && tg[k].forward > 0) {
                std::snprintf(allocs, sizeof allocs, "%.0f", tg[k].forward_allocs);
                fwd_allocs += tg[k].forward_allocs;
            }
            std::printf("| %s | %s | %s | %s | %s | %s | %.1f%% | %s |\n", tg[k].op.c_str(), cell(tg[k].forward).c_str(),
                        cell(tg[k].backward).c_str(), cell(hw[k].forward).c_str(), cell(hw[k].backward).c_str(),
                        fmt_ratio(tg[k].forward + tg[k].backward, hw[k].forward + hw[k].backward).c_str(),
                        100.0 * (tg[k].forward + tg[k].backward) / (sum[0][0] + sum[0][1]), allocs);
        }
        const std::size_t a0 = allocation_count();
        for (int i = 0; i < 10; ++i) tg_plain->step();
        std::printf("allocations per untimed step: %.1f, of which %.0f in the forward stages above, the rest in "
                    "backward, the optimizer and the reset\n",
                    (allocation_count() - a0) / 10.0, fwd_allocs);
        std::printf("(tapegrad's backward stages are marked by hooks on each stage's output, which copy that "
                    "gradient once; hand-written relu is fused into the stage before it)\n");
        return 0;
    }
    std::fprintf(stderr, "no CNN case named '%s'\n", o.breakdown_case.c_str());
    return 1;
}

/// Fashion-MNIST end to end: 784-256-128-10 ReLU, cross-entropy, Adam (lr 1e-3),
/// batch 128, inputs scaled to [0, 1], the same seeded batch order and the same
/// initial weights in every engine. The engines train epoch by epoch in turn; the
/// time is the sum of each engine's epochs (data already in memory, batch copies
/// included), then each is evaluated on the test set.
int run_fashion(const options& o) {
    const std::string dir = data::default_fashion_dir();
    auto t_load = clock_type::now();
    data::dataset train = data::load_fashion_mnist(dir, true);
    data::dataset test = data::load_fashion_mnist(dir, false);
    for (auto* d : {&train, &test})
        for (auto& v : d->x) v /= 255.0f;
    std::printf("Fashion-MNIST from %s: %zu train, %zu test images, loaded in %.2f s\n", dir.c_str(), train.size(),
                test.size(), seconds_since(t_load));
    const mlp_case c{"fashion", {784, 256, 128, 10}, act_kind::relu, loss_kind::cross_entropy, 128, opt_kind::adam};
    const mlp_problem p = make_problem(c, 1);
    const std::size_t in = 784, batches = train.size() / c.batch;  // the last partial batch is skipped
    std::vector<float> bx(c.batch * in);
    std::vector<std::size_t> by(c.batch);
    set_threads(1);
    flush_denormals_scope ftz(true);
    std::printf("| engine | %d epochs training time | test accuracy | final batch loss |\n|---|---:|---:|---:|\n",
                o.epochs);
    constexpr int n = 4;
    const int engines[n] = {2, 0, 6, 3};
    std::unique_ptr<runner> r[n];
    double seconds[n] = {0, 0, 0, 0};
    float loss[n] = {0, 0, 0, 0};
    for (int k = 0; k < n; ++k)
        r[k] = engines[k] == 0   ? make_tapegrad(p)
               : engines[k] == 2 ? make_handwritten(p)
               : engines[k] == 6 ? make_tapegrad_compiled(p)
                                 : make_torch(p);
    std::mt19937_64 rng(5);
    std::vector<std::size_t> order(train.size());
    for (int epoch = 0; epoch < o.epochs; ++epoch) {
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), rng);
        // Engines take turns epoch by epoch (rotating who goes first), so load from
        // other processes on the machine falls on all of them alike.
        for (int j = 0; j < n; ++j) {
            const int k = (j + epoch) % n;
            if (!r[k]) continue;
            auto t0 = clock_type::now();
            for (std::size_t b = 0; b < batches; ++b) {
                for (std::size_t i = 0; i < c.batch; ++i) {
                    const std::size_t row = order[b * c.batch + i];
                    std::copy_n(train.x.data() + row * in, in, bx.data() + i * in);
                    by[i] = train.y[row];
                }
                r[k]->set_batch(bx.data(), by.data());
                loss[k] = r[k]->step();
            }
            seconds[k] += seconds_since(t0);
        }
    }
    for (int k = 0; k < n; ++k) {
        if (!r[k]) continue;
        const double acc = static_cast<double>(r[k]->correct(test.x.data(), test.y.data(), test.size())) / test.size();
        std::printf("| %s | %.2f s | %.4f | %.4f |\n", engine_names[engines[k]], seconds[k], acc, loss[k]);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--rounds") o.rounds = std::stoi(next());
        else if (a == "--block-ms") o.block_ms = std::stod(next());
        else if (a == "--case") o.only = next();
        else if (a == "--no-rss") o.rss = false;
        else if (a == "--fashion") o.fashion = true;
        else if (a == "--passes") o.passes = true;
        else if (a == "--epochs") o.epochs = std::stoi(next());
        else if (a == "--profile") o.profile_case = next();
        else if (a == "--breakdown") o.breakdown_case = next();
        else if (a == "--engine") o.profile_engine = next();
        else if (a == "--seconds") o.profile_seconds = std::stod(next());
        else if (a == "--rss-child") {
            o.rss_case = std::stoi(next());
            o.rss_engine = next();
            return run_child(o);
        } else {
            std::fprintf(stderr,
                         "usage: %s [--rounds N] [--block-ms M] [--case SUBSTR] [--no-rss]\n"
                         "       %s --fashion [--epochs N]\n"
                         "       %s --breakdown cnn/adam|cnn/sgd [--rounds N]\n"
                         "       %s --passes [--case SUBSTR] [--rounds N] [--block-ms M]\n"
                         "       %s --profile CASE --engine tapegrad|tapegrad-nn|handwritten|libtorch|handwritten-unfused "
                         "[--seconds S]\n",
                         argv[0], argv[0], argv[0], argv[0], argv[0]);
            return 2;
        }
    }
    if (!o.profile_case.empty()) return run_profile(o);
    if (o.fashion) return run_fashion(o);
    if (o.passes) return run_passes(o);
    if (!o.breakdown_case.empty()) return run_breakdown(o);

    // ------------------------------------------------------------- header
    char date[64];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    std::printf("tapegrad_compare, %s\n", date);
    std::printf("BLAS: %s\n", blas::info().c_str());
    std::string tinfo = torch_info();
    std::replace(tinfo.begin(), tinfo.end(), '\n', ' ');
    std::printf("LibTorch: %s\n", tinfo.c_str());
    std::printf("Threads: BLAS, LibTorch intra-op and tapegrad engine threads (set_engine_threads) set per case "
                "(1 unless the case says 2thr)\n");
    std::printf("GEMM ceiling (sgemm, median of 26): ");
    for (int t : {1, 2})
        std::printf("%d thr: 256^3 %.0f GFLOP/s, 64x784x256 NT %.0f GFLOP/s%s", t, gemm_gflops(256, 256, 256, false, t),
                    gemm_gflops(64, 256, 784, true, t), t == 1 ? "; " : "\n");
    std::printf("Timing: warm-up, then %d rounds; each round times a ~%.0f ms block of steps per engine, "
                "engines in rotating order; medians of the per-step times\n\n",
                o.rounds, o.block_ms);

    // ------------------------------------------------------------- cases
    auto cases = all_cases();
    struct row {
        std::string name;
        double t[n_engines] = {};
        double allocs[n_engines] = {-1, -1, -1, -1, -1, -1, -1};
        float first_loss[n_engines] = {};
        std::vector<float> probe[n_engines];  // parameters/gradients after the first step
        float third_loss[n_engines] = {};      // loss of step 3 (cases with probes)
        step_memory mem, engine_mem[n_engines];
        double per_op = 0;
        int index = 0;
        std::vector<double> paired[n_engines];  // per round: this engine's time over the hand-written one's
    };
    std::vector<row> rows;
    for (std::size_t ci = 0; ci < cases.size(); ++ci) {
        const auto& c = cases[ci];
        if (!o.only.empty() && c.name.find(o.only) == std::string::npos) continue;
        set_threads(c.threads);
        flush_denormals_scope ftz(c.ftz);
        row r;
        r.name = c.name;
        r.per_op = c.per_op;
        r.index = static_cast<int>(ci);
        std::unique_ptr<runner> eng[n_engines];
        std::vector<int> live;
        for (int e = 0; e < n_engines; ++e) {
            eng[e] = c.make(e);
            if (eng[e]) {
                live.push_back(e);
                r.first_loss[e] = eng[e]->step();  // same data and weights: these must agree
                r.probe[e] = eng[e]->probe();
                if (!r.probe[e].empty()) {  // two updates later the whole state still agrees
                    eng[e]->step();
                    r.third_loss[e] = eng[e]->step();
                }
            }
        }
        // warm-up, and steps per block from the warm-up speed
        std::size_t block[n_engines] = {1, 1, 1, 1, 1, 1, 1};
        for (int e : live) {
            auto t0 = clock_type::now();
            std::size_t n = 0;
            while (n < c.warmup_steps || seconds_since(t0) < 0.1) {
                eng[e]->step();
                ++n;
            }
            const double per = seconds_since(t0) / n;
            block[e] = std::max<std::size_t>(1, static_cast<std::size_t>(o.block_ms * 1e-3 / per));
        }
        // allocations per step in steady state
        for (int e : live) {
            const std::size_t before = allocation_count();
            for (int i = 0; i < 10; ++i) eng[e]->step();
            r.allocs[e] = (allocation_count() - before) / 10.0;
        }
        // one step per engine with the heap followed: its peak above the live bytes before the step
        for (int e : live) {
            heap_track_begin();
            r.engine_mem[e] = eng[e]->memory_step();
            r.engine_mem[e].heap_peak_bytes = static_cast<double>(heap_track_end());
        }
        r.mem = r.engine_mem[0];
        std::vector<double> times[n_engines];
        for (int round = 0; round < o.rounds; ++round)
            for (std::size_t k = 0; k < live.size(); ++k) {
                const int e = live[(k + round) % live.size()];
                auto t0 = clock_type::now();
                for (std::size_t i = 0; i < block[e]; ++i) eng[e]->step();
                times[e].push_back(seconds_since(t0) / block[e]);
                // With 2 threads, worker threads (OpenBLAS's, LibTorch's OpenMP) keep
                // spinning after a block and would steal the core from the next engine.
                if (c.threads > 1) std::this_thread::sleep_for(std::chrono::milliseconds(150));
            }
        for (int e : live) r.t[e] = median(times[e]) / (c.per_op > 0 ? c.per_op : 1);
        if (eng[2])
            for (int e : live)
                for (std::size_t k = 0; k < times[e].size(); ++k) r.paired[e].push_back(times[e][k] / times[2][k]);
        rows.push_back(r);
        std::fprintf(stderr, "done %s\n", c.name.c_str());
    }

    // ------------------------------------------------------------- table
    std::printf("Time per training step (opchain: per op), median:\n");
    bool any_wide = false;
    for (const auto& r : rows) any_wide = any_wide || r.t[5] > 0;
    std::printf("| case | tapegrad | tapegrad nn/optim | compiled | hand-written | LibTorch | tapegrad/hand "
                "| compiled/hand | compiled/LibTorch | tapegrad/LibTorch | hand, SGD unfused | tapegrad/unfused |%s\n",
                any_wide ? " hand, one gemm per batch | tapegrad/hand-wide |" : "");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|%s\n", any_wide ? "---:|---:|" : "");
    for (const auto& r : rows) {
        auto cell = [&](int e) { return r.t[e] > 0 ? fmt_time(r.t[e]) : std::string("-"); };
        std::printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", r.name.c_str(), cell(0).c_str(),
                    cell(1).c_str(), cell(6).c_str(), cell(2).c_str(), cell(3).c_str(),
                    fmt_ratio(r.t[0], r.t[2]).c_str(), fmt_ratio(r.t[6], r.t[2]).c_str(),
                    fmt_ratio(r.t[6], r.t[3]).c_str(), fmt_ratio(r.t[0], r.t[3]).c_str(), cell(4).c_str(),
                    fmt_ratio(r.t[0], r.t[4]).c_str());
        if (any_wide) std::printf(" %s | %s |", cell(5).c_str(), fmt_ratio(r.t[0], r.t[5]).c_str());
        std::printf("\n");
    }
    // The host's speed drifts between minutes, and one round runs every engine within about a
    // second: the ratio within each round cancels the drift, and its spread over the rounds is the noise.
    std::printf("\nRatios to hand-written within each round (a round runs every engine once), over the %d rounds: "
                "median, middle half, and rounds in which the engine was faster:\n",
                o.rounds);
    std::printf("| case | compiled/hand | middle half | compiled faster | tapegrad/hand | middle half | tapegrad "
                "faster |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (const auto& r : rows) {
        auto stats = [&](int e) {
            if (r.paired[e].empty()) return std::string("- | - | -");
            std::vector<double> v = r.paired[e];
            std::sort(v.begin(), v.end());
            const std::size_t n = v.size();
            const auto faster = std::count_if(v.begin(), v.end(), [](double x) { return x < 1; });
            char buf[96];
            std::snprintf(buf, sizeof buf, "%.3fx | %.3f-%.3fx | %td of %zu", median(v), v[n / 4], v[(3 * n) / 4], faster, n);
            return std::string(buf);
        };
        std::printf("| %s | %s | %s |\n", r.name.c_str(), stats(6).c_str(), stats(0).c_str());
    }

    std::printf("\nFirst-step loss (opchain: a value or gradient element) per engine, a correctness check:\n");
    for (const auto& r : rows) {
        bool agree = true;
        for (int e = 1; e < n_engines; ++e)
            if (r.t[e] > 0)
                agree = agree && std::fabs(r.first_loss[e] - r.first_loss[0]) <=
                                     1e-4f * std::max(1e-6f, std::fabs(r.first_loss[0]));
        std::printf("  %-20s tapegrad %.6g  nn %.6g  hand %.6g  torch %.6g  unfused %.6g  %s\n", r.name.c_str(),
                    r.first_loss[0], r.first_loss[1], r.first_loss[2], r.first_loss[3], r.first_loss[4],
                    agree ? "agree" : "MISMATCH");
    }

    bool any_probe = false;
    for (const auto& r : rows) any_probe = any_probe || !r.probe[0].empty();
    if (any_probe)
        std::printf("\nParameters (cnn) or gradients (conv) after the first step, largest relative difference "
                    "to tapegrad (agree: below 1e-4 of the value, or of the largest probed magnitude for "
                    "values near 0):\n");
    for (const auto& r : rows) {
        if (r.probe[0].empty()) continue;
        float scale = 0;
        for (float v : r.probe[0]) scale = std::max(scale, std::fabs(v));
        std::printf("  %-20s tapegrad", r.name.c_str());
        for (float v : r.probe[0]) std::printf(" %.7g", v);
        std::printf("\n");
        for (int e = 1; e < n_engines; ++e) {
            if (r.probe[e].size() != r.probe[0].size()) continue;
            double worst = 0;
            bool agree = true;
            for (std::size_t i = 0; i < r.probe[0].size(); ++i) {
                const double a = r.probe[0][i], b = r.probe[e][i], d = std::fabs(a - b);
                worst = std::max(worst, d / std::max(1e-30, std::fabs(a)));
                agree = agree && (d <= 1e-4 * std::fabs(a) || d <= 1e-5 * scale);
            }
            std::printf("  %-20s %-8s", "", engine_names[e]);
            for (float v : r.probe[e]) std::printf(" %.7g", v);
            std::printf("   max rel diff %.2g  %s\n", worst, agree ? "agree" : "MISMATCH");
        }
        std::printf("  %-20s loss at step 3:", "");
        bool agree3 = true;
        for (int e = 0; e < n_engines; ++e) {
            if (r.probe[e].size() != r.probe[0].size()) continue;
            std::printf(" %s %.6g", engine_names[e], r.third_loss[e]);
            agree3 = agree3 && std::fabs(r.third_loss[e] - r.third_loss[0]) <= 1e-4f * std::fabs(r.third_loss[0]);
        }
        std::printf("  %s\n", agree3 ? "agree" : "MISMATCH");
    }

    std::printf("\nWorkspace per step (steady state): tapegrad's tape (values + gradients + arena, "
                "tape.stats() after backward; custom-op saved state not counted), the hand-written "
                "engine's preallocated buffers (parameters, gradients and optimizer state included), and "
                "for every engine the peak heap bytes live during one step above those live before it:\n");
    std::printf("| case | tapegrad tape MB | hand-written buffers MB | heap peak in step MB: tapegrad / hand / "
                "LibTorch |\n|---|---:|---:|---:|\n");
    for (const auto& r : rows) {
        auto mb = [](double b) {
            char buf[32];
            if (b < 0) return std::string("-");
            std::snprintf(buf, sizeof buf, "%.2f", b / (1024.0 * 1024.0));
            return std::string(buf);
        };
        auto peak = [&](int e) { return r.t[e] > 0 ? mb(r.engine_mem[e].heap_peak_bytes) : std::string("-"); };
        std::printf("| %s | %s | %s | %s / %s / %s |\n", r.name.c_str(), mb(static_cast<double>(r.mem.tape_bytes)).c_str(),
                    mb(r.engine_mem[2].buffer_bytes).c_str(), peak(0).c_str(), peak(2).c_str(), peak(3).c_str());
    }

    std::printf("\nMemory per step (steady state):\n");
    std::printf("| case | tape nodes | tape bytes | allocs tapegrad | allocs nn/optim | allocs compiled | allocs hand | "
                "allocs LibTorch |%s\n", o.rss ? " peak RSS above idle, MB: tapegrad / hand / LibTorch |" : "");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|%s\n", o.rss ? "---:|" : "");
    double base_rss = o.rss ? child_rss_mb("/proc/self/exe", -1, "none") : 0;
    for (const auto& r : rows) {
        auto a = [&](int e) {
            char buf[32];
            if (r.allocs[e] < 0) return std::string("-");
            std::snprintf(buf, sizeof buf, "%.1f", r.allocs[e]);
            return std::string(buf);
        };
        std::string rss;
        if (o.rss) {
            char buf[96];
            double m[3];
            const int es[3] = {0, 2, 3};
            for (int k = 0; k < 3; ++k) m[k] = (r.t[es[k]] > 0) ? child_rss_mb("/proc/self/exe", r.index, engine_names[es[k]]) : -1;
            for (double& v : m) v = v < 0 ? -1 : v - base_rss;
            std::snprintf(buf, sizeof buf, " %.1f / %.1f / %.1f |", m[0], m[1], m[2]);
            rss = buf;
        }
        std::printf("| %s | %zu | %zu | %s | %s | %s | %s | %s |%s\n", r.name.c_str(), r.mem.tape_nodes,
                    r.mem.tape_bytes, a(0).c_str(), a(1).c_str(), a(6).c_str(), a(2).c_str(), a(3).c_str(), rss.c_str());
    }
    if (o.rss)
        std::printf("(peak RSS of a child process running 50 steps of one engine, minus that of the same process "
                    "doing nothing: %.0f MB, mostly LibTorch's shared libraries)\n", base_rss);
    return 0;
}
