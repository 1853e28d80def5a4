// SGD applied inside backward() (set_fused_sgd, optim::sgd's fused_backward)
// against the same SGD applied in step(): equal weights after several steps, and
// the fall-back to .grad() wherever the fused step could read a changed weight.

#include <functional>
#include <random>

#include <doctest/doctest.h>

#include "nn/layers.hpp"
#include "optim/optimizer.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using testing::uniform;

namespace {

template <class T> xt::xarray<T> random(const shape_t& shape, unsigned seed) {
    return xt::cast<T>(uniform(shape, -1, 1, seed));
}

/// a b for 2-D arrays, written out (the reference the tests compare against).
xt::xarray<double> mm(const xt::xarray<double>& a, const xt::xarray<double>& b) {
    const std::size_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
    xt::xarray<double> c = xt::zeros<double>({m, n});
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j)
            for (std::size_t l = 0; l < k; ++l) c(i, j) += a(i, l) * b(l, j);
    return c;
}

xt::xarray<double> tr(const xt::xarray<double>& a) { return xt::transpose(a); }

template <class T> using loss_fn = std::function<tensor<T>(const std::vector<tensor<T>>&)>;

/// What a run of SGD left: final parameter values, and per step the number of
/// parameters backward() stepped itself (they have no .grad() before step()).
template <class T> struct run_result {
    std::vector<xt::xarray<T>> params;
    std::vector<int> fused;
};

/// `steps` SGD steps from `init`: zero_grad, backward, step, reset_tape, as a
/// training loop does; lr is multiplied by 0.7 after each step (as a scheduler does).
template <class T>
run_result<T> train(const std::vector<xt::xarray<T>>& init, optim::sgd_options o, int steps, const loss_fn<T>& loss) {
    std::vector<tensor<T>> p;
    for (const auto& v : init) p.emplace_back(v, true);
    optim::sgd<T> opt(p, o);
    run_result<T> r;
    for (int s = 0; s < steps; ++s) {
        opt.zero_grad();
        loss(p).backward();
        int fused = 0;
        for (const auto& t : p) fused += !t.has_grad();
        r.fused.push_back(fused);
        opt.step();
        opt.set_lr(opt.lr() * 0.7);
        reset_tape<T>();
    }
    for (std::size_t i = 0; i < p.size(); ++i) {
        CHECK(opt.steps(i) == steps);
        r.params.push_back(p[i].value());
    }
    return r;
}

template <class T> void expect_close(const std::vector<xt::xarray<T>>& a, const std::vector<xt::xarray<T>>& b, double tol) {
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        INFO("parameter " << i);
        REQUIRE(a[i].shape() == b[i].shape());
        CHECK(xt::allclose(a[i], b[i], tol, tol));
    }
}

/// Fused and unfused runs from the same start; both must end at the same weights,
/// and the fused run must have stepped `want_fused` parameters itself every step.
template <class T>
void expect_same_training(const std::vector<xt::xarray<T>>& init, optim::sgd_options o, const loss_fn<T>& loss,
                          int want_fused, double tol) {
    const int steps = 4;
    o.fused_backward = false;
    const run_result<T> plain = train<T>(init, o, steps, loss);
    o.fused_backward = true;
    const run_result<T> fused = train<T>(init, o, steps, loss);
    CHECK(plain.fused == std::vector<int>(steps, 0));
    CHECK(fused.fused == std::vector<int>(steps, want_fused));
    expect_close(fused.params, plain.params, tol);
    // The runs must have moved the weights, or the comparison proves nothing.
    for (std::size_t i = 0; i < init.size(); ++i) CHECK(!xt::allclose(plain.params[i], init[i], 1e-6, 1e-6));
}

/// An MLP on raw ops with tanh and an MSE loss: the start {W1, b1, W2, b2, ...},
/// weights [out, in], and the loss of a fixed batch.
template <class T> struct mlp_problem {
    std::vector<xt::xarray<T>> init;
    loss_fn<T> loss;
};

