// Compiled steps (autograd/compile.hpp): replay equals eager bit for bit with the
// passes off, and with the elementwise and bias passes on; fused SGD within a few
// ulp; re-tracing on a new signature; the guard; optimizer state after N compiled
// steps; eager fall-back and the check mode naming the first op that differs; a
// failing kernel leaving the parameters as they were; gradcheck through a compiled function.

#include <cmath>
#include <functional>
#include <random>

#include <doctest/doctest.h>

#include "autograd/compile.hpp"
#include "autograd/gradcheck.hpp"
#include "nn/layers.hpp"
#include "optim/optimizer.hpp"
#include "optim/schedulers.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using testing::uniform;

namespace {

template <class T> xt::xarray<T> random(const shape_t& shape, unsigned seed) {
    return xt::cast<T>(uniform(shape, -1, 1, seed));
}

std::vector<std::size_t> labels_for(std::size_t n, std::size_t classes, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<std::size_t> y(n);
    for (auto& v : y) v = rng() % classes;
    return y;
}

enum class opt_kind { sgd, sgd_momentum, adam };

/// A model, its optimizer and a step function; two of them from one seed start equal.
template <class T> struct trainee {
    std::shared_ptr<nn::sequential<T>> net;
    std::unique_ptr<optim::optimizer<T>> opt;
    trainee(const std::vector<std::size_t>& sizes, nn::activation act, opt_kind k) {
        std::mt19937_64 rng(7);
        net = nn::mlp<T>(sizes, act, rng);
        if (k == opt_kind::adam) {
            optim::adam_options o;
            o.lr = 0.01;
            o.weight_decay = 0.01;
            opt = std::make_unique<optim::adam<T>>(net->parameters(), o);
        } else {
            optim::sgd_options o;
            o.lr = 0.1;
            o.weight_decay = 0.001;
            if (k == opt_kind::sgd_momentum) o.momentum = 0.9, o.nesterov = true;
            opt = std::make_unique<optim::sgd<T>>(net->parameters(), o);
        }
    }
    tensor<T> step(const tensor<T>& x, const std::vector<std::size_t>& y) {
        opt->zero_grad();
        tensor<T> loss = cross_entropy(net->forward(x), y);
        loss.backward();
        opt->step();
        return loss;
    }
};

/// Largest |a - b| / (1 + |b|) over the parameters of two nets.
template <class T> double param_gap(nn::sequential<T>& a, nn::sequential<T>& b) {
    double gap = 0;
    auto pa = a.parameters(), pb = b.parameters();
    for (std::size_t i = 0; i < pa.size(); ++i)
        for (std::size_t k = 0; k < pa[i].size(); ++k) {
            const double u = pa[i].value().data()[k], v = pb[i].value().data()[k];
            gap = std::max(gap, std::abs(u - v) / (1 + std::abs(v)));
        }
    return gap;
}

compile_options passes(bool on) {
    compile_options o;
    o.fuse_elementwise = o.fuse_bias_activation = o.fuse_sgd = o.fuse_backward_elementwise = on;
    return o;
}

/// N eager steps against N compiled ones on the same batches; returns the largest
/// parameter gap seen and checks the losses match as closely.
template <class T>
double eager_vs_compiled(const std::vector<std::size_t>& sizes, nn::activation act, opt_kind k, compile_options co,
                         int steps, std::size_t batch = 8) {
    trainee<T> eager(sizes, act, k), comp(sizes, act, k);
    auto step = compile([&](const tensor<T>& x, const std::vector<std::size_t>& y) { return comp.step(x, y); }, co);
    double gap = 0;
    for (int s = 0; s < steps; ++s) {
        tensor<T> x(random<T>({batch, sizes.front()}, 100 + s));
        const auto y = labels_for(batch, sizes.back(), 200 + s);
        const T le = eager.step(x, y).item();
        reset_tape<T>();
        const T lc = step(x, y).item();
        gap = std::max(gap, std::abs(double(le) - double(lc)) / (1 + std::abs(double(le))));
        gap = std::max(gap, param_gap(*comp.net, *eager.net));
    }
    const compile_stats st = step.stats();
    CHECK(st.traces == 1);
    CHECK(st.replays == std::size_t(steps - 1));
    CHECK(st.eager_reason == "");
    return gap;
}

}  // namespace

