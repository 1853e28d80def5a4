// Deterministic data for the cases: every engine starts from these same numbers.

#include "benchmarks/cases.hpp"

#include <cmath>
#include <random>

namespace tapegrad::bench {

mlp_problem make_problem(const mlp_case& c, std::uint64_t seed) {
    mlp_problem p;
    p.spec = c;
    std::mt19937_64 rng(seed);
    for (std::size_t l = 0; l + 1 < c.sizes.size(); ++l) {
        const std::size_t in = c.sizes[l], out = c.sizes[l + 1];
        const float bound = 1.0f / std::sqrt(static_cast<float>(in));  // torch.nn.Linear's default
        std::uniform_real_distribution<float> u(-bound, bound);
        std::vector<float> w(out * in), b(out);
        for (auto& v : w) v = u(rng);
        for (auto& v : b) v = u(rng);
        p.w.push_back(std::move(w));
        p.b.push_back(std::move(b));
    }
    const std::size_t in = c.sizes.front(), classes = c.sizes.back();
    std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
    p.x.resize(c.batch * in);
    for (auto& v : p.x) v = pixel(rng);
    std::uniform_int_distribution<std::size_t> label(0, classes - 1);
    p.labels.resize(c.batch);
    p.onehot.assign(c.batch * classes, 0.0f);
    for (std::size_t i = 0; i < c.batch; ++i) {
        p.labels[i] = label(rng);
        p.onehot[i * classes + p.labels[i]] = 1.0f;
    }
    return p;
}

opchain_problem make_opchain(const opchain_case& c, std::uint64_t seed) {
    opchain_problem p;
    p.spec = c;
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f), near_one(0.9f, 1.1f);
    auto fill = [&](std::vector<float>& v, auto& dist) {
        v.resize(c.width);
        for (auto& e : v) e = dist(rng);
    };
    fill(p.x, u);
    fill(p.a, near_one);
    fill(p.b, u);
    fill(p.c, u);
    return p;
}

conv_problem make_conv(const conv_case& c, std::uint64_t seed) {
    conv_problem p;
    p.spec = c;
    std::mt19937_64 rng(seed);
    const float bound = 1.0f / std::sqrt(static_cast<float>(c.in * 9));  // torch.nn.Conv2d's default
    std::uniform_real_distribution<float> u(-bound, bound), x(-1.0f, 1.0f);
    p.w.resize(c.out * c.in * 9);
    p.b.resize(c.out);
    p.x.resize(c.batch * c.in * c.size * c.size);
    for (auto& v : p.w) v = u(rng);
    for (auto& v : p.b) v = u(rng);
    for (auto& v : p.x) v = x(rng);
    return p;
}

cnn_problem make_cnn(const cnn_case& c, std::uint64_t seed) {
    cnn_problem p;
    p.spec = c;
    std::mt19937_64 rng(seed);
    auto init = [&](std::vector<float>& w, std::vector<float>& b, std::size_t out, std::size_t fan_in) {
        const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
        std::uniform_real_distribution<float> u(-bound, bound);
        w.resize(out * fan_in);
        b.resize(out);
        for (auto& v : w) v = u(rng);
        for (auto& v : b) v = u(rng);
    };
    init(p.w1, p.b1, c.c1, 9);
    init(p.w2, p.b2, c.c2, c.c1 * 9);
    init(p.w3, p.b3, c.hidden, c.flat());
    init(p.w4, p.b4, c.classes, c.hidden);
    std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
    p.x.resize(c.batch * c.size * c.size);
    for (auto& v : p.x) v = pixel(rng);
    std::uniform_int_distribution<std::size_t> label(0, c.classes - 1);
    p.labels.resize(c.batch);
    for (auto& l : p.labels) l = label(rng);
    return p;
}

}  // namespace tapegrad::bench
