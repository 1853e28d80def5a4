// A full Hessian from two reverse passes (docs/higher_order.md): the first
// gradient is recorded (create_graph), then each row of the Hessian is the
// gradient of one component of it. Checked against the closed form.
//
// f(x) = sum(x^3) + (sum x)^2:  grad_i = 3 x_i^2 + 2 sum x,  H = diag(6 x) + 2.

#include <cmath>
#include <cstdio>

#include "autograd/ops.hpp"

using namespace tapegrad;

int main() {
    const xt::xarray<double> x0{0.5, -1.0, 2.0};
    const std::size_t n = x0.size();
    auto& tp = tape<double>::current();
    // docs begin
    tensor<double> x(x0, true);
    tensor<double> s = sum(x);
    tensor<double> f = sum(x * x * x) + s * s;
    tensor<double> g = tp.gradient(f, {x}, {/*create_graph=*/true})[0];  // recorded: differentiable again
    xt::xarray<double> hessian = xt::zeros<double>({n, n});
    for (std::size_t i = 0; i < n; ++i) {
        xt::xarray<double> e = xt::zeros<double>({n});
        e(i) = 1;
        tensor<double> gi = sum(g * tensor<double>(e));  // the i-th component of the gradient
        tensor<double> row = tp.gradient(gi, {x})[0];    // d gi / dx: row i of the Hessian
        for (std::size_t j = 0; j < n; ++j) hessian(i, j) = row.value()(j);
    }
    // docs end
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            const double exact = (i == j ? 6 * x0(i) : 0.0) + 2;
            worst = std::max(worst, std::abs(hessian(i, j) - exact));
            std::printf("%8.3f", hessian(i, j));
        }
        std::printf("\n");
    }
    std::printf("max |H - closed form| = %.3g\n", worst);
    return worst < 1e-12 ? 0 : 1;
}