template <class T> mlp_problem<T> make_mlp(const std::vector<std::size_t>& sizes, std::size_t batch) {
    mlp_problem<T> m;
    unsigned seed = 1;
    const std::size_t layers = sizes.size() - 1;
    for (std::size_t l = 0; l < layers; ++l) {
        m.init.push_back(random<T>({sizes[l + 1], sizes[l]}, seed++));
        m.init.push_back(random<T>({sizes[l + 1]}, seed++));
    }
    const tensor<T> x(random<T>({batch, sizes[0]}, seed++)), y(random<T>({batch, sizes.back()}, seed++));
    m.loss = [x, y, layers](const std::vector<tensor<T>>& p) {
        tensor<T> h = x;
        for (std::size_t l = 0; l < layers; ++l) {
            h = matmul(h, p[2 * l], false, true) + p[2 * l + 1];
            if (l + 1 < layers) h = tanh(h);
        }
        return mse(h, y);
    };
    return m;
}

}  // namespace

TEST_CASE("fused sgd: an MLP trains to the same weights as step() (float64, float32, weight decay)") {
    // 7-5-4-3 runs the engine's small-gemm loops; 48-64-32-10 (batch 16) OpenBLAS.
    optim::sgd_options o;
    o.lr = 0.5;
    const auto small64 = make_mlp<double>({7, 5, 4, 3}, 6);
    const auto big64 = make_mlp<double>({48, 64, 32, 10}, 16);
    const auto big32 = make_mlp<float>({48, 64, 32, 10}, 16);
    SUBCASE("float64") { expect_same_training<double>(small64.init, o, small64.loss, 3, 1e-13); }
    SUBCASE("float64, weight decay") {
        o.weight_decay = 0.1;
        expect_same_training<double>(small64.init, o, small64.loss, 3, 1e-13);
        expect_same_training<double>(big64.init, o, big64.loss, 3, 1e-13);
    }
    SUBCASE("float32, weight decay") {
        o.weight_decay = 0.1;
        expect_same_training<float>(big32.init, o, big32.loss, 3, 1e-5);
    }
}

TEST_CASE("fused sgd: backward() updates the weight in place and leaves no .grad()") {
    const xt::xarray<double> w0 = random<double>({3, 4}, 1), xv = random<double>({2, 4}, 2);
    tensor<double> w(w0, true), x(xv, true);
    set_fused_sgd(w, 0.25, 0.2);
    sum(tanh(matmul(x, w, false, true))).backward();
    CHECK_FALSE(w.has_grad());
    CHECK(w.node_ptr()->fused_steps == 1);
    // dL/dW = (1 - y^2)^T x with y = x W0^T; W = (1 - 0.25*0.2) W0 - 0.25 dL/dW
    const xt::xarray<double> y = xt::tanh(mm(xv, tr(w0)));
    const xt::xarray<double> dz = 1.0 - y * y;
    const xt::xarray<double> g = mm(tr(dz), xv);
    CHECK(xt::allclose(w.value(), (1 - 0.25 * 0.2) * w0 - 0.25 * g, 1e-14, 1e-14));
    // x's gradient is computed from the weight before the step: (1 - y^2) W0
    CHECK(xt::allclose(x.grad(), mm(dz, w0), 1e-14, 1e-14));
    reset_tape<double>();

    clear_fused_sgd(w);
    const xt::xarray<double> w1 = w.value();
    sum(matmul(x, w, false, true)).backward();
    CHECK(w.has_grad());
    CHECK(w.value() == w1);
    reset_tape<double>();
}

TEST_CASE("fused sgd: every transpose flag, the weight as either operand, the other operand's gradient too") {
    // The other operand needs a gradient too, which must be computed from the weight
    // before its update. With two parameter operands the right one is fused; with
    // tanh(p[1]) on the right (a tape node), the left one.
    for (bool fuse_left : {false, true})
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                CAPTURE(fuse_left);
                CAPTURE(ta);
                CAPTURE(tb);
                const std::vector<xt::xarray<double>> init{random<double>(ta ? shape_t{4, 3} : shape_t{3, 4}, 1),
                                                           random<double>(tb ? shape_t{5, 4} : shape_t{4, 5}, 2)};
                const tensor<double> y(random<double>({3, 5}, 3));
                loss_fn<double> loss = [&](const std::vector<tensor<double>>& p) {
                    return mse(tanh(matmul(p[0], fuse_left ? tanh(p[1]) : p[1], ta, tb)), y);
                };
                optim::sgd_options o;
                o.lr = 0.3;
                o.weight_decay = 0.05;
                expect_same_training<double>(init, o, loss, 1, 1e-13);
            }
}

