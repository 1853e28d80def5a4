// A full Hessian with functional::hessian (docs/higher_order.md): one recorded
// gradient, then one reverse pass over it per input element, all inside the call,
// which leaves the tape as it found it. Checked against the closed form.
//
// f(x) = sum(x^3) + (sum x)^2:  grad_i = 3 x_i^2 + 2 sum x,  H = diag(6 x) + 2.

#include <cmath>
#include <cstdio>

#include "autograd/functional.hpp"
#include "autograd/ops.hpp"

using namespace tapegrad;

int main() {
    const xt::xarray<double> x0{0.5, -1.0, 2.0};
    const std::size_t n = x0.size();
    // docs begin
    auto f = [](const std::vector<tensor<double>>& in) {
        tensor<double> s = sum(in[0]);
        return sum(in[0] * in[0] * in[0]) + s * s;
    };
    tensor<double> x(x0);
    xt::xarray<double> hessian = functional::hessian<double>(f, {x})[0][0].value();  // block (x, x): [3, 3]
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
    std::printf("tape nodes left after the call: %zu\n", tape<double>::current().size());
    return worst < 1e-12 && tape<double>::current().size() == 0 ? 0 : 1;
}
