// Optimizer options validation, skipped parameters, zero_grad, and saving and
// loading of per-parameter state (all or nothing).

#include <cstring>

#include <doctest/doctest.h>

#include "optim/optimizer.hpp"
#include "tests/check.hpp"

using namespace tapegrad;

namespace {

void set_grad(tensor<double>& p, const xt::xarray<double>& g) {
    p.zero_grad();
    sum(p * tensor<double>(g)).backward();
    reset_tape<double>();
}

template <class F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(nothing thrown)";
}

std::vector<tensor<double>> params() {
    return {tensor<double>(xt::xarray<double>{1.0, -2.0, 0.5}, true),
            tensor<double>(xt::xarray<double>{{0.3, 0.1}, {-0.7, 2.0}}, true)};
}

// Steps `opt` with gradients that depend on the step number.
void train(optim::optimizer<double>& opt, std::vector<tensor<double>>& ps, int from, int to) {
    for (int k = from; k < to; ++k) {
        set_grad(ps[0], xt::xarray<double>{0.5 + k, -0.25, 0.1 * k});
        set_grad(ps[1], xt::xarray<double>{{0.2, -0.3 * k}, {0.05, 1.0}});
        opt.step();
    }
}

}  // namespace

TEST_CASE("options are validated with messages naming the optimizer and the option") {
    auto ps = params();
    CHECK(error_of([&] { optim::adam<double>(ps, {-1}); }) == "adam: invalid learning rate -1 (must be >= 0)");
    optim::adam_options a;
    a.beta1 = 1;
    CHECK(error_of([&] { optim::adam<double>(ps, a); }) == "adam: invalid beta1 1 (must be in [0, 1))");
    a = {};
    a.beta2 = -0.1;
    CHECK(error_of([&] { optim::adam<double>(ps, a); }) == "adam: invalid beta2 -0.1 (must be in [0, 1))");
    a = {};
    a.eps = -1e-8;
    CHECK(error_of([&] { optim::adam<double>(ps, a); }) == "adam: invalid epsilon -1e-08 (must be >= 0)");
    optim::adamw_options w;
    w.weight_decay = -0.01;
    CHECK(error_of([&] { optim::adamw<double>(ps, w); }) == "adamw: invalid weight_decay -0.01 (must be >= 0)");
    optim::sgd_options s;
    s.nesterov = true;
    CHECK(error_of([&] { optim::sgd<double>(ps, s); }) ==
          "sgd: nesterov momentum requires momentum > 0 and dampening == 0 (got momentum 0, dampening 0)");
    s = {};
    s.momentum = -0.9;
    CHECK(error_of([&] { optim::sgd<double>(ps, s); }) == "sgd: invalid momentum -0.9 (must be >= 0)");
    optim::rmsprop_options r;
    r.alpha = 1.5;
    CHECK(error_of([&] { optim::rmsprop<double>(ps, r); }) == "rmsprop: invalid alpha 1.5 (must be in [0, 1])");
    optim::adagrad_options g;
    g.lr_decay = -1;
    CHECK(error_of([&] { optim::adagrad<double>(ps, g); }) == "adagrad: invalid lr_decay -1 (must be >= 0)");
    CHECK(error_of([&] { optim::sgd<double>({}, {}); }) == "sgd: got an empty parameter list (pass model.parameters())");
    CHECK(error_of([&] { optim::sgd<double>({ps[0], ps[0]}, {}); }) == "sgd: parameter 1 appears twice in the list");
    CHECK(error_of([&] { optim::sgd<double>({tensor<double>(xt::xarray<double>{1.0})}, {}); }) ==
          "sgd: parameter 0 does not require grad");
    auto y = ps[0] * 2.0;
    CHECK(error_of([&] { optim::sgd<double>({y}, {}); }) ==
          "sgd: parameter 0 is not a leaf (an op result cannot be optimised)");
    reset_tape<double>();
    optim::sgd<double> opt(ps, {});
    CHECK(error_of([&] { opt.set_lr(-0.5); }) == "sgd: invalid learning rate -0.5 (must be >= 0)");
}