TEST_CASE("compile: replay equals eager bit for bit with the passes off, for every optimizer and activation") {
    for (auto k : {opt_kind::sgd, opt_kind::sgd_momentum, opt_kind::adam})
        for (auto act : {nn::activation::relu, nn::activation::tanh, nn::activation::sigmoid}) {
            CAPTURE(int(k));
            CHECK(eager_vs_compiled<float>({12, 16, 9, 4}, act, k, passes(false), 6) == 0.0);
            CHECK(eager_vs_compiled<double>({5, 7, 3}, act, k, passes(false), 4) == 0.0);
        }
}

TEST_CASE("compile: the elementwise and bias passes are bit-identical; fused SGD stays within a few ulp") {
    compile_options no_sgd = passes(true);
    no_sgd.fuse_sgd = false;
    for (auto k : {opt_kind::sgd, opt_kind::adam}) {
        CHECK(eager_vs_compiled<float>({20, 64, 33, 5}, nn::activation::relu, k, no_sgd, 6, 40) == 0.0);
        CHECK(eager_vs_compiled<double>({20, 64, 5}, nn::activation::tanh, k, no_sgd, 4, 40) == 0.0);
    }
    // rows of 9 cut by the fused loop's 2048-element blocks inside a SIMD batch (2048 = 227 * 9 + 5)
    CHECK(eager_vs_compiled<float>({6, 9, 3}, nn::activation::relu, opt_kind::adam, no_sgd, 3, 300) == 0.0);
    CHECK(eager_vs_compiled<double>({6, 9, 3}, nn::activation::relu, opt_kind::adam, no_sgd, 3, 300) == 0.0);
    // w = (1 - lr wd) w - lr g in the gemm against w - lr (g + wd w): rounding only
    const double f = eager_vs_compiled<float>({20, 64, 33, 5}, nn::activation::relu, opt_kind::sgd, passes(true), 8, 40);
    const double d = eager_vs_compiled<double>({20, 64, 5}, nn::activation::relu, opt_kind::sgd, passes(true), 8, 40);
    CHECK(f <= 1e-5);
    CHECK(d <= 1e-13);
    MESSAGE("fused SGD, largest relative gap after 8 steps: float " << f << ", double " << d);
}

TEST_CASE("compile: the passes are applied where they can be, and each switch turns its pass off") {
    trainee<float> t({20, 64, 33, 5}, nn::activation::relu, opt_kind::sgd);
    auto step = compile([&](const tensor<float>& x, const std::vector<std::size_t>& y) { return t.step(x, y); });
    tensor<float> x(random<float>({40, 20}, 1));
    const auto y = labels_for(40, 5, 2);
    step(x, y);
    compile_stats s = step.stats();
    CHECK(s.fused_bias_activation == 2);  // the two hidden layers: matmul, then bias + relu in one pass
    CHECK(s.fused_sgd_weights == 3);      // every weight is read by one matmul
    step(x, y);
    CHECK(step.stats().replays == 1);
    // the reverse pass as a plan: cross_entropy, then matmul, bias add and relu per layer;
    // each matmul takes its bias add's gradient buffer
    CHECK(step.stats().planned_backward_nodes == 9);
    CHECK(step.stats().aliased_bias_grads == 3);

    trainee<float> u({20, 64, 33, 5}, nn::activation::relu, opt_kind::sgd);
    auto off = compile([&](const tensor<float>& x, const std::vector<std::size_t>& y) { return u.step(x, y); },
                       passes(false));
    off(x, y);
    s = off.stats();
    CHECK(s.fused_bias_activation == 0);
    CHECK(s.fused_loops == 0);
    CHECK(s.fused_sgd_weights == 0);

    // an elementwise chain: three ops of one size run as one loop
    tensor<double> w(random<double>({300}, 3), true);
    optim::adam<double> opt({w});
    auto chain = compile([&](const tensor<double>& v) {
        opt.zero_grad();
        tensor<double> l = sum(tanh(exp(mul_scalar(w * v, 0.5))));
        l.backward();
        opt.step();
        return l;
    });
    tensor<double> v(random<double>({300}, 4));
    chain(v);
    CHECK(chain.stats().fused_loops == 1);
    CHECK(chain.stats().kernels == 5);
}

