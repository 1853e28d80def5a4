// A custom op whose backward is written with tensor ops (docs/custom_ops.md):
// swish(x) = x sigmoid(x). It is twice differentiable, and check_custom_op runs
// gradcheck and gradgradcheck on it. The second derivative is checked against
// its closed form too.

#include <cmath>
#include <cstdio>

#include <xtensor/xmath.hpp>

#include "autograd/function.hpp"
#include "autograd/ops.hpp"

using namespace tapegrad;

int main() {
    // docs begin
    custom_op<double> swish("swish");
    swish.forward([](auto& a) { a.y() = a.x(0) / (1.0 + xt::exp(-a.x(0))); })
        .backward_tensors([](auto& a) {  // d/dx x s(x) = s + x s (1 - s)
            tensor<double> s = sigmoid(a.x(0));
            a.set_grad(0, a.gy() * (s + a.x(0) * s * (1.0 - s)));
        });

    custom_op_report report = check_custom_op(swish, std::vector<shape_t>{{3, 4}});
    std::printf("%s", report.table().c_str());

    tensor<double> x(xt::xarray<double>{-2.0, 0.0, 1.5}, true);
    tensor<double> g = tape<double>::current().gradient(sum(swish({x})), {x}, {true, true})[0];
    tensor<double> gg = tape<double>::current().gradient(sum(g), {x})[0];  // through the tensor-op backward
    // docs end
    double worst = 0;
    for (std::size_t i = 0; i < 3; ++i) {
        const double v = x.value()(i), s = 1 / (1 + std::exp(-v));
        const double exact = s * (1 - s) * (2 + v * (1 - 2 * s));  // d2/dx2 x s(x)
        worst = std::max(worst, std::abs(gg.value()(i) - exact));
        std::printf("x %5.2f  swish' %.6f  swish'' %.6f\n", v, g.value()(i), gg.value()(i));
    }
    std::printf("max |swish'' - closed form| = %.3g\n", worst);
    return report.passed() && worst < 1e-12 ? 0 : 1;
}