TEST_CASE("parameters without a gradient are skipped; zero_grad clears all") {
    auto ps = params();
    optim::adam<double> opt(ps, {0.1});
    const auto before = ps[1].value();
    set_grad(ps[0], xt::xarray<double>{1, 1, 1});
    opt.step();
    CHECK(ps[1].value() == before);
    CHECK(opt.steps(0) == 1);
    CHECK(opt.steps(1) == 0);
    opt.zero_grad();
    CHECK(!ps[0].has_grad());
}

TEST_CASE("save_state/load_state resume exactly") {
    auto make = [](std::vector<tensor<double>> ps) {
        optim::adam_options o;
        o.lr = 0.05, o.amsgrad = true, o.weight_decay = 0.01;
        return std::make_unique<optim::adam<double>>(ps, o);
    };
    auto ps = params();
    auto opt = make(ps);
    train(*opt, ps, 0, 3);
    opt->set_lr(0.02);
    opt->save_state("optim_state_adam.npz");
    auto names = [](const optim::optimizer<double>& o) {
        std::vector<std::string> n;
        for (auto& [k, a] : o.state(0)) n.push_back(k);
        return n;
    };
    CHECK(names(*opt) == std::vector<std::string>{"exp_avg", "exp_avg_sq", "max_exp_avg_sq"});

    // a copy of the parameters continues with a fresh optimizer that loads the state
    std::vector<tensor<double>> qs{tensor<double>(ps[0].value(), true), tensor<double>(ps[1].value(), true)};
    auto resumed = make(qs);
    resumed->load_state("optim_state_adam.npz");
    CHECK(resumed->lr() == 0.02);
    CHECK(resumed->steps(0) == 3);
    train(*opt, ps, 3, 6);
    train(*resumed, qs, 3, 6);
    for (std::size_t i = 0; i < ps.size(); ++i) {
        const auto &a = ps[i].value(), &b = qs[i].value();
        CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
    }
}

TEST_CASE("load_state refuses a mismatched file and changes nothing") {
    auto ps = params();
    optim::sgd_options so;
    so.momentum = 0.9;
    optim::sgd<double> sgd(ps, so);
    train(sgd, ps, 0, 2);
    sgd.save_state("optim_state_sgd.npz");

    optim::adam<double> adam(ps, {0.1});
    train(adam, ps, 0, 1);
    adam.save_state("optim_state_adam_plain.npz");
    const auto m0 = *adam.state(0)[0].second;
    CHECK(error_of([&] { adam.load_state("optim_state_sgd.npz"); }) ==
          "optim_state_sgd.npz: missing optimizer state 'adam.lr' (the file holds 'sgd.0.momentum_buffer': state of "
          "another optimizer?)");

    // amsgrad state has one more buffer per parameter than plain Adam wants
    optim::adam_options ao;
    ao.amsgrad = true;
    optim::adam<double> ams(ps, ao);
    ams.save_state("optim_state_ams.npz");
    CHECK(error_of([&] { adam.load_state("optim_state_ams.npz"); }) ==
          "optim_state_ams.npz: unexpected optimizer state 'adam.0.max_exp_avg_sq' (2 unexpected in all; saved with "
          "other options or parameters?)");

    // same kind, different parameter shapes
    std::vector<tensor<double>> other{tensor<double>(xt::xarray<double>{1.0, 2.0}, true), ps[1]};
    optim::adam<double> wrong(other, {0.1});
    CHECK(error_of([&] { wrong.load_state("optim_state_adam_plain.npz"); }) ==
          "optim_state_adam_plain.npz: optimizer state 'adam.0.exp_avg' has shape [3] but [2] is needed");
    CHECK(*adam.state(0)[0].second == m0);
    CHECK(adam.lr() == 0.1);
    CHECK(adam.steps(0) == 1);
}
