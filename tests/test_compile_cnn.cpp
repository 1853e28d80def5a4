// Compiled steps of convolutional nets: conv2d (its matrix filled sample by sample),
// batch_norm2d (and batch_norm2d_relu) moving its running statistics, max and average
// pooling, flatten; replay equals eager bit for bit, parameters, optimizer state and
// running statistics alike; eval-mode inference compiles too.

#include <random>

#include <doctest/doctest.h>

#include "autograd/compile.hpp"
#include "nn/conv_layers.hpp"
#include "nn/layers.hpp"
#include "optim/optimizer.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using testing::uniform;

namespace {

template <class T> std::shared_ptr<nn::sequential<T>> cnn(bool relu_after_bn) {
    std::mt19937_64 rng(11);
    conv2d_options pad1;
    pad1.padding = {1, 1};
    conv2d_options strided;
    strided.stride = {2, 2};
    strided.groups = 2;
    auto net = std::make_shared<nn::sequential<T>>();
    net->push_back(std::make_shared<nn::unflatten<T>>(std::vector<std::size_t>{2, 8, 8}));
    net->push_back(std::make_shared<nn::conv2d<T>>(2, 4, std::array<std::size_t, 2>{3, 3}, rng, pad1));
    net->push_back(std::make_shared<nn::batch_norm2d<T>>(4));
    net->push_back(std::make_shared<nn::activation_module<T>>(relu_after_bn ? nn::activation::relu
                                                                            : nn::activation::tanh));
    net->push_back(std::make_shared<nn::max_pool2d<T>>(std::array<std::size_t, 2>{2, 2}));
    net->push_back(std::make_shared<nn::conv2d<T>>(4, 6, std::array<std::size_t, 2>{2, 2}, rng, strided));
    net->push_back(std::make_shared<nn::avg_pool2d<T>>(std::array<std::size_t, 2>{2, 2}, std::array<std::size_t, 2>{1, 1}));
    net->push_back(std::make_shared<nn::flatten<T>>());
    net->push_back(std::make_shared<nn::linear<T>>(6, 3, rng));
    return net;
}

template <class T> struct cnn_run {
    std::shared_ptr<nn::sequential<T>> net;
    std::unique_ptr<optim::optimizer<T>> opt;
    cnn_run(bool relu, bool adam) : net(cnn<T>(relu)) {
        if (adam) {
            opt = std::make_unique<optim::adam<T>>(net->parameters());
        } else {
            optim::sgd_options o;
            o.lr = 0.05;
            o.momentum = 0.9;
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

template <class T> void expect_equal(nn::sequential<T>& a, nn::sequential<T>& b) {
    auto pa = a.parameters(), pb = b.parameters();
    for (std::size_t i = 0; i < pa.size(); ++i) CHECK(pa[i].value() == pb[i].value());
    auto ba = a.named_buffers(), bb = b.named_buffers();
    REQUIRE(ba.size() == bb.size());
    REQUIRE(!ba.empty());
    for (std::size_t i = 0; i < ba.size(); ++i) {
        CAPTURE(ba[i].first);
        CHECK(ba[i].second.value() == bb[i].second.value());
    }
}

template <class T> void eager_vs_compiled(bool relu, bool adam, bool passes) {
    CAPTURE(relu);
    CAPTURE(adam);
    CAPTURE(passes);
    cnn_run<T> eager(relu, adam), comp(relu, adam);
    compile_options o;
    o.fuse_elementwise = o.fuse_bias_activation = o.fuse_sgd = o.fuse_backward_elementwise = passes;
    auto step = compile([&](const tensor<T>& x, const std::vector<std::size_t>& y) { return comp.step(x, y); }, o);
    std::mt19937 rng(5);
    for (int s = 0; s < 4; ++s) {
        tensor<T> x(xt::cast<T>(uniform({5, 128}, -2, 2, 40 + s)));
        std::vector<std::size_t> y(5);
        for (auto& v : y) v = rng() % 3;
        const T le = eager.step(x, y).item();
        reset_tape<T>();
        CHECK(step(x, y).item() == le);
    }
    CHECK(step.stats().replays == 3);
    CHECK(step.stats().eager_reason == "");
    expect_equal(*comp.net, *eager.net);
    for (std::size_t i = 0; i < eager.opt->params().size(); ++i) {
        auto se = eager.opt->state(i), sc = comp.opt->state(i);
        for (std::size_t b = 0; b < se.size(); ++b) CHECK(*se[b].second == *sc[b].second);
    }
}

}  // namespace

TEST_CASE("compile: a CNN's replay equals its eager steps bit for bit, running statistics included") {
    for (bool passes : {false, true})
        for (bool relu : {true, false}) {
            eager_vs_compiled<float>(relu, true, passes);
            eager_vs_compiled<double>(relu, false, passes);
        }
}

TEST_CASE("compile: eval-mode inference of a CNN compiles under no_grad") {
    auto net = cnn<float>(true);
    net->eval();
    auto infer = compile([&](const tensor<float>& x) {
        no_grad quiet;
        return net->forward(x);
    });
    for (int s = 0; s < 3; ++s) {
        tensor<float> x(xt::cast<float>(uniform({4, 128}, -1, 1, 60 + s)));
        xt::xarray<float> eager;
        {
            no_grad quiet;
            eager = net->forward(x).value();
        }
        CHECK(infer(x).value() == eager);
    }
    CHECK(infer.stats().replays == 2);
}

TEST_CASE("compile: the check mode passes a CNN step and moves its running statistics once") {
    cnn_run<double> eager(true, true), comp(true, true);
    compile_options o;
    o.check = true;
    auto step = compile([&](const tensor<double>& x, const std::vector<std::size_t>& y) { return comp.step(x, y); }, o);
    for (int s = 0; s < 3; ++s) {
        tensor<double> x(uniform({3, 128}, -2, 2, 70 + s));
        const std::vector<std::size_t> y = {0, 2, 1};
        eager.step(x, y);
        reset_tape<double>();
        step(x, y);
    }
    expect_equal(*comp.net, *eager.net);
}

