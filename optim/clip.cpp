// Gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_, 1.13).

#include "optim/clip.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

namespace tapegrad::optim {

template <class T> T clip_grad_norm(const std::vector<tensor<T>>& params, T max_norm) {
    if (!(max_norm >= 0)) {
        std::ostringstream os;
        os << "clip_grad_norm: invalid max_norm " << max_norm << " (must be >= 0)";
        throw std::invalid_argument(os.str());
    }
    // As PyTorch: the norm of the per-tensor norms.
    double total_sq = 0;
    for (const auto& p : params) {
        if (!p.has_grad()) continue;
        double s = 0;
        for (T v : p.grad()) s += double(v) * double(v);
        const T n = T(std::sqrt(s));
        total_sq += double(n) * double(n);
    }
    const T total = T(std::sqrt(total_sq));
    const T coef = max_norm / (total + T(1e-6));
    if (coef < T(1))
        for (auto p : params)
            if (p.has_grad()) {
                auto& g = p.mutable_grad();
                xt::noalias(g) = g * coef;
            }
    return total;
}

template <class T> void clip_grad_value(const std::vector<tensor<T>>& params, T value) {
    if (!(value >= 0)) {
        std::ostringstream os;
        os << "clip_grad_value: invalid value " << value << " (must be >= 0)";
        throw std::invalid_argument(os.str());
    }
    for (auto p : params)
        if (p.has_grad()) {
            auto& g = p.mutable_grad();
            xt::noalias(g) = xt::clip(g, -value, value);
        }
}

template float clip_grad_norm<float>(const std::vector<tensor<float>>&, float);
template double clip_grad_norm<double>(const std::vector<tensor<double>>&, double);
template void clip_grad_value<float>(const std::vector<tensor<float>>&, float);
template void clip_grad_value<double>(const std::vector<tensor<double>>&, double);

}  // namespace tapegrad::optim
