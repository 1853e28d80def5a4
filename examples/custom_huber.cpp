// A custom op whose backward is written by hand on plain values (docs/custom_ops.md):
// the Huber loss with its threshold as a typed parameter and a mask saved by the
// forward. Such an op is differentiable once; a second derivative through it is a
// clear error that names the op. check_custom_op gradchecks it, and the op trains.

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include <xtensor/xmath.hpp>

#include "autograd/function.hpp"
#include "autograd/ops.hpp"

using namespace tapegrad;

int main() {
    // docs begin
    struct huber_params { double delta = 1.0; };
    struct huber_saved { std::vector<bool> quadratic; double delta = 0; };

    // y = sum h(r), h(r) = r^2 / 2 for |r| <= delta, else delta (|r| - delta / 2);
    // dy/dr = r inside, delta sign(r) outside
    custom_op<double, huber_saved, huber_params> huber("huber");
    huber.forward([](auto& a) {
             const auto& r = a.x(0);
             auto& s = a.saved();
             s.delta = a.params().delta;
             s.quadratic.resize(r.size());
             double total = 0;
             for (std::size_t i = 0; i < r.size(); ++i) {
                 const double v = r.data()[i];
                 s.quadratic[i] = std::abs(v) <= s.delta;
                 total += s.quadratic[i] ? 0.5 * v * v : s.delta * (std::abs(v) - 0.5 * s.delta);
             }
             a.y() = xt::xarray<double>(total);
         })
        .backward_values([](auto& a) {
            const auto& r = a.x(0);
            const auto& s = a.saved();
            const double gy = a.gy()();
            double* g = a.grad(0).data();
            for (std::size_t i = 0; i < r.size(); ++i) {
                const double v = r.data()[i];
                g[i] = gy * (s.quadratic[i] ? v : (v > 0 ? s.delta : -s.delta));
            }
        });

    std::printf("%s", check_custom_op(huber, std::vector<shape_t>{{8}}, huber_params{0.5}).table().c_str());

    // Fit w in y = w x to data with one outlier: Huber keeps w near the inliers' 2.
    const tensor<double> x(xt::xarray<double>{1, 2, 3, 4, 5}), y(xt::xarray<double>{2, 4, 6, 8, 100});
    tensor<double> w(xt::xarray<double>{0.0}, true);
    for (int step = 0; step < 200; ++step) {
        huber({w * x - y}, huber_params{1.0}).backward();
        w.mutable_value() -= 0.05 * w.grad();
        w.zero_grad();
        reset_tape<double>();
    }
    // docs end
    std::printf("w = %.4f (least squares would give %.4f)\n", w.value()(0), (2 + 8 + 18 + 32 + 500) / 55.0);
    bool refused = false;
    try {
        tensor<double> v(xt::xarray<double>{0.3, -2.0}, true);
        tensor<double> g = tape<double>::current().gradient(huber({v}), {v}, {true, true})[0];
    } catch (const std::logic_error& e) {
        refused = true;
        std::printf("second derivative: %s\n", e.what());
    }
    reset_tape<double>();
    return refused && std::abs(w.value()(0) - 2.0) < 0.5 ? 0 : 1;
}
