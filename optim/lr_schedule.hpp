#pragma once
// Closed-form learning-rate schedules: the rate is a function of a step count
// alone (lr_at(step)), with no state to save, so a resumed run continues the
// exact same curve. What a "step" is belongs to the caller: the trainer counts
// batches for warm-up and cosine, epochs for step and exponential decay.
// (optim/schedulers.hpp has PyTorch's stateful, chained schedulers.)
//
//     optim::warmup lr(std::make_shared<optim::cosine_decay>(0.01, total - 100), 100);
//     opt.set_lr(lr.lr_at(step));   // every batch

#include <cstddef>
#include <memory>

namespace tapegrad::optim {

/// A learning rate as a function of the step count.
class lr_schedule {
  public:
    virtual ~lr_schedule() = default;
    /// The learning rate at step `step` (0-based).
    virtual double lr_at(std::size_t step) const = 0;
};

/// The same rate at every step.
class constant_lr : public lr_schedule {
  public:
    /// Always `lr`.
    explicit constant_lr(double lr) : lr_(lr) {}
    double lr_at(std::size_t) const override { return lr_; }

  private:
    double lr_;
};

/// base * gamma^(step / step_size) (integer division: decays every step_size steps).
class step_decay : public lr_schedule {
  public:
    /// step_size >= 1; throws std::invalid_argument otherwise.
    step_decay(double base, double gamma, std::size_t step_size);
    double lr_at(std::size_t step) const override;

  private:
    double base_, gamma_;
    std::size_t step_size_;
};

/// base * gamma^step.
class exponential_decay : public lr_schedule {
  public:
    /// Decay by `gamma` per step.
    exponential_decay(double base, double gamma) : base_(base), gamma_(gamma) {}
    double lr_at(std::size_t step) const override;

  private:
    double base_, gamma_;
};

/// Cosine annealing from base to 0 over `span` steps, then 0:
/// base * (1 + cos(pi * min(1, step / span))) / 2.
class cosine_decay : public lr_schedule {
  public:
    /// span >= 1; throws std::invalid_argument otherwise.
    cosine_decay(double base, std::size_t span);
    double lr_at(std::size_t step) const override;

  private:
    double base_;
    std::size_t span_;
};

/// The factor of a linear warm-up over `steps` steps: (step + 1) / steps while
/// step < steps, then 1 (always 1 when steps is 0).
double linear_warmup_factor(std::size_t step, std::size_t steps);

/// Linear warm-up, then `inner` from its own step 0: lr_at(s) is
/// inner.lr_at(0) * linear_warmup_factor(s, steps) for s < steps, and
/// inner.lr_at(s - steps) after.
class warmup : public lr_schedule {
  public:
    /// `inner` must not be null; `steps` may be 0 (no warm-up).
    warmup(std::shared_ptr<const lr_schedule> inner, std::size_t steps);
    double lr_at(std::size_t step) const override;

  private:
    std::shared_ptr<const lr_schedule> inner_;
    std::size_t steps_;
};

}  // namespace tapegrad::optim
