#pragma once
// Optimizers as in PyTorch 1.13 (torch.optim), step for step: the same update
// order, the same defaults, the same per-parameter state. Each update runs in
// place over the parameters' value and grad buffers, so a step allocates
// nothing (the state is allocated at construction). It is one fused pass per
// parameter (autograd/kernels/simd.hpp): every buffer is read and written once per element,
// in SIMD batches, with no temporaries.

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/detail/trace.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad::npz {
struct entry;
}

namespace tapegrad::optim {

/// Base of every optimizer: a fixed list of parameters (leaves that require
/// grad), a learning rate, per-parameter state and its save/load.
template <class T> class optimizer {
  public:
    /// `params` must be non-empty, defined leaves that require grad, no duplicates.
    /// `name` ("adam") prefixes error messages and saved state.
    optimizer(std::vector<tensor<T>> params, double lr, std::string name);
    virtual ~optimizer() = default;
    optimizer(const optimizer&) = delete;
    optimizer& operator=(const optimizer&) = delete;

    /// One update from each parameter's .grad(); parameters without a grad are skipped.
    /// Inside a compiled step (autograd/compile.hpp) every replay repeats it.
    void step();
    /// Forget every parameter's gradient (repeated by a compiled step's replays too).
    void zero_grad();
    /// The learning rate of the next step.
    double lr() const { return lr_; }
    /// Change the learning rate (schedulers do this); must be >= 0.
    void set_lr(double lr);
    /// The parameters, in construction order.
    const std::vector<tensor<T>>& params() const { return params_; }
    /// "sgd", "adam", ...
    const std::string& name() const { return name_; }
    /// Number of steps taken by parameter i (PyTorch's state['step']).
    std::int64_t steps(std::size_t i) const { return steps_.at(i); }

    /// Save lr, step counts and every state buffer to an .npz at `path`. Names are
    /// "<name>.lr", "<name>.<i>.step", "<name>.<i>.<buffer>" (e.g. "adam.0.exp_avg").
    void save_state(const std::string& path) const;
    /// Load state saved by save_state of the same optimizer kind over parameters
    /// of the same shapes. All or nothing: a missing/unexpected name, wrong shape
    /// or dtype throws npz::npz_error naming the entry and file, before anything changes.
    void load_state(const std::string& path);
    /// save_state's arrays as entries, for a caller that stores them beside
    /// other arrays in one file.
    std::vector<npz::entry> state_entries() const;
    /// load_state from entries already read; `path` names the file in errors.
    /// Besides names, shapes and dtypes, every value is checked: the learning
    /// rate and every state buffer must be finite, step counts whole numbers
    /// from 0 to 2^53.
    void load_state(std::vector<npz::entry> entries, const std::string& path);

    /// The state buffers of parameter i by name (for tests and inspection).
    std::vector<std::pair<std::string, const xt::xarray<T>*>> state(std::size_t i) const;

  protected:
    /// The update itself (what step() runs).
    virtual void update() = 0;
    /// Plain SGD a compiled step may fuse into its gemms (null for every other optimizer).
    virtual detail::sgd_fusion<T>* fusion() { return nullptr; }
    /// Called after the learning rate changed (set_lr, load_state).
    virtual void lr_changed() {}
    /// The named state buffers of parameter i (same order every call).
    virtual std::vector<std::pair<std::string, xt::xarray<T>*>> buffers(std::size_t i) = 0;
    /// Throw std::invalid_argument "<name>: invalid <what> <v> (must be <rule>)".
    void fail(const std::string& what, double v, const std::string& rule) const;

    std::vector<tensor<T>> params_;
    std::vector<std::int64_t> steps_;
    double lr_;
    std::string name_;
};

/// torch.optim.SGD options.
struct sgd_options {
    double lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0;
    bool nesterov = false;  ///< needs momentum > 0 and dampening == 0
};
/// torch.optim.Adam options.
struct adam_options {
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
    bool amsgrad = false;
};
/// torch.optim.AdamW options (decoupled weight decay, default 0.01).
struct adamw_options {
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
    bool amsgrad = false;
};
/// torch.optim.RMSprop options.
struct rmsprop_options {
    double lr = 0.01, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0;
    bool centered = false;
};
/// torch.optim.Adagrad options.
struct adagrad_options {
    double lr = 0.01, lr_decay = 0, weight_decay = 0, initial_accumulator_value = 0, eps = 1e-10;
};

/// SGD with momentum, dampening, Nesterov and (L2) weight decay. State: momentum_buffer.
template <class T> class sgd : public optimizer<T> {
  public:
    /// Validates the options (std::invalid_argument naming the bad one).
    sgd(std::vector<tensor<T>> params, sgd_options o = {});
    /// The options in use.
    const sgd_options& options() const { return o_; }

  protected:
    /// One in-place update of every parameter that has a gradient (parameters a
    /// compiled step already stepped inside its gemm only count the step).
    void update() override;
    detail::sgd_fusion<T>* fusion() override { return o_.momentum == 0 ? &fusion_ : nullptr; }
    void lr_changed() override;
    std::vector<std::pair<std::string, xt::xarray<T>*>> buffers(std::size_t i) override;

  private:
    sgd_options o_;
    std::vector<xt::xarray<T>> buf_;
    detail::sgd_fusion<T> fusion_;
};

/// Adam (and AMSGrad), L2 weight decay added to the gradient, or AdamW's
/// decoupled decay. State: exp_avg, exp_avg_sq (, max_exp_avg_sq).
template <class T> class adam : public optimizer<T> {
  public:
    /// Validates the options (std::invalid_argument naming the bad one).
    adam(std::vector<tensor<T>> params, adam_options o = {});
    /// The options in use.
    const adam_options& options() const { return o_; }

  protected:
    /// One in-place update of every parameter that has a gradient.
    void update() override;
    /// For adamw: decoupled = true, name "adamw".
    adam(std::vector<tensor<T>> params, adam_options o, bool decoupled, const char* name);
    std::vector<std::pair<std::string, xt::xarray<T>*>> buffers(std::size_t i) override;

  private:
    adam_options o_;
    bool decoupled_ = false;
    std::vector<xt::xarray<T>> m_, v_, vmax_;
};

/// AdamW: Adam with weight decay applied to the parameter (p *= 1 - lr*wd).
template <class T> class adamw : public adam<T> {
  public:
    /// Validates the options (std::invalid_argument naming the bad one).
    adamw(std::vector<tensor<T>> params, adamw_options o = {});
};

/// RMSprop, optionally centered and with momentum. State: square_avg
/// (, momentum_buffer) (, grad_avg).
template <class T> class rmsprop : public optimizer<T> {
  public:
    /// Validates the options (std::invalid_argument naming the bad one).
    rmsprop(std::vector<tensor<T>> params, rmsprop_options o = {});
    /// The options in use.
    const rmsprop_options& options() const { return o_; }

  protected:
    /// One in-place update of every parameter that has a gradient.
    void update() override;
    std::vector<std::pair<std::string, xt::xarray<T>*>> buffers(std::size_t i) override;

  private:
    rmsprop_options o_;
    std::vector<xt::xarray<T>> sq_, buf_, gavg_;
};

/// Adagrad with learning-rate decay. State: sum.
template <class T> class adagrad : public optimizer<T> {
  public:
    /// Validates the options (std::invalid_argument naming the bad one).
    adagrad(std::vector<tensor<T>> params, adagrad_options o = {});
    /// The options in use.
    const adagrad_options& options() const { return o_; }

  protected:
    /// One in-place update of every parameter that has a gradient.
    void update() override;
    std::vector<std::pair<std::string, xt::xarray<T>*>> buffers(std::size_t i) override;

  private:
    adagrad_options o_;
    std::vector<xt::xarray<T>> sum_;
};

extern template class optimizer<float>;
extern template class optimizer<double>;
extern template class sgd<float>;
extern template class sgd<double>;
extern template class adam<float>;
extern template class adam<double>;
extern template class adamw<float>;
extern template class adamw<double>;
extern template class rmsprop<float>;
extern template class rmsprop<double>;
extern template class adagrad<float>;
extern template class adagrad<double>;

}  // namespace tapegrad::optim