TEST_CASE("compile: optimizer state after N compiled steps equals N eager steps, and survives save and load") {
    trainee<double> eager({6, 10, 4}, nn::activation::tanh, opt_kind::adam), comp({6, 10, 4}, nn::activation::tanh,
                                                                                 opt_kind::adam);
    optim::step_lr<double> sched_e(*eager.opt, 2, 0.5), sched_c(*comp.opt, 2, 0.5);
    auto step = compile([&](const tensor<double>& x, const std::vector<std::size_t>& y) {
        tensor<double> l = comp.step(x, y);
        sched_c.step();  // a schedule inside the step is replayed too
        return l;
    });
    for (int s = 0; s < 5; ++s) {
        tensor<double> x(random<double>({3, 6}, 10 + s));
        const auto y = labels_for(3, 4, 20 + s);
        eager.step(x, y);
        sched_e.step();
        reset_tape<double>();
        step(x, y);
    }
    CHECK(comp.opt->lr() == eager.opt->lr());
    for (std::size_t i = 0; i < eager.opt->params().size(); ++i) {
        CHECK(comp.opt->steps(i) == eager.opt->steps(i));
        auto se = eager.opt->state(i), sc = comp.opt->state(i);
        REQUIRE(se.size() == sc.size());
        for (std::size_t b = 0; b < se.size(); ++b) CHECK(*se[b].second == *sc[b].second);
    }
    // the state lives in the optimizer: a saved and reloaded one continues the compiled run
    const std::string path = "test_compile_state.npz";
    comp.opt->save_state(path);
    trainee<double> resumed({6, 10, 4}, nn::activation::tanh, opt_kind::adam);
    auto pr = resumed.net->parameters(), pc = comp.net->parameters();
    for (std::size_t i = 0; i < pr.size(); ++i) pr[i].mutable_value() = pc[i].value();
    resumed.opt->load_state(path);
    std::remove(path.c_str());
    tensor<double> x(random<double>({3, 6}, 99));
    const auto y = labels_for(3, 4, 98);
    step(x, y);
    resumed.step(x, y);
    reset_tape<double>();
    CHECK(param_gap(*comp.net, *resumed.net) == 0.0);

    // fused SGD still counts every step
    trainee<float> s({6, 10, 4}, nn::activation::relu, opt_kind::sgd);
    auto sstep = compile([&](const tensor<float>& x, const std::vector<std::size_t>& y) { return s.step(x, y); });
    tensor<float> xf(random<float>({3, 6}, 5));
    for (int k = 0; k < 4; ++k) sstep(xf, y);
    REQUIRE(sstep.stats().fused_sgd_weights == 2);
    for (std::size_t i = 0; i < s.opt->params().size(); ++i) CHECK(s.opt->steps(i) == 4);
}

TEST_CASE("compile: a new signature traces again and keeps both programs; the guard sees shapes and requires_grad") {
    trainee<float> t({4, 8, 3}, nn::activation::relu, opt_kind::adam), e({4, 8, 3}, nn::activation::relu, opt_kind::adam);
    auto step = compile([&](const tensor<float>& x, const std::vector<std::size_t>& y) { return t.step(x, y); },
                        passes(false));
    auto batch = [](std::size_t n, unsigned s) { return tensor<float>(random<float>({n, 4}, s)); };
    const std::size_t sizes[] = {5, 5, 2, 5, 2, 5};  // a last partial batch, then the full size again
    for (std::size_t i = 0; i < 6; ++i) {
        tensor<float> x = batch(sizes[i], 30 + i);
        const auto y = labels_for(sizes[i], 3, 40 + i);
        const float le = e.step(x, y).item();
        reset_tape<float>();
        CHECK(step(x, y).item() == le);
    }
    CHECK(param_gap(*t.net, *e.net) == 0.0);
    compile_stats s = step.stats();
    CHECK(s.programs == 2);
    CHECK(s.traces == 2);
    CHECK(s.replays == 4);
    // requires_grad on an argument is part of the signature
    tensor<float> xg(random<float>({5, 4}, 1), true);
    step(xg, labels_for(5, 3, 2));
    CHECK(step.stats().programs == 3);
    CHECK(xg.has_grad());
}

