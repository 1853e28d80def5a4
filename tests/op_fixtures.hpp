#pragma once
// Checking ops against the torch fixtures of scripts/make_op_fixtures.py: each case
// names a function; the test maps names to the same function built from tapegrad
// ops and compares values and the gradients of sum(seed * f) to 1e-10 (relative to
// max(1, |reference|)). Every case in a file must be known, and every known name present.

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xarray.hpp>

#include "autograd/ops.hpp"
#include "tests/fixture_io.hpp"

namespace tapegrad::testing {

struct op_case {
    std::string name;
    std::vector<std::size_t> ints;
    std::vector<xt::xarray<double>> in;
    xt::xarray<double> out, seed;
    std::map<std::size_t, xt::xarray<double>> grad;
    bool has_seed = false;
};

inline xt::xarray<double> read_array(std::istringstream& is) {
    std::size_t rank;
    is >> rank;
    shape_t shape(rank);
    for (auto& d : shape) is >> d;
    std::vector<double> v = numbers(is);
    xt::xarray<double> a(shape);
    REQUIRE_MESSAGE(v.size() == a.size(), "fixture array of shape " << shape_str(shape) << " has " << v.size() << " values");
    std::copy(v.begin(), v.end(), a.begin());
    return a;
}

inline std::vector<op_case> load_op_cases(const std::string& group) {
    const std::string path = std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/ops/" + group + ".txt";
    std::vector<op_case> cases;
    for (const auto& l : lines_of(path)) {
        std::istringstream is(l);
        std::string key;
        is >> key;
        if (key == "case") {
            cases.emplace_back();
            is >> cases.back().name;
            continue;
        }
        REQUIRE_MESSAGE(!cases.empty(), path << ": line before the first case: " << l);
        op_case& c = cases.back();
        if (key == "ints") for (long long v; is >> v;) c.ints.push_back(static_cast<std::size_t>(v));
        else if (key == "in") c.in.push_back(read_array(is));
        else if (key == "out") c.out = read_array(is);
        else if (key == "seed") c.seed = read_array(is), c.has_seed = true;
        else if (key == "grad") {
            std::size_t i;
            is >> i;
            c.grad[i] = read_array(is);
        } else REQUIRE_MESSAGE(key == "end", path << ": unknown line " << l);
    }
    return cases;
}

using fixture_fn = std::function<tensor<double>(const std::vector<tensor<double>>&, const std::vector<std::size_t>&)>;

/// Largest |got - want| / max(1, |want|) over a and b; CHECKs shapes.
inline double compare(const std::string& what, const xt::xarray<double>& got, const xt::xarray<double>& want) {
    INFO(what);
    CHECK(shape_str(got.shape()) == shape_str(want.shape()));
    if (got.size() != want.size()) return INFINITY;
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double w = want.data()[i], g = got.data()[i];
        const double d = std::abs(g - w) / std::max(1.0, std::abs(w));
        worst = std::max(worst, std::isnan(d) ? INFINITY : d);
    }
    CHECK_MESSAGE(worst <= 1e-10, what << ": largest relative difference " << worst);
    return worst;
}

/// Checks every case of `group` against `fns`; returns the largest difference seen.
inline double check_op_fixtures(const std::string& group, const std::map<std::string, fixture_fn>& fns) {
    const auto cases = load_op_cases(group);
    std::set<std::string> seen;
    double worst = 0;
    for (const auto& c : cases) {
        CAPTURE(c.name);
        seen.insert(c.name);
        auto it = fns.find(c.name);
        CHECK_MESSAGE(it != fns.end(), "fixture case " << c.name << " has no tapegrad function in the test");
        if (it == fns.end()) continue;
        reset_tape<double>();
        std::vector<tensor<double>> in;
        for (std::size_t i = 0; i < c.in.size(); ++i) in.emplace_back(c.in[i], c.grad.count(i) > 0);
        tensor<double> y = it->second(in, c.ints);
        worst = std::max(worst, compare(c.name + " value", y.value(), c.out));
        if (!c.has_seed) continue;
        std::vector<tensor<double>> wrt;
        for (const auto& g : c.grad) wrt.push_back(in[g.first]);
        auto grads = tape<double>::current().gradient(sum(y * tensor<double>(c.seed)), wrt);
        std::size_t k = 0;
        for (const auto& g : c.grad)
            worst = std::max(worst, compare(c.name + " gradient of input " + std::to_string(g.first), grads[k++].value(), g.second));
    }
    for (const auto& f : fns) CHECK_MESSAGE(seen.count(f.first), "no fixture case " << f.first << " in " << group << ".txt");
    MESSAGE(group << ": " << cases.size() << " torch cases, largest relative difference " << worst);
    return worst;
}

}  // namespace tapegrad::testing
