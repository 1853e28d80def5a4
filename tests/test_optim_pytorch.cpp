// Every optimizer and schedule against torch.optim 1.13.1, step for step, in
// float64: the fixtures come from scripts/make_optim_fixtures.py (see there for
// the problem). Each case file names its optimizer and scheduler with options.

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include <doctest/doctest.h>
#include <xtensor/xadapt.hpp>

#include "optim/optimizer.hpp"
#include "optim/schedulers.hpp"
#include "tests/check.hpp"
#include "tests/fixture_io.hpp"

using namespace tapegrad;

namespace {

const std::string dir = std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/optim/";

using tapegrad::testing::lines_of;
using tapegrad::testing::numbers;

struct problem {
    std::vector<double> init, a, b, c;
};

problem load_problem() {
    problem p;
    for (auto& l : lines_of(dir + "problem.txt")) {
        std::istringstream is(l);
        std::string key;
        is >> key;
        auto v = numbers(is);
        if (key == "init") p.init = v;
        else if (key == "a") p.a = v;
        else if (key == "b") p.b = v;
        else if (key == "c") p.c = v;
    }
    REQUIRE(p.init.size() == 11);
    return p;
}

// "kind k=v k=v" -> kind and a map the builders consume (leftover keys fail the test).
struct spec {
    std::string kind;
    std::map<std::string, double> o;
    double take(const std::string& k, double dflt) {
        auto it = o.find(k);
        if (it == o.end()) return dflt;
        double v = it->second;
        o.erase(it);
        return v;
    }
};

spec parse_spec(const std::string& line) {
    std::istringstream is(line);
    spec s;
    std::string word;
    is >> word >> s.kind;
    for (std::string kv; is >> kv;) {
        auto eq = kv.find('=');
        s.o[kv.substr(0, eq)] = std::stod(kv.substr(eq + 1));
    }
    return s;
}

std::unique_ptr<optim::optimizer<double>> make_optimizer(spec s, std::vector<tensor<double>> ps) {
    std::unique_ptr<optim::optimizer<double>> opt;
    if (s.kind == "sgd") {
        optim::sgd_options o;
        o.lr = s.take("lr", o.lr), o.momentum = s.take("momentum", 0), o.dampening = s.take("dampening", 0);
        o.weight_decay = s.take("weight_decay", 0), o.nesterov = s.take("nesterov", 0) != 0;
        opt = std::make_unique<optim::sgd<double>>(ps, o);
    } else if (s.kind == "adam" || s.kind == "adamw") {
        optim::adam_options o;
        optim::adamw_options w;
        o.lr = w.lr = s.take("lr", o.lr);
        o.beta1 = w.beta1 = s.take("beta1", o.beta1);
        o.beta2 = w.beta2 = s.take("beta2", o.beta2);
        o.eps = w.eps = s.take("eps", o.eps);
        o.amsgrad = w.amsgrad = s.take("amsgrad", 0) != 0;
        o.weight_decay = s.take("weight_decay", s.kind == "adam" ? 0.0 : 0.01);
        w.weight_decay = o.weight_decay;
        if (s.kind == "adam") opt = std::make_unique<optim::adam<double>>(ps, o);
        else opt = std::make_unique<optim::adamw<double>>(ps, w);
    } else if (s.kind == "rmsprop") {
        optim::rmsprop_options o;
        o.lr = s.take("lr", o.lr), o.alpha = s.take("alpha", o.alpha), o.eps = s.take("eps", o.eps);
        o.weight_decay = s.take("weight_decay", 0), o.momentum = s.take("momentum", 0);
        o.centered = s.take("centered", 0) != 0;
        opt = std::make_unique<optim::rmsprop<double>>(ps, o);
    } else if (s.kind == "adagrad") {
        optim::adagrad_options o;
        o.lr = s.take("lr", o.lr), o.lr_decay = s.take("lr_decay", 0), o.weight_decay = s.take("weight_decay", 0);
        o.initial_accumulator_value = s.take("initial_accumulator_value", 0), o.eps = s.take("eps", o.eps);
        opt = std::make_unique<optim::adagrad<double>>(ps, o);
    }
    REQUIRE_MESSAGE(opt, "unknown optimizer " << s.kind);
    REQUIRE_MESSAGE(s.o.empty(), "option not understood: " << (s.o.empty() ? "" : s.o.begin()->first));
    return opt;
}

std::unique_ptr<optim::scheduler<double>> make_scheduler(spec s, optim::optimizer<double>& opt) {
    std::unique_ptr<optim::scheduler<double>> sch;
    if (s.kind == "none") return sch;
    if (s.kind == "step_lr")
        sch = std::make_unique<optim::step_lr<double>>(opt, int(s.take("step_size", 0)), s.take("gamma", 0.1));
    else if (s.kind == "exponential_lr")
        sch = std::make_unique<optim::exponential_lr<double>>(opt, s.take("gamma", 0));
    else if (s.kind == "cosine_annealing_lr")
        sch = std::make_unique<optim::cosine_annealing_lr<double>>(opt, int(s.take("t_max", 0)), s.take("eta_min", 0));
    else if (s.kind == "linear_warmup") {
        const double sf = s.take("start_factor", 1.0 / 3), ef = s.take("end_factor", 1);
        sch = std::make_unique<optim::linear_warmup<double>>(opt, sf, ef, int(s.take("total_iters", 5)));
    }
    REQUIRE_MESSAGE(sch, "unknown scheduler " << s.kind);
    REQUIRE_MESSAGE(s.o.empty(), "option not understood: " << (s.o.empty() ? "" : s.o.begin()->first));
    return sch;
}

// Runs one case; returns the largest relative error over all steps and values.
double run_case(const std::string& name) {
    const problem pr = load_problem();
    auto lines = lines_of(dir + name + ".txt");
    REQUIRE(lines.size() == 2 + 21);
    tensor<double> p0(xt::xarray<double>(xt::adapt(std::vector<double>(pr.init.begin(), pr.init.begin() + 5))), true);
    xt::xarray<double> v1 = xt::adapt(std::vector<double>(pr.init.begin() + 5, pr.init.end()));
    v1.reshape({2, 3});
    tensor<double> p1(v1, true);
    auto opt = make_optimizer(parse_spec(lines[0]), {p0, p1});
    auto sch = make_scheduler(parse_spec(lines[1]), *opt);
    double worst = 0;
    for (std::size_t step = 0; step <= 20; ++step) {
        if (step > 0) {
            // grad = a (p - c) + b p^3, set as .grad() exactly: d/dp sum(p * g) = g
            std::vector<double> flat(p0.value().begin(), p0.value().end());
            flat.insert(flat.end(), p1.value().begin(), p1.value().end());
            std::vector<double> g(11);
            for (std::size_t k = 0; k < 11; ++k)
                g[k] = pr.a[k] * (flat[k] - pr.c[k]) + pr.b[k] * flat[k] * flat[k] * flat[k];
            opt->zero_grad();
            xt::xarray<double> g0 = xt::adapt(std::vector<double>(g.begin(), g.begin() + 5));
            xt::xarray<double> g1 = xt::adapt(std::vector<double>(g.begin() + 5, g.end()));
            g1.reshape({2, 3});
            (sum(p0 * tensor<double>(g0)) + sum(p1 * tensor<double>(g1))).backward();
            reset_tape<double>();
            opt->step();
            if (sch) sch->step();
        }
        std::istringstream is(lines[2 + step]);
        auto ref = numbers(is);
        REQUIRE(ref.size() == 13);
        REQUIRE(ref[0] == double(step));
        std::vector<double> got{opt->lr()};
        got.insert(got.end(), p0.value().begin(), p0.value().end());
        got.insert(got.end(), p1.value().begin(), p1.value().end());
        for (std::size_t k = 0; k < got.size(); ++k) {
            const double rel = std::abs(got[k] - ref[k + 1]) / std::abs(ref[k + 1]);
            worst = std::max(worst, rel);
            if (!(rel <= 1e-10)) {
                FAIL_CHECK(name << " step " << step << (k == 0 ? " lr" : " value " + std::to_string(k - 1)) << ": got "
                                << got[k] << ", torch " << ref[k + 1] << " (relative error " << rel << ")");
            }
        }
    }
    return worst;
}

}  // namespace

TEST_CASE("optimizers and schedules match torch.optim 1.13.1 for 20 steps within 1e-10") {
    for (const std::string name :
         {"sgd_plain", "sgd_momentum", "sgd_dampening", "sgd_nesterov", "sgd_weight_decay", "adam", "adam_weight_decay",
          "adam_amsgrad", "adamw", "adamw_amsgrad", "rmsprop", "rmsprop_momentum", "rmsprop_centered", "adagrad",
          "adagrad_decay", "sched_step_lr", "sched_exponential_lr", "sched_cosine_annealing_lr", "sched_linear_warmup"}) {
        INFO("case ", name);
        const double worst = run_case(name);
        MESSAGE(name << ": max relative error " << worst);
        CHECK(worst <= 1e-10);
    }
}
