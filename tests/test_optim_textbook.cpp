// One step of each optimizer against its textbook formula, written out here by
// hand (independently of the implementation's expression order).

#include <cmath>

#include <doctest/doctest.h>

#include "optim/optimizer.hpp"
#include "tests/check.hpp"

using namespace tapegrad;

namespace {

// p = [1, -2]; .grad() set to g exactly (d/dp sum(p * g) = g).
void set_grad(tensor<double>& p, const xt::xarray<double>& g) {
    p.zero_grad();
    sum(p * tensor<double>(g)).backward();
    reset_tape<double>();
}

const xt::xarray<double> p0{1.0, -2.0};
const xt::xarray<double> g{0.5, 0.25};

void expect(const tensor<double>& p, const xt::xarray<double>& want) {
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(p.value()(i) == doctest::Approx(want(i)).epsilon(1e-14));
}

}  // namespace

TEST_CASE("sgd: p - lr g; momentum; dampening; nesterov; weight decay") {
    {
        tensor<double> p(p0, true);
        optim::sgd<double> opt({p}, {0.1});
        set_grad(p, g);
        opt.step();
        expect(p, xt::xarray<double>{1 - 0.1 * 0.5, -2 - 0.1 * 0.25});
    }
    {
        // two steps with the same g: v1 = g, v2 = 0.9 g + (1 - 0.3) g
        tensor<double> p(p0, true);
        optim::sgd_options o;
        o.lr = 0.1, o.momentum = 0.9, o.dampening = 0.3;
        optim::sgd<double> opt({p}, o);
        set_grad(p, g);
        opt.step();
        set_grad(p, g);
        opt.step();
        expect(p, p0 - 0.1 * g - 0.1 * (0.9 + 0.7) * g);
    }
    {
        // nesterov, first step: v = g, p -= lr (g + mu v)
        tensor<double> p(p0, true);
        optim::sgd_options o;
        o.lr = 0.1, o.momentum = 0.9, o.nesterov = true;
        optim::sgd<double> opt({p}, o);
        set_grad(p, g);
        opt.step();
        expect(p, p0 - 0.1 * 1.9 * g);
    }
    {
        // L2 weight decay: d = g + wd p
        tensor<double> p(p0, true);
        optim::sgd_options o;
        o.lr = 0.1, o.weight_decay = 0.2;
        optim::sgd<double> opt({p}, o);
        set_grad(p, g);
        opt.step();
        expect(p, p0 - 0.1 * (g + 0.2 * p0));
    }
}

TEST_CASE("adam, amsgrad and adamw: bias-corrected moments") {
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    {
        tensor<double> p(p0, true);
        optim::adam<double> opt({p}, {lr});
        set_grad(p, g);
        opt.step();
        // m = (1-b1) g, v = (1-b2) g^2, m_hat = m / (1-b1), v_hat = v / (1-b2)
        xt::xarray<double> m_hat = (1 - b1) * g / (1 - b1), v_hat = (1 - b2) * g * g / (1 - b2);
        expect(p, p0 - lr * m_hat / (xt::sqrt(v_hat) + eps));
        CHECK(opt.steps(0) == 1);
    }
    {
        // amsgrad over two steps where the second gradient is smaller: vmax keeps step 1's v
        tensor<double> p(p0, true);
        optim::adam_options o;
        o.lr = lr, o.amsgrad = true;
        optim::adam<double> opt({p}, o);
        set_grad(p, g);
        opt.step();
        const xt::xarray<double> p1 = p.value(), g2 = 0.001 * g;
        set_grad(p, g2);
        opt.step();
        xt::xarray<double> m = b1 * (1 - b1) * g + (1 - b1) * g2;
        xt::xarray<double> v1 = (1 - b2) * g * g, v2 = b2 * v1 + (1 - b2) * g2 * g2;
        xt::xarray<double> vmax = xt::maximum(v1, v2);
        CHECK(vmax == v1);
        expect(p, p1 - lr * (m / (1 - b1 * b1)) / (xt::sqrt(vmax / (1 - b2 * b2)) + eps));
    }
    {
        // adamw: p (1 - lr wd) first, then the Adam step
        tensor<double> p(p0, true);
        optim::adamw<double> opt({p}, {lr, b1, b2, eps, 0.1});
        set_grad(p, g);
        opt.step();
        expect(p, p0 * (1 - lr * 0.1) - lr * g / (xt::abs(g) + eps));
    }
}

TEST_CASE("rmsprop: plain, centered, momentum") {
    const double lr = 0.01, a = 0.99, eps = 1e-8;
    {
        tensor<double> p(p0, true);
        optim::rmsprop<double> opt({p}, {});
        set_grad(p, g);
        opt.step();
        expect(p, p0 - lr * g / (xt::sqrt((1 - a) * g * g) + eps));
    }
    {
        // centered: divide by sqrt(E[g^2] - E[g]^2); momentum: buf = g / avg first
        tensor<double> p(p0, true);
        optim::rmsprop_options o;
        o.centered = true, o.momentum = 0.5;
        optim::rmsprop<double> opt({p}, o);
        set_grad(p, g);
        opt.step();
        xt::xarray<double> avg = xt::sqrt((1 - a) * g * g - (1 - a) * (1 - a) * g * g) + eps;
        expect(p, p0 - lr * g / avg);
    }
}

TEST_CASE("adagrad: accumulated squares and learning-rate decay") {
    tensor<double> p(p0, true);
    optim::adagrad_options o;
    o.lr = 0.1, o.lr_decay = 0.5, o.initial_accumulator_value = 0.2;
    optim::adagrad<double> opt({p}, o);
    set_grad(p, g);
    opt.step();
    xt::xarray<double> s1 = 0.2 + g * g;
    expect(p, p0 - 0.1 * g / (xt::sqrt(s1) + 1e-10));
    const xt::xarray<double> p1 = p.value();
    set_grad(p, g);
    opt.step();
    expect(p, p1 - 0.1 / (1 + 0.5) * g / (xt::sqrt(s1 + g * g) + 1e-10));
}

TEST_CASE("float parameters take the same step") {
    tensor<float> p(xt::xarray<float>{1.0f, -2.0f}, true);
    optim::adam<float> opt({p}, {0.01});
    p.zero_grad();
    sum(p * tensor<float>(xt::xarray<float>{0.5f, 0.25f})).backward();
    reset_tape<float>();
    opt.step();
    CHECK(p.value()(0) == doctest::Approx(0.99).epsilon(1e-6));
    CHECK(p.value()(1) == doctest::Approx(-2.01).epsilon(1e-6));
}