TEST_CASE("compile: results are the program's buffers, valid until the next call") {
    tensor<double> w(random<double>({3, 3}, 1), true);
    auto f = compile([&](const tensor<double>& x) { return sum(tanh(matmul(x, w))); });
    tensor<double> x(random<double>({2, 3}, 2));
    tensor<double> first = f(x);
    const double v = first.item();
    tensor<double> second = f(x);
    CHECK(second.item() == v);
    CHECK_THROWS_AS(first.item(), std::logic_error);  // stale: the replay rewrote its buffer
    CHECK_THROWS_WITH_AS(f(tensor<double>(random<double>({2, 3}, 3)) * 2.0 + tensor<double>::zeros({2, 3}, true)),
                         doctest::Contains("pass leaves"), std::invalid_argument);
}

TEST_CASE("compile: a result outlives its temporary arguments until the next call, then the step lets them go") {
    tensor<double> w(random<double>({3, 3}, 1), true);
    auto f = compile([&](const tensor<double>& x) { return sum(tanh(matmul(x, w))); });
    std::weak_ptr<node<double>> seen;
    for (int call = 0; call < 3; ++call) {  // the trace, then replays
        tensor<double> out;
        {
            tensor<double> x(random<double>({2, 3}, 5 + call), true);  // dies before the backward below
            seen = x.owner();
            out = f(x);
        }
        CHECK_FALSE(seen.expired());  // the program's inputs read it: held until the next call
        w.zero_grad();
        out.backward();  // reads the argument's value (ASan: no use after free)
        CHECK(w.has_grad());
    }
    f(tensor<double>(random<double>({2, 3}, 9), true));
    CHECK(seen.expired());  // the next call's arguments replaced it
}

TEST_CASE("compile: gradcheck works on a compiled function; second order is refused clearly") {
    auto g = compile([](const tensor<double>& a, const tensor<double>& b) {
        return sum(log_softmax(sigmoid(matmul(a, b) + a), 1) * tanh(b));
    });
    const std::vector<xt::xarray<double>> in = {random<double>({3, 3}, 5), random<double>({3, 3}, 6)};
    const gradcheck_fn fg = [&](const std::vector<tensor<double>>& v) { return g(v[0], v[1]); };
    const gradcheck_report r = gradcheck(fg, in);
    CHECK(r.passed());
    CHECK(g.stats().replays > 0);  // the numerical differences replayed the program
    tensor<double> a(in[0], true), b(in[1], true);
    CHECK_THROWS_WITH_AS(tape<double>::current().gradient(g(a, b), {a}, gradient_options{true}),
                         doctest::Contains("second derivatives of the eager function"), std::logic_error);
}