TEST_CASE("fused sgd: 3-D batched matmul, with a shared and with a batched weight") {
    const tensor<double> x(random<double>({3, 2, 4}, 1)), y(random<double>({3, 2, 5}, 2));
    optim::sgd_options o;
    o.lr = 0.4;
    o.weight_decay = 0.1;
    SUBCASE("3-D x 2-D: the weight's gradient sums over the batch") {
        loss_fn<double> loss = [&](const std::vector<tensor<double>>& p) { return mse(tanh(matmul(x, p[0])), y); };
        expect_same_training<double>({random<double>({4, 5}, 3)}, o, loss, 1, 1e-13);
    }
    SUBCASE("3-D x 3-D, transposed") {
        loss_fn<double> loss = [&](const std::vector<tensor<double>>& p) {
            return mse(tanh(matmul(x, p[0], false, true)), y);
        };
        expect_same_training<double>({random<double>({3, 5, 4}, 4)}, o, loss, 1, 1e-13);
    }
    SUBCASE("3-D weight as the left operand, input on the right") {
        const tensor<double> xr(random<double>({3, 4, 5}, 5));
        loss_fn<double> loss = [&](const std::vector<tensor<double>>& p) { return mse(tanh(matmul(p[0], xr)), y); };
        expect_same_training<double>({random<double>({3, 2, 4}, 6)}, o, loss, 1, 1e-13);
    }
}

TEST_CASE("fused sgd: a weight read by more than one op falls back to .grad()") {
    optim::sgd_options o;
    o.lr = 0.3;
    o.weight_decay = 0.05;
    const tensor<double> x(random<double>({2, 4}, 1)), y(random<double>({2, 4}, 2));
    SUBCASE("tied: the same weight in two matmuls") {
        loss_fn<double> loss = [&](const std::vector<tensor<double>>& p) {
            return mse(matmul(tanh(matmul(x, p[0])), p[0], false, true), y);
        };
        expect_same_training<double>({random<double>({4, 4}, 3)}, o, loss, 0, 1e-13);
    }
    SUBCASE("both operands of one matmul") {
        loss_fn<double> loss = [&](const std::vector<tensor<double>>& p) {
            return mse(matmul(x, tanh(matmul(p[0], p[0], true, false))), y);
        };
        expect_same_training<double>({random<double>({4, 4}, 4)}, o, loss, 0, 1e-13);
    }
    SUBCASE("a matmul and a penalty on the weight") {
        loss_fn<double> loss = [&](const std::vector<tensor<double>>& p) {
            return mse(matmul(x, p[0]), y) + 0.1 * sum(p[0] * p[0]);
        };
        expect_same_training<double>({random<double>({4, 4}, 5)}, o, loss, 0, 1e-13);
    }
    SUBCASE("the tape is not reset: the second step's matmul is the weight's second use") {
        tensor<double> w(random<double>({4, 4}, 6), true);
        o.fused_backward = true;
        optim::sgd<double> opt({w}, o);
        opt.zero_grad();
        mse(matmul(x, w), y).backward();
        CHECK_FALSE(w.has_grad());
        opt.step();
        opt.zero_grad();
        const xt::xarray<double> before = w.value();
        mse(matmul(x, w), y).backward();
        CHECK(w.has_grad());
        CHECK(w.value() == before);
        opt.step();
        CHECK(xt::allclose(w.value(), (1 - 0.3 * 0.05) * before - 0.3 * w.grad(), 1e-14, 1e-14));
        CHECK(opt.steps(0) == 2);
        reset_tape<double>();
    }
}

TEST_CASE("fused sgd: a second backward() over a graph whose weight already stepped is an error") {
    tensor<double> x(random<double>({2, 4}, 3), true), w(random<double>({3, 4}, 4), true);
    set_fused_sgd(w, 0.1);
    tensor<double> y = matmul(x, w, false, true);
    tensor<double> l1 = sum(y), l2 = sum(y * y);
    l1.backward();
    const xt::xarray<double> stepped = w.value();
    CHECK_THROWS_WITH_AS(l2.backward(), doctest::Contains("already took its fused SGD step"), std::logic_error);
    CHECK(w.value() == stepped);  // not stepped twice
    reset_tape<double>();
    sum(matmul(x, w, false, true)).backward();  // a new tape generation fuses again
    CHECK(w.node_ptr()->fused_steps == 2);
    reset_tape<double>();
}

