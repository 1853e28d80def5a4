#include "optim/lr_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace tapegrad::optim {

step_decay::step_decay(double base, double gamma, std::size_t step_size)
    : base_(base), gamma_(gamma), step_size_(step_size) {
    if (step_size == 0) throw std::invalid_argument("step_decay: step_size must be at least 1, got 0");
}

double step_decay::lr_at(std::size_t step) const {
    return base_ * std::pow(gamma_, static_cast<double>(step / step_size_));
}

double exponential_decay::lr_at(std::size_t step) const { return base_ * std::pow(gamma_, static_cast<double>(step)); }

cosine_decay::cosine_decay(double base, std::size_t span) : base_(base), span_(span) {
    if (span == 0) throw std::invalid_argument("cosine_decay: span must be at least 1 step, got 0");
}

double cosine_decay::lr_at(std::size_t step) const {
    const double t = std::min(1.0, static_cast<double>(step) / static_cast<double>(span_));
    return base_ * (0.5 * (1 + std::cos(M_PI * t)));
}

double linear_warmup_factor(std::size_t step, std::size_t steps) {
    return step < steps ? static_cast<double>(step + 1) / static_cast<double>(steps) : 1.0;
}

warmup::warmup(std::shared_ptr<const lr_schedule> inner, std::size_t steps) : inner_(std::move(inner)), steps_(steps) {
    if (!inner_) throw std::invalid_argument("warmup: the schedule after the warm-up is null");
}

double warmup::lr_at(std::size_t step) const {
    if (step < steps_) return inner_->lr_at(0) * linear_warmup_factor(step, steps_);
    return inner_->lr_at(step - steps_);
}

}  // namespace tapegrad::optim