TEST_CASE("compile: what a replay cannot repeat runs eagerly, and says why") {
    tensor<double> w(random<double>({4}, 1), true);
    auto manual = compile([&](const tensor<double>& x) {
        tensor<double> l = sum(w * x);
        l.backward();
        w.mutable_value() -= 0.1 * w.grad();  // C++ the replay cannot see
        w.zero_grad();
        return l;
    });
    tensor<double> x(random<double>({4}, 2));
    const xt::xarray<double> w0 = w.value();
    manual(x);
    manual(x);
    CHECK(manual.stats().replays == 0);
    CHECK(manual.stats().eager_reason.find("mutable_value") != std::string::npos);
    CHECK(xt::allclose(w.value(), w0 - 0.2 * x.value()));  // both steps taken

    // the same write wrapped in replayed() is repeated by every replay
    tensor<double> v(w0, true);
    auto wrapped = compile([&](const tensor<double>& x) {
        tensor<double> l = sum(v * x);
        l.backward();
        replayed<double>([&] {
            v.mutable_value() -= 0.1 * v.grad();
            v.zero_grad();
        });
        return l;
    });
    for (int i = 0; i < 3; ++i) wrapped(x);
    CHECK(wrapped.stats().replays == 2);
    CHECK(xt::allclose(v.value(), w0 - 0.3 * x.value()));

    // labels that are not an argument would be frozen at the trace: eager instead
    std::vector<std::size_t> outside = {1, 0};
    tensor<double> m(random<double>({3, 2}, 4), true);
    auto frozen = compile([&](const tensor<double>& x) { return cross_entropy(matmul(x, m), outside); });
    frozen(tensor<double>(random<double>({2, 3}, 5)));
    CHECK(frozen.stats().eager_reason.find("labels") != std::string::npos);
}

TEST_CASE("compile: the check mode names the first op whose replay differs from eager") {
    tensor<double> w(random<double>({4}, 1), true);
    std::mt19937 rng(3);
    compile_options o;
    o.check = true;
    auto f = compile([&](const tensor<double>& x) {
        w.zero_grad();  // an event before the forward that no value depends on
        xt::xarray<double> mask = xt::zeros<double>({4});
        mask(rng() % 4) = 1;  // drawn in C++: frozen into the program at the trace
        return sum(tanh(w * x) * tensor<double>(mask));
    }, o);
    tensor<double> x(random<double>({4}, 2));
    f(x);  // the trace
    bool caught = false;
    for (int i = 0; i < 20 && !caught; ++i) {
        try {
            f(x);
        } catch (const std::logic_error& e) {
            caught = true;
            CHECK(std::string(e.what()).find("op 2 'mul'") != std::string::npos);
        }
    }
    CHECK(caught);
}

TEST_CASE("compile: a kernel that fails in replay leaves parameters and optimizer state unchanged") {
    trainee<double> t({4, 6, 3}, nn::activation::relu, opt_kind::adam);
    auto step = compile([&](const tensor<double>& x, const std::vector<std::size_t>& y) { return t.step(x, y); });
    tensor<double> x(random<double>({2, 4}, 1));
    step(x, {0, 2});
    step(x, {1, 2});
    std::vector<xt::xarray<double>> before;
    for (auto& p : t.net->parameters()) before.push_back(p.value());
    const std::int64_t steps = t.opt->steps(0);
    CHECK_THROWS_WITH_AS(step(x, {1, 7}), doctest::Contains("label 7 at row 1"), std::out_of_range);
    auto after = t.net->parameters();
    for (std::size_t i = 0; i < before.size(); ++i) CHECK(after[i].value() == before[i]);
    CHECK(t.opt->steps(0) == steps);
    CHECK(step(x, {1, 1}).item() > 0);  // and the step works on
}

TEST_CASE("compile: fused SGD leaves a hooked weight, and one with a gradient, to the optimizer") {
    const xt::xarray<double> x0 = random<double>({2, 3}, 1), w0 = random<double>({3, 4}, 2), v0 = random<double>({3, 4}, 3);
    tensor<double> w(w0, true), v(v0, true);
    optim::sgd_options o;
    o.lr = 0.1;
    optim::sgd<double> opt({w, v}, o);
    w.register_hook([](const tensor<double>& g) { return mul_scalar(g, 0.5); });
    auto step = compile([&](const tensor<double>& x) {
        opt.zero_grad();
        tensor<double> l = sum(matmul(x, w)) + sum(matmul(x, v));
        l.backward();
        opt.step();
        return l;
    });
    tensor<double> x(x0);
    xt::xarray<double> gx = xt::zeros<double>({3, 4});  // d sum(x w) / dw = x^T 1
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 4; ++j) gx(i, j) = x0(0, i) + x0(1, i);
    step(x);  // the trace: eager
    step(x);  // a replay: v fused, w (hooked) through the optimizer
    CHECK(step.stats().fused_sgd_weights == 2);
    CHECK(xt::allclose(w.value(), w0 - 2 * 0.1 * 0.5 * gx, 1e-14, 1e-14));
    CHECK(xt::allclose(v.value(), v0 - 2 * 0.1 * gx, 1e-14, 1e-14));
    CHECK_FALSE(v.has_grad());
    CHECK(opt.steps(0) == 2);
    CHECK(opt.steps(1) == 2);
}

