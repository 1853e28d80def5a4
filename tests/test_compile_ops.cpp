// Compiled steps over the shape ops, comparisons, where, cumsum, max/min and norm: each has a replay
// kernel, so a step using them replays (no eager fall-back), and every replay equals
// the eager step bit for bit: values, gradients and parameters, passes on and off.

#include <cstdint>
#include <cstring>
#include <random>

#include <doctest/doctest.h>

#include "autograd/compile.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using testing::uniform;

namespace {

/// Bitwise equality, so -0 against +0 and NaN payloads count.
bool same_bits(const xt::xarray<double>& a, const xt::xarray<double>& b) {
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

/// The parameters of one copy of the step.
struct params {
    tensor<double> w{xt::xarray<double>(uniform({3, 4}, -1, 1, 11)), true};
    tensor<double> v{xt::xarray<double>(uniform({4}, -1, 1, 12)), true};
};

/// A step that reaches every op with a new replay kernel, then takes a plain update in replayed().
tensor<double> step(params& p, const tensor<double>& x) {
    p.w.zero_grad();
    p.v.zero_grad();
    tensor<double> a = matmul(x, p.w);                             // [5, 4]
    tensor<double> t = transpose(a);                                // permute: [4, 5]
    tensor<double> s = slice(t, 1, 1, 4);                           // [4, 3]
    tensor<double> st = slice(a, 0, 0, 5, 2);                       // strided: [3, 4]
    tensor<double> f = flip(st, {0, 1});                            // [3, 4]
    tensor<double> pd = pad(f, {{1, 0}, {0, 2}}, 0.5);              // [4, 6]
    tensor<double> c = concat<double>({s, slice(pd, 1, 0, 3)}, 1);  // [4, 6]
    tensor<double> k = stack<double>({c, pd}, 0);                   // [2, 4, 6]
    tensor<double> b = broadcast_to(unsqueeze(p.v, 1), {4, 6});     // [4, 6]
    tensor<double> r = sum_to(k, {1, 4, 6});                        // [1, 4, 6]
    tensor<double> m = where(gt(c, b), c * b, c - b);               // compare + where
    tensor<double> mask = eq(c, c) + ne(c, b) + lt(c, b) + le(c, b) + ge(c, b);
    tensor<double> z = (c > 0.1) + (c < -0.1) + sign(c) + pow(c, 0.0);
    tensor<double> cs = cumsum(m * mask + z, 1);
    tensor<double> loss = sum(cs * reshape(r, {4, 6})) + sum(squeeze(r) * b) + sum(norm(m, 2.0, {1}, false)) +
                          sum(max(m, {1}, false)) + sum(min(c, {0, 1}, true));
    loss.backward();
    replayed<double>([&] {
        p.w.mutable_value() -= 0.01 * p.w.grad();
        p.v.mutable_value() -= 0.01 * p.v.grad();
    });
    return loss;
}

}  // namespace

TEST_CASE("compile: shape ops, comparisons, where, cumsum, max/min and norm replay bit for bit with eager") {
    for (bool on : {false, true}) {
        CAPTURE(on);
        compile_options o;
        o.fuse_elementwise = o.fuse_bias_activation = o.fuse_sgd = o.fuse_backward_elementwise = on;
        params eager, comp;
        auto compiled = compile([&](const tensor<double>& x) { return step(comp, x); }, o);
        for (int i = 0; i < 4; ++i) {
            CAPTURE(i);
            xt::xarray<double> xv = uniform({5, 3}, -1, 1, 20 + i);
            xv(0, 0) = 0.0;  // a tie for the comparisons and a zero for sign
            const tensor<double> x(xv);
            const double le = step(eager, x).item();
            reset_tape<double>();
            const double lc = compiled(x).item();
            CHECK(std::memcmp(&le, &lc, sizeof le) == 0);
            CHECK(same_bits(eager.w.grad(), comp.w.grad()));
            CHECK(same_bits(eager.v.grad(), comp.v.grad()));
            CHECK(same_bits(eager.w.value(), comp.w.value()));
            CHECK(same_bits(eager.v.value(), comp.v.value()));
        }
        const compile_stats s = compiled.stats();
        CHECK(s.eager_reason == "");
        CHECK(s.traces == 1);
        CHECK(s.replays == 3);
    }
}

TEST_CASE("compile: a replayed cumsum and slice follow each call's input") {
    auto f = compile([](const tensor<float>& x) { return cumsum(slice(x, 0, 1, 3), 0); });
    const tensor<float> a(xt::xarray<float>{1, 2, 3, 4}), b(xt::xarray<float>{10, 20, 30, 40});
    f(a);
    const xt::xarray<float> got = f(b).value();  // a replay
    CHECK(f.stats().replays == 1);
    CHECK(got == xt::xarray<float>{20, 50});
}

TEST_CASE("compile: argmax inside a step runs eagerly and says why, so its indices follow each call") {
    auto f = compile([](const tensor<float>& x) { return argmax(x, 0) + sum(x); });
    const tensor<float> a(xt::xarray<float>{1, 5, 2}), b(xt::xarray<float>{7, 0, 0});
    CHECK(f(a).item() == 9.0f);  // index 1, plus the sum 8
    CHECK(f(b).item() == 7.0f);  // index 0, plus the sum 7
    CHECK(f.stats().replays == 0);
    CHECK(f.stats().eager_reason.find("argmax") != std::string::npos);
}

TEST_CASE("compile: the check mode passes the step, every op's replayed forward equal to eager") {
    compile_options o;
    o.check = true;
    params comp;
    auto compiled = compile([&](const tensor<double>& x) { return step(comp, x); }, o);
    for (int i = 0; i < 3; ++i) CHECK_NOTHROW(compiled(tensor<double>(xt::xarray<double>(uniform({5, 3}, -1, 1, 30 + i)))));
    CHECK(compiled.stats().replays == 2);
}

TEST_CASE("compile: nll and unreduced cross_entropy pick each call's labels; a bad label throws and moves nothing") {
    const xt::xarray<double> w0 = uniform({3, 4}, -1, 1, 40);
    tensor<double> we(w0, true), wc(w0, true);
    auto step_with = [](tensor<double>& w, const tensor<double>& x, const std::vector<std::size_t>& y) {
        w.zero_grad();
        tensor<double> z = matmul(x, w);
        tensor<double> loss = nll(log_softmax(z, 1), y) + sum(cross_entropy(z, y, reduction::none));
        loss.backward();
        replayed<double>([&] { w.mutable_value() -= 0.1 * w.grad(); });
        return loss;
    };
    auto compiled = compile([&](const tensor<double>& x, const std::vector<std::size_t>& y) { return step_with(wc, x, y); });
    const tensor<double> x(xt::xarray<double>(uniform({2, 3}, -1, 1, 41)));
    const std::vector<std::vector<std::size_t>> ys = {{0, 1}, {3, 3}, {2, 0}, {1, 2}};
    for (const auto& y : ys) {
        const double le = step_with(we, x, y).item();
        reset_tape<double>();
        const double lc = compiled(x, y).item();
        CHECK(std::memcmp(&le, &lc, sizeof le) == 0);
        CHECK(same_bits(we.value(), wc.value()));
    }
    CHECK(compiled.stats().replays == 3);
    CHECK(compiled.stats().eager_reason == "");

    const xt::xarray<double> before = wc.value();
    CHECK_THROWS_AS(compiled(x, std::vector<std::size_t>{0, 4}), std::out_of_range);
    CHECK(same_bits(wc.value(), before));  // the forward threw before the update
    step_with(we, x, ys[0]);
    reset_tape<double>();
    compiled(x, ys[0]);  // and the step works on
    CHECK(same_bits(we.value(), wc.value()));
}

TEST_CASE("compile: cross_entropy with options picks labels it copied, so its step runs eagerly and says why") {
    tensor<double> w(xt::xarray<double>(uniform({3, 4}, -1, 1, 50)), true);
    class_loss_options o;
    o.label_smoothing = 0.1;
    auto f = compile([&](const tensor<double>& x, const std::vector<std::size_t>& y) {
        return cross_entropy(matmul(x, w), y, o);
    });
    const tensor<double> x(xt::xarray<double>(uniform({2, 3}, -1, 1, 51)));
    const double a = f(x, {0, 1}).item(), b = f(x, {2, 3}).item();
    CHECK(a != b);  // each call's labels
    CHECK(f.stats().replays == 0);
    CHECK(f.stats().eager_reason.find("pick read class labels") != std::string::npos);
}

TEST_CASE("compile: index_select replays with each call's indices when they are a label argument") {
    const xt::xarray<double> e0 = uniform({5, 3}, -1, 1, 60);
    tensor<double> ee(e0, true), ec(e0, true);  // an embedding table
    auto step_with = [](tensor<double>& e, const std::vector<std::size_t>& rows, const std::vector<std::size_t>& cols) {
        e.zero_grad();
        tensor<double> picked = index_select(index_select(e, rows), 1, cols);
        tensor<double> loss = sum(picked * picked);
        loss.backward();
        replayed<double>([&] { e.mutable_value() -= 0.1 * e.grad(); });
        return loss;
    };
    auto compiled = compile([&](const std::vector<std::size_t>& rows, const std::vector<std::size_t>& cols) {
        return step_with(ec, rows, cols);
    });
    const std::vector<std::vector<std::size_t>> rs = {{0, 4, 4}, {1, 2, 3}, {3, 3, 0}}, cs = {{2, 0}, {1, 1}, {0, 2}};
    for (std::size_t i = 0; i < rs.size(); ++i) {
        const double le = step_with(ee, rs[i], cs[i]).item();
        reset_tape<double>();
        const double lc = compiled(rs[i], cs[i]).item();
        CHECK(std::memcmp(&le, &lc, sizeof le) == 0);
        CHECK(same_bits(ee.value(), ec.value()));
    }
    CHECK(compiled.stats().replays == 2);
    CHECK(compiled.stats().eager_reason == "");
    const xt::xarray<double> before = ec.value();
    CHECK_THROWS_AS(compiled({0, 5, 1}, cs[0]), std::out_of_range);  // row 5 of 5
    CHECK_THROWS_AS(compiled(rs[0], {0, 3}), std::out_of_range);     // column 3 of 3
    CHECK(same_bits(ec.value(), before));

    // indices that are not an argument would be frozen at the trace: eager, and says why
    const std::vector<std::size_t> fixed = {1, 0};
    auto frozen = compile([&](const tensor<double>& x) { return sum(index_select(x, fixed)); });
    frozen(tensor<double>(e0));
    CHECK(frozen.stats().eager_reason.find("index_select read class labels or indices") != std::string::npos);
}

TEST_CASE("compile: gather replays with each call's index array when it is an index argument") {
    const xt::xarray<double> w0 = uniform({4, 5, 3}, -1, 1, 61);
    tensor<double> we(w0, true), wc(w0, true);
    auto step_with = [](tensor<double>& w, const xt::xarray<std::size_t>& index) {
        w.zero_grad();
        tensor<double> g = gather(w, 1, index);  // [4, 2, 3], repeated entries scatter-add in the backward
        tensor<double> loss = sum(g * g * tanh(g));
        loss.backward();
        replayed<double>([&] { w.mutable_value() -= 0.1 * w.grad(); });
        return loss;
    };
    auto compiled = compile([&](const xt::xarray<std::size_t>& index) { return step_with(wc, index); });
    std::mt19937 rng(7);
    std::uniform_int_distribution<std::size_t> pick(0, 4);
    for (int call = 0; call < 4; ++call) {
        xt::xarray<std::size_t> index = xt::zeros<std::size_t>({4, 2, 3});
        for (auto& v : index) v = pick(rng);
        if (call == 1) index.fill(4);  // every entry the last one
        const double le = step_with(we, index).item();
        reset_tape<double>();
        const double lc = compiled(index).item();
        CHECK(std::memcmp(&le, &lc, sizeof le) == 0);
        CHECK(same_bits(we.value(), wc.value()));
        CHECK(same_bits(we.grad(), wc.grad()));
    }
    CHECK(compiled.stats().traces == 1);
    CHECK(compiled.stats().replays == 3);
    CHECK(compiled.stats().eager_reason == "");

    // an out-of-range entry throws before the update runs: the parameter keeps its value
    const xt::xarray<double> before = wc.value();
    xt::xarray<std::size_t> bad = xt::zeros<std::size_t>({4, 2, 3});
    bad(3, 1, 2) = 5;
    CHECK_THROWS_AS(compiled(bad), std::out_of_range);
    CHECK(same_bits(wc.value(), before));

    // another index shape is another signature: traced once more, then both replay
    const xt::xarray<std::size_t> narrow = xt::zeros<std::size_t>({4, 1, 3});
    compiled(narrow);
    compiled(narrow);
    CHECK(compiled.stats().traces == 2);
    CHECK(compiled.stats().programs == 2);

    // an index that is not an argument would be frozen at the trace: eager, and says why
    const xt::xarray<std::size_t> fixed = xt::zeros<std::size_t>({4, 2, 3});
    auto frozen = compile([&](const tensor<double>& x) { return sum(gather(x, 1, fixed)); });
    frozen(tensor<double>(w0));
    CHECK(frozen.stats().eager_reason.find("gather read class labels or indices") != std::string::npos);
    CHECK(frozen.stats().eager_reason.find("xt::xarray<std::size_t>") != std::string::npos);
}

namespace {

/// Elementwise chains whose backward the fuse_backward_elementwise pass runs as blocked loops:
/// a value used twice (x * x, and y read by two later ops), constants that take no gradient
/// in between, a parameter leaf read mid-chain (which ends a run), a retained gradient.
tensor<double> chain_step(tensor<double>& w, const tensor<double>& x, const tensor<double>& c, tensor<double>* kept) {
    w.zero_grad();
    tensor<double> y = tanh(x * w);                  // reads the parameter: not in a run
    tensor<double> u = sigmoid(y) * y + y * y;       // y used three times
    tensor<double> k = exp(c) - c;                   // no gradient: may sit inside a run
    tensor<double> v = (u - k) * (u + 0.5 * y);
    tensor<double> r = relu(v - 0.25) * w;           // w again: its rule stays out of the run
    tensor<double> s = sqrt(abs(r) + 1.0) / (1.0 + u * u);
    if (kept) {
        kept[0] = v;
        v.retain_grad();                             // a hooked node: stays out of the runs
    }
    tensor<double> loss = sum(s * s + v);
    loss.backward();
    return loss;
}

}  // namespace

TEST_CASE("compile: the backward of elementwise chains runs as blocked loops, bit for bit with eager") {
    for (std::size_t n : {std::size_t(7), std::size_t(5000)}) {  // one partial batch; several blocks
        for (bool retain : {false, true}) {
            CAPTURE(n);
            CAPTURE(retain);
            tensor<double> we(uniform({n}, -1, 1, 31), true), wc(uniform({n}, -1, 1, 31), true);
            const tensor<double> c(uniform({n}, -1, 1, 32));
            tensor<double> kept_e[1], kept_c[1];
            auto compiled = compile([&](const tensor<double>& x) { return chain_step(wc, x, c, retain ? kept_c : nullptr); });
            for (int i = 0; i < 3; ++i) {
                xt::xarray<double> xv = uniform({n}, -2, 2, 40 + i);
                xv(0) = 0.0;  // a kink of relu and abs
                tensor<double> x(xv, true);
                const double le = chain_step(we, x, c, retain ? kept_e : nullptr).item();
                const xt::xarray<double> ge = x.grad();
                reset_tape<double>();
                x.zero_grad();
                const double lc = compiled(x).item();
                CHECK(std::memcmp(&le, &lc, sizeof le) == 0);
                CHECK(same_bits(we.grad(), wc.grad()));
                CHECK(same_bits(ge, x.grad()));
                x.zero_grad();
            }
            CHECK(compiled.stats().replays == 2);
            CHECK(compiled.stats().fused_backward_loops >= 2);
        }
    }
    // the pass off: no loops, same bits
    compile_options off;
    off.fuse_backward_elementwise = false;
    tensor<double> w(uniform({7}, -1, 1, 31), true);
    const tensor<double> c(uniform({7}, -1, 1, 32));
    auto plain = compile([&](const tensor<double>& x) { return chain_step(w, x, c, nullptr); }, off);
    plain(tensor<double>(uniform({7}, -2, 2, 40), true));
    CHECK(plain.stats().fused_backward_loops == 0);
}

TEST_CASE("compile: the check mode passes the fused reverse loops") {
    compile_options o;
    o.check = true;
    tensor<double> w(uniform({300}, -1, 1, 31), true);
    const tensor<double> c(uniform({300}, -1, 1, 32));
    auto checked = compile([&](const tensor<double>& x) { return chain_step(w, x, c, nullptr); }, o);
    for (int i = 0; i < 3; ++i) checked(tensor<double>(uniform({300}, -2, 2, 50 + i), true));
    CHECK(checked.stats().fused_backward_loops >= 2);
}

TEST_CASE("compile: a leaf unfrozen after the trace gets no gradient from a fused reverse loop, and nothing else moves") {
    // d takes no gradient at the trace, so the op reading it may join a reverse run;
    // set_requires_grad(true) afterwards is a change the program cannot see (docs/compile.md):
    // the fused loop must leave d's gradient alone, not write it without the eager bookkeeping.
    const std::size_t n = 9;
    tensor<double> d(uniform({n}, -1, 1, 61));
    auto body = [&](const tensor<double>& x) {
        tensor<double> y = tanh(x * 2.0);
        tensor<double> z = sigmoid(y) * d;
        tensor<double> loss = sum(z * z + y);
        loss.backward();
        return loss;
    };
    auto compiled = compile(body);
    tensor<double> x0(uniform({n}, -2, 2, 62), true);
    compiled(x0);  // the trace, d frozen
    REQUIRE(compiled.stats().fused_backward_loops >= 1);
    d.set_requires_grad(true);
    tensor<double> xe(uniform({n}, -2, 2, 63), true), xc(uniform({n}, -2, 2, 63), true);
    const double le = body(xe).item();  // eager, d unfrozen: d gets a gradient
    reset_tape<double>();
    CHECK(d.has_grad());
    d.zero_grad();
    const std::uint64_t pass_before = d.node_ptr()->pass;  // the pass that last wrote d's gradient buffers
    const double lc = compiled(xc).item();
    CHECK(compiled.stats().replays == 1);
    CHECK(std::memcmp(&le, &lc, sizeof le) == 0);
    CHECK(same_bits(xe.grad(), xc.grad()));  // the gradients the program has are right
    CHECK_FALSE(d.has_grad());               // and the one it does not have is not made up:
    CHECK(d.node_ptr()->pass == pass_before);  // no write to d's buffers, which no pass claimed
}
