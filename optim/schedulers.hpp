#pragma once
// Learning-rate schedules with PyTorch 1.13 semantics: construction applies
// epoch 0 (LinearLR scales the rate right away), then step() is called once per
// epoch after the optimizer's steps, and updates the optimizer's lr in the same
// chained (multiplicative) form PyTorch uses, so rates match it bit for bit.

#include <string>

#include "optim/optimizer.hpp"

namespace tapegrad::optim {

/// Base of every schedule: owns the epoch counter, drives optimizer<T>::set_lr.
template <class T> class scheduler {
  public:
    /// Remembers the optimizer's current lr as the base lr.
    explicit scheduler(optimizer<T>& opt);
    virtual ~scheduler() = default;
    /// Advance one epoch and set the optimizer's lr.
    void step();
    /// The epoch of the current lr (0 after construction).
    int last_epoch() const { return last_epoch_; }
    /// Resume: set the epoch counter without touching the optimizer's lr (restore
    /// the lr with optimizer::load_state).
    void set_last_epoch(int epoch) { last_epoch_ = epoch; }
    /// The lr at construction.
    double base_lr() const { return base_lr_; }
    /// The optimizer's current lr.
    double lr() const { return opt_.lr(); }

  protected:
    /// The lr for epoch last_epoch_, from the current lr (PyTorch's get_lr).
    virtual double next_lr() const = 0;
    /// PyTorch's constructor-time step to epoch 0; derived constructors call it.
    void initial_step();

    optimizer<T>& opt_;
    double base_lr_;
    int last_epoch_ = -1;
};

/// StepLR: lr *= gamma every `step_size` epochs.
template <class T> class step_lr : public scheduler<T> {
  public:
    /// step_size >= 1.
    step_lr(optimizer<T>& opt, int step_size, double gamma = 0.1);

  protected:
    double next_lr() const override;

  private:
    int step_size_;
    double gamma_;
};

/// ExponentialLR: lr *= gamma every epoch.
template <class T> class exponential_lr : public scheduler<T> {
  public:
    /// Decay by gamma per epoch.
    exponential_lr(optimizer<T>& opt, double gamma);

  protected:
    double next_lr() const override;

  private:
    double gamma_;
};

/// CosineAnnealingLR: eta_min + (base - eta_min)(1 + cos(pi t / T_max)) / 2,
/// in PyTorch's recursive form (restarting its cosine after T_max).
template <class T> class cosine_annealing_lr : public scheduler<T> {
  public:
    /// t_max >= 1.
    cosine_annealing_lr(optimizer<T>& opt, int t_max, double eta_min = 0);

  protected:
    double next_lr() const override;

  private:
    int t_max_;
    double eta_min_;
};

/// Linear warm-up (torch LinearLR): the factor goes linearly from start_factor
/// to end_factor over total_iters epochs, then stays.
template <class T> class linear_warmup : public scheduler<T> {
  public:
    /// 0 < start_factor <= 1, 0 <= end_factor <= 1, total_iters >= 1.
    linear_warmup(optimizer<T>& opt, double start_factor = 1.0 / 3, double end_factor = 1.0, int total_iters = 5);

  protected:
    double next_lr() const override;

  private:
    double start_, end_;
    int total_;
};

extern template class scheduler<float>;
extern template class scheduler<double>;
extern template class step_lr<float>;
extern template class step_lr<double>;
extern template class exponential_lr<float>;
extern template class exponential_lr<double>;
extern template class cosine_annealing_lr<float>;
extern template class cosine_annealing_lr<double>;
extern template class linear_warmup<float>;
extern template class linear_warmup<double>;

}  // namespace tapegrad::optim