TEST_CASE("compile: a step called from its own function is refused, and works on after") {
    tensor<double> w(random<double>({3}, 1), true);
    std::function<tensor<double>(const tensor<double>&)> inner;
    auto f = compile([&](const tensor<double>& x) {
        if (inner) inner(x);
        return sum(w * x);
    });
    inner = [&](const tensor<double>& x) { return f(x); };
    tensor<double> x(random<double>({3}, 2));
    CHECK_THROWS_WITH_AS(f(x), doctest::Contains("one thread at a time"), std::logic_error);
    inner = nullptr;
    CHECK(f(x).item() == doctest::Approx(xt::sum(w.value() * x.value())()));
}


namespace {
/// The article's network, softmax(W2 tanh(W1 x + b1) + b2) trained with MSE: every op of
/// its reverse pass has a backward kernel, so a compiled step runs that pass as a plan.
template <class T> struct article_net {
    trainee<T> t;
    explicit article_net(opt_kind k) : t({4, 16, 3}, nn::activation::tanh, k) {}
    tensor<T> step(const tensor<T>& x, const tensor<T>& onehot) {
        t.opt->zero_grad();
        tensor<T> loss = mse(softmax(t.net->forward(x), -1), onehot);
        loss.backward();
        t.opt->step();
        return loss;
    }
};

/// Parameters of two nets equal bit for bit.
template <class T> bool same_params(nn::sequential<T>& a, nn::sequential<T>& b) {
    auto pa = a.parameters(), pb = b.parameters();
    for (std::size_t i = 0; i < pa.size(); ++i)
        if (!(pa[i].value() == pb[i].value())) return false;
    return true;
}
}  // namespace

TEST_CASE("compile: the planned reverse pass equals eager and the tape's loop bit for bit, and steps aside when it must") {
    using T = float;
    for (auto k : {opt_kind::sgd, opt_kind::sgd_momentum, opt_kind::adam})
        for (bool fuse : {false, true})
            for (std::size_t batch : {std::size_t(1), std::size_t(7)}) {
                CAPTURE(int(k));
                CAPTURE(fuse);
                CAPTURE(batch);
                compile_options planned = passes(fuse), looped = passes(fuse);
                looped.plan_backward = false;
                article_net<T> eager(k), a(k), b(k);
                auto step_a = compile([&](const tensor<T>& x, const tensor<T>& y) { return a.step(x, y); }, planned);
                auto step_b = compile([&](const tensor<T>& x, const tensor<T>& y) { return b.step(x, y); }, looped);
                for (int s = 0; s < 9; ++s) {
                    // a frozen bias, then a hooked weight: not as planned, so those calls take the tape's loop
                    if (s == 3 || s == 5)
                        for (auto* n : {&eager, &a, &b}) n->t.net->parameters()[1].set_requires_grad(s == 5);
                    if (s == 7)
                        for (auto* n : {&eager, &a, &b})
                            n->t.net->parameters()[2].register_hook([](const tensor<T>& g) { return mul_scalar(g, T(0.5)); });
                    tensor<T> x(random<T>({batch, 4}, 300 + s));
                    xt::xarray<T> onehot = xt::zeros<T>({batch, std::size_t(3)});
                    const auto labels = labels_for(batch, 3, 400 + s);
                    for (std::size_t r = 0; r < batch; ++r) onehot(r, labels[r]) = T(1);
                    tensor<T> y(onehot);
                    const T le = eager.step(x, y).item();
                    reset_tape<T>();
                    const T la = step_a(x, y).item(), lb = step_b(x, y).item();
                    CHECK(la == lb);
                    CHECK(same_params(*a.t.net, *b.t.net));  // plan or loop: one set of kernels
                    if (!fuse) {  // and without the SGD fusion, eager's bits
                        CHECK(la == le);
                        CHECK(same_params(*a.t.net, *eager.t.net));
                    }
                    if (s == 0) CHECK(step_a.stats().planned_backward_nodes == 0);  // made at the first replay
                    if (s == 1) CHECK(step_a.stats().planned_backward_nodes == 7);  // mse, softmax, add, matmul, tanh, add, matmul
                    if (s == 1) CHECK(step_a.stats().aliased_bias_grads == 2);  // both matmuls take their add's gradient
                }
                CHECK(step_b.stats().planned_backward_nodes == 0);
                CHECK(step_a.stats().replays == 8);
            }
}