TEST_CASE("fused sgd: an accumulated gradient falls back (no zero_grad between backward calls)") {
    const tensor<double> x(random<double>({2, 4}, 1));
    tensor<double> w(random<double>({4, 3}, 2), true);
    const xt::xarray<double> w0 = w.value();
    sum(matmul(x, w)).backward();  // fusion off: .grad() = x^T 1
    reset_tape<double>();
    set_fused_sgd(w, 0.5);
    sum(matmul(x, w)).backward();  // a gradient is there already: it accumulates
    CHECK(w.value() == w0);
    CHECK(xt::allclose(w.grad(), 2.0 * mm(tr(x.value()), xt::ones<double>({2, 3}))));
    reset_tape<double>();
}

TEST_CASE("fused sgd: tape::gradient() and create_graph never step the weight") {
    const tensor<double> x(random<double>({2, 4}, 1));
    const xt::xarray<double> w0 = random<double>({4, 3}, 2);
    const xt::xarray<double> y = xt::tanh(mm(x.value(), w0));
    const xt::xarray<double> want = mm(tr(x.value()), 1.0 - y * y);
    for (bool create_graph : {false, true}) {
        CAPTURE(create_graph);
        tensor<double> w(w0, true);
        set_fused_sgd(w, 0.5);
        gradient_options go;
        go.create_graph = create_graph;
        auto g = tape<double>::current().gradient(sum(tanh(matmul(x, w))), {w}, go);
        CHECK(w.value() == w0);
        CHECK(w.node_ptr()->fused_steps == 0);
        CHECK(xt::allclose(g[0].value(), want, 1e-14, 1e-14));
        reset_tape<double>();
    }
}

TEST_CASE("fused sgd: with momentum optim::sgd falls back to step()") {
    optim::sgd_options o;
    o.lr = 0.3;
    o.momentum = 0.9;
    o.dampening = 0.1;
    o.fused_backward = true;
    tensor<double> w(random<double>({5, 7}, 1), true);
    CHECK_FALSE(optim::sgd<double>({w}, o).fused());
    o.nesterov = true;
    o.dampening = 0;
    CHECK_FALSE(optim::sgd<double>({w}, o).fused());
    o.nesterov = false;
    const auto m = make_mlp<double>({7, 5, 4, 3}, 6);
    expect_same_training<double>(m.init, o, m.loss, 0, 1e-13);
}

TEST_CASE("fused sgd: the optimizer turns fusion off when it is destroyed") {
    tensor<double> w(random<double>({4, 3}, 1), true);
    const tensor<double> x(random<double>({2, 4}, 2));
    {
        optim::sgd_options o;
        o.fused_backward = true;
        optim::sgd<double> opt({w}, o);
        CHECK(opt.fused());
        CHECK(w.node_ptr()->fused_sgd);
    }
    CHECK_FALSE(w.node_ptr()->fused_sgd);
    const xt::xarray<double> w0 = w.value();
    sum(matmul(x, w)).backward();
    CHECK(w.has_grad());
    CHECK(w.value() == w0);
    reset_tape<double>();
}

TEST_CASE("fused sgd: nn::mlp with optim::sgd's fused_backward trains like the unfused optimizer") {
    const tensor<double> x(random<double>({16, 20}, 1));
    std::vector<std::size_t> labels;
    for (std::size_t i = 0; i < 16; ++i) labels.push_back(i * 7 % 3);
    std::vector<std::vector<xt::xarray<double>>> result;
    for (bool fused : {false, true}) {
        std::mt19937_64 rng(7);
        auto net = nn::mlp<double>({20, 32, 16, 3}, nn::activation::relu, rng);
        optim::sgd_options o;
        o.lr = 0.2;
        o.weight_decay = 1e-2;
        o.fused_backward = fused;
        optim::sgd<double> opt(net->parameters(), o);
        for (int s = 0; s < 5; ++s) {
            opt.zero_grad();
            cross_entropy((*net)(x), labels).backward();
            // weights (even indices) are stepped by backward() when fused; biases never
            for (std::size_t i = 0; i < net->parameters().size(); ++i)
                CHECK(net->parameters()[i].has_grad() == (!fused || i % 2 == 1));
            opt.step();
            reset_tape<double>();
        }
        result.emplace_back();
        for (const auto& p : net->parameters()) result.back().push_back(p.value());
    }
    expect_close(result[1], result[0], 1e-13);
}
