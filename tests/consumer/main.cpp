#include <iostream>

#include <autograd/ops.hpp>

int main() {
    using namespace tapegrad;
    tensor<double> x(xt::xarray<double>{1, 2, 3}, true);
    sum(x * x).backward();
    const auto& g = x.grad();
    std::cout << "consumer: d/dx sum(x^2) = [" << g(0) << ", " << g(1) << ", " << g(2) << "]\n";
    return g(2) == 6.0 ? 0 : 1;
}