TEST_CASE("compile: a planned pass adds into a node read three times, negates sub's bias, and takes a seed") {
    using T = double;
    tensor<T> w(random<T>({3, 4}, 11), true), b(random<T>({4}, 12), true);
    const xt::xarray<T> seed = random<T>({5, 4}, 13);
    auto fn = [&](const tensor<T>& x) {
        w.zero_grad();
        b.zero_grad();
        tensor<T> h = tanh(matmul(x, w) - b);  // sub of a bias row
        tensor<T> y = h * h + h;               // h's gradient: three contributions
        y.backward(seed);
        return y;
    };
    compile_options looped, unfused;
    looped.plan_backward = false;
    unfused.fuse_backward_elementwise = false;
    auto planned_step = compile(fn), unfused_step = compile(fn, unfused), looped_step = compile(fn, looped);
    for (int s = 0; s < 3; ++s) {
        tensor<T> x(random<T>({5, 3}, 20 + s));
        fn(x);
        reset_tape<T>();
        const xt::xarray<T> gw = w.grad(), gb = b.grad();
        for (auto* step : {&planned_step, &unfused_step, &looped_step}) {
            (*step)(x);
            CHECK(w.grad() == gw);
            CHECK(b.grad() == gb);
        }
    }
    // with the reverse-pass fusion, add, mul and tanh are one fused run: one step of the plan
    CHECK(planned_step.stats().fused_backward_loops == 1);
    CHECK(planned_step.stats().planned_backward_nodes == 2);  // sub, matmul
    CHECK(unfused_step.stats().planned_backward_nodes == 5);  // add, mul, tanh, sub, matmul
    CHECK(looped_step.stats().planned_backward_nodes == 0);
    CHECK(planned_step.stats().aliased_bias_grads == 1);  // sub's a, the matmul, takes sub's gradient buffer
    // the values themselves: d/dh (h^2 + h) = 2h + 1, through tanh and the bias's minus sign
    tensor<T> x(random<T>({5, 3}, 30));
    planned_step(x);
    xt::xarray<T> z = xt::zeros<T>({5, 4}), gw = xt::zeros<T>({3, 4}), gb = xt::zeros<T>({4});
    for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t j = 0; j < 4; ++j) {
            for (std::size_t k = 0; k < 3; ++k) z(i, j) += x.value()(i, k) * w.value()(k, j);
            const T h = std::tanh(z(i, j) - b.value()(j));
            const T dz = seed(i, j) * (2 * h + 1) * (1 - h * h);
            gb(j) -= dz;
            for (std::size_t k = 0; k < 3; ++k) gw(k, j) += x.value()(i, k) * dz;
        }
    CHECK(xt::allclose(b.grad(), gb));
    CHECK(xt::allclose(w.grad(), gw));
}

