// batch_norm2d_relu (autograd/conv.hpp) and nn::sequential's use of it: the fused
// node gives relu(batch_norm2d(...))'s values and running statistics bit for bit,
// and its gradients bit for bit in double (to float rounding in float), training and eval, with and without the
// affine part, at the kink (pre-activations exactly 0) and at +-1000; gradcheck and
// gradgradcheck in float64.

#include <limits>
#include <string>
#include <type_traits>

#include <doctest/doctest.h>
#include <xtensor/xview.hpp>

#include "autograd/ops.hpp"
#include "nn/conv_layers.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using args = std::vector<tensor<double>>;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;

namespace {

template <class T> struct bn_run {
    xt::xarray<T> y, dx, dw, db, running_mean, running_var;
};

// One forward and backward of sum(y * r), fused or relu after batch_norm2d.
template <class T>
bn_run<T> run(bool fused, const xt::xarray<T>& xv, bool affine, bool training, const xt::xarray<T>& r) {
    const std::size_t ch = xv.shape()[1];
    tensor<T> x(xv, true), none;
    tensor<T> w = affine ? tensor<T>(xt::xarray<T>(uniform({ch}, 0.5, 1.5, 7)), true) : none;
    tensor<T> b = affine ? tensor<T>(xt::xarray<T>(uniform({ch}, -0.5, 0.5, 8)), true) : none;
    tensor<T> rm(xt::xarray<T>(uniform({ch}, -0.2, 0.2, 9))), rv(xt::xarray<T>(uniform({ch}, 0.5, 2.0, 10)));
    tensor<T> y = fused ? batch_norm2d_relu(x, w, b, rm, rv, training)
                        : relu(batch_norm2d(x, w, b, rm, rv, training));
    CHECK(std::string(y.op_name()) == (fused ? "batch_norm2d_relu" : "relu"));
    sum(y * tensor<T>(r)).backward();
    bn_run<T> out{y.value(), x.grad(), {}, {}, rm.value(), rv.value()};
    if (affine) out.dw = w.grad(), out.db = b.grad();
    reset_tape<T>();
    return out;
}

// Gradients: bit for bit in double; in float the compiler's code for the fused loops may
// round differently, so within 4 float epsilons of the largest gradient.
template <class T> bool close(const xt::xarray<T>& a, const xt::xarray<T>& b) {
    if constexpr (std::is_same_v<T, double>) return a == b;
    if (a.shape() != b.shape()) return false;
    if (a.size() == 0) return true;
    const double scale = double(xt::amax(xt::abs(b))());
    return double(xt::amax(xt::abs(a - b))()) <= 4 * double(std::numeric_limits<float>::epsilon()) * scale;
}

template <class T> void expect_same_bits(const xt::xarray<T>& xv, const std::string& what) {
    const xt::xarray<T> r = uniform(shape_t(xv.shape().begin(), xv.shape().end()), -1, 1, 11);
    for (bool affine : {true, false})
        for (bool training : {true, false}) {
            CAPTURE(what);
            CAPTURE(affine);
            CAPTURE(training);
            const bn_run<T> f = run(true, xv, affine, training, r), s = run(false, xv, affine, training, r);
            CHECK(f.y == s.y);
            CHECK(f.running_mean == s.running_mean);
            CHECK(f.running_var == s.running_var);
            CHECK(close(f.dx, s.dx));
            CHECK(close(f.dw, s.dw));
            CHECK(close(f.db, s.db));
            CHECK(xt::amin(f.y)() == T(0));  // the relu clipped something
        }
}

}  // namespace

TEST_CASE("batch_norm2d_relu equals relu(batch_norm2d)") {
    expect_same_bits<double>(uniform({4, 3, 5, 5}, -1, 1, 1), "double, uniform");
    expect_same_bits<float>(xt::xarray<float>(uniform({4, 3, 5, 5}, -1, 1, 2)), "float, uniform");
    expect_same_bits<float>(xt::xarray<float>(uniform({2, 4, 7, 3}, -1000, 1000, 3)), "float, +-1000");
    // The kink: a constant channel normalises to exactly 0, so without the affine part
    // (or with bias 0) every pre-activation there is 0, and relu'(0) = 0 takes its gradient.
    xt::xarray<double> kink = uniform({3, 2, 4, 4}, -1, 1, 4);
    xt::view(kink, xt::all(), 1) = 0.25;
    expect_same_bits<double>(kink, "double, constant channel");
    const bn_run<double> k = run(true, kink, false, true, uniform({3, 2, 4, 4}, -1, 1, 5));
    CHECK(xt::amax(xt::abs(xt::view(k.y, xt::all(), 1)))() == 0.0);
    CHECK(xt::amax(xt::abs(xt::view(k.dx, xt::all(), 1)))() == 0.0);
}