TEST_CASE("compile: the plan checks each call's arguments, temporaries and a hooked one included") {
    using T = double;
    tensor<T> w(random<T>({3, 4}, 71), true), b(random<T>({4}, 72), true);
    auto fn = [&](const tensor<T>& x) {
        w.zero_grad();
        b.zero_grad();
        tensor<T> loss = sum(tanh(matmul(x, w) + b));
        loss.backward();
        return loss;
    };
    auto step = compile(fn);
    auto grad_of_x = [&](bool hooked, int seed, bool compiled) {
        tensor<T> x(random<T>({5, 3}, seed), true);
        if (hooked) x.register_hook([](const tensor<T>& g) { return mul_scalar(g, T(3)); });
        if (compiled) step(x);
        else fn(x), reset_tape<T>();
        return xt::xarray<T>(x.grad());
    };
    for (int s = 0; s < 5; ++s) {
        CAPTURE(s);
        const bool hooked = s == 3;  // a call whose argument has a hook: the tape's loop runs it
        const xt::xarray<T> eager = grad_of_x(hooked, 80 + s, false);
        CHECK(grad_of_x(hooked, 80 + s, true) == eager);  // each call's x a new tensor, gone after the call
    }
    CHECK(step.stats().planned_backward_nodes > 0);
}

TEST_CASE("compile: a matmul takes its bias add's gradient buffer only when the add is its one reader") {
    using T = double;
    tensor<T> w(random<T>({3, 4}, 41), true), b(random<T>({4}, 42), true);
    auto fn = [&](const tensor<T>& x, bool twice) {
        w.zero_grad();
        b.zero_grad();
        tensor<T> z = matmul(x, w);
        tensor<T> h = tanh(b + z);  // the bias first: the full operand is the add's b
        tensor<T> loss = sum(twice ? h * z : h * h);  // twice: z has a second reader
        loss.backward();
        return loss;
    };
    compile_options no_alias;
    no_alias.alias_bias_grad = false;
    for (bool twice : {false, true}) {
        CAPTURE(twice);
        auto f = [&, twice](const tensor<T>& x) { return fn(x, twice); };
        auto aliased = compile(f), copied = compile(f, no_alias);
        for (int s = 0; s < 4; ++s) {
            tensor<T> x(random<T>({5, 3}, 50 + s));
            const T le = f(x).item();
            reset_tape<T>();
            const xt::xarray<T> gw = w.grad(), gb = b.grad();
            for (auto* step : {&aliased, &copied}) {
                CHECK((*step)(x).item() == le);
                CHECK(w.grad() == gw);  // the buffers trade places: the same bits
                CHECK(b.grad() == gb);
            }
        }
        CHECK(aliased.stats().planned_backward_nodes > 0);
        CHECK(aliased.stats().aliased_bias_grads == (twice ? 0u : 1u));
        CHECK(copied.stats().aliased_bias_grads == 0);
    }
    compile_options checked;
    checked.check = true;  // the check compares ops' gradients: it keeps the copy
    auto step = compile([&](const tensor<T>& x) { return fn(x, false); }, checked);
    for (int s = 0; s < 3; ++s) step(tensor<T>(random<T>({5, 3}, 60 + s)));
    CHECK(step.stats().aliased_bias_grads == 0);
}

TEST_CASE("compile: hooks and retain_grad on a step's results act on every replay as on every eager step") {
    tensor<double> w(random<double>({3}, 1), true);
    int hook_calls = 0;
    auto f = compile([&](const tensor<double>& x) {
        w.zero_grad();
        tensor<double> h = tanh(w * x);
        h.retain_grad();
        h.register_hook([&](const tensor<double>& g) {
            ++hook_calls;
            return mul_scalar(g, 2.0);
        });
        sum(h).backward();
        return h;
    });
    tensor<double> x(random<double>({3}, 2));
    for (int i = 0; i < 3; ++i) {
        tensor<double> h = f(x);
        CHECK(hook_calls == i + 1);
        CHECK(h.grad() == 2.0 * xt::ones<double>({3}));  // the hooked gradient, once per call, not summed over calls
        CHECK(xt::allclose(w.grad(), 2.0 * x.value() * (1.0 - xt::square(xt::tanh(w.value() * x.value())))));
    }
    CHECK(f.stats().replays == 2);
}