TEST_CASE("batch_norm2d_relu: gradcheck and gradgradcheck") {
    const xt::xarray<double> x = uniform({3, 2, 3, 4}, -1, 1, 20);
    const xt::xarray<double> w = uniform({2}, 0.5, 1.5, 21), b = uniform({2}, -0.3, 0.3, 22);
    const xt::xarray<double> rm = uniform({2}, -0.2, 0.2, 23), rv = uniform({2}, 0.5, 2.0, 24);
    // training: batch statistics (running buffers left out, so each evaluation is the same)
    expect_grads([](const args& a) { return batch_norm2d_relu(a[0], a[1], a[2], tensor<double>(), tensor<double>(), true); },
                 {x, w, b}, true);
    expect_grads([](const args& a) {
        const tensor<double> none;
        return batch_norm2d_relu(a[0], none, none, none, none, true);
    }, {x}, true);
    // eval: the running statistics are constants (buffers, as in torch)
    const tensor<double> trm(rm), trv(rv);
    expect_grads([&](const args& a) { return batch_norm2d_relu(a[0], a[1], a[2], trm, trv, false); }, {x, w, b}, true);
}

TEST_CASE("batch_norm2d_relu: errors name the fused op") {
    tensor<double> x(xt::xarray<double>(uniform({2, 3, 2, 2}, -1, 1, 30))), none;
    tensor<double> w4(xt::xarray<double>(xt::ones<double>({4}))), b4(xt::xarray<double>(xt::zeros<double>({4})));
    CHECK_THROWS_WITH_AS(batch_norm2d_relu(x, w4, b4, none, none, true),
                         "batch_norm2d_relu: weight [4] must be [C] for the input's C channels; input [2, 3, 2, 2]",
                         shape_error);
    CHECK_THROWS_WITH_AS(batch_norm2d_relu(x, none, none, none, none, false),
                         "batch_norm2d_relu: eval mode needs running_mean and running_var", shape_error);
}

TEST_CASE("nn::sequential runs BatchNorm2d followed by ReLU as one fused node") {
    const xt::xarray<float> xv = uniform({4, 3, 5, 5}, -2, 2, 40);
    auto make = [] {
        auto net = std::make_shared<nn::sequential<float>>();
        net->push_back(std::make_shared<nn::batch_norm2d<float>>(3));
        net->push_back(std::make_shared<nn::activation_module<float>>(nn::activation::relu));
        net->push_back(std::make_shared<nn::batch_norm2d<float>>(3));  // last: nothing to fuse
        return net;
    };
    for (bool training : {true, false}) {
        CAPTURE(training);
        auto fused_net = make(), plain_net = make();
        fused_net->train(training);
        plain_net->train(training);
        for (auto* n : {fused_net.get(), plain_net.get()})  // distinct affine parameters, the same in both
            for (auto& [name, p] : n->named_parameters()) {
                const auto ps = p.shape();
                p.mutable_value() = uniform(shape_t(ps.begin(), ps.end()), 0.5, 1.5, static_cast<unsigned>(name.size() + name[0]));
            }
        tensor<float> x1(xv, true), x2(xv, true);
        tensor<float> y1 = fused_net->forward(x1);
        // the same modules one at a time: BatchNorm2d, then ReLU, then BatchNorm2d
        tensor<float> y2 = (*plain_net)[2]->forward((*plain_net)[1]->forward((*plain_net)[0]->forward(x2)));
        CHECK(y1.value() == y2.value());
        sum(y1 * y1).backward();
        sum(y2 * y2).backward();
        CHECK(close(x1.grad(), x2.grad()));
        for (std::size_t i = 0; i < 2; ++i) {
            const auto a = fused_net->named_parameters()[i].second, b = plain_net->named_parameters()[i].second;
            CHECK(close(a.grad(), b.grad()));
        }
        const auto fb = fused_net->named_buffers(), pb = plain_net->named_buffers();
        for (std::size_t i = 0; i < fb.size(); ++i) CHECK(fb[i].second.value() == pb[i].second.value());
        reset_tape<float>();
    }
    // what the fusion records: one node for BatchNorm2d + ReLU
    auto net = make();
    tensor<float> x(xv, true);
    const tensor<float> h = net->forward_relu(x);  // Sequential's own default: relu(forward(x))
    CHECK(std::string(h.op_name()) == "relu");
    nn::batch_norm2d<float> bn(3);
    CHECK(std::string(bn.forward_relu(x).op_name()) == "batch_norm2d_relu");
    CHECK(std::string(bn.forward(x).op_name()) == "batch_norm2d");
    reset_tape<float>();
}
