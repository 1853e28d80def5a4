// Learning-rate schedules in PyTorch 1.13's chained form (torch/optim/lr_scheduler.py,
// get_lr): each epoch's lr is computed from the previous one, as PyTorch does,
// so the values agree to the last bit or two rather than only in closed form.

#include "optim/schedulers.hpp"

#include "autograd/compile.hpp"

#include "autograd/format.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace tapegrad::optim {

using detail::num;

namespace {
constexpr double pi = 3.14159265358979323846;
}  // namespace

template <class T> scheduler<T>::scheduler(optimizer<T>& opt) : opt_(opt), base_lr_(opt.lr()) {}

template <class T> void scheduler<T>::initial_step() {
    last_epoch_ = -1;
    step();
}

template <class T> void scheduler<T>::step() {
    replayed<T>([this] {  // inside a compiled step, every replay steps the schedule too
        ++last_epoch_;
        opt_.set_lr(next_lr());
    });
}

template <class T> step_lr<T>::step_lr(optimizer<T>& opt, int step_size, double gamma)
    : scheduler<T>(opt), step_size_(step_size), gamma_(gamma) {
    if (step_size < 1) throw std::invalid_argument("step_lr: invalid step_size " + num(step_size) + " (must be >= 1)");
    if (!(gamma >= 0)) throw std::invalid_argument("step_lr: invalid gamma " + num(gamma) + " (must be >= 0)");
    this->initial_step();
}

template <class T> double step_lr<T>::next_lr() const {
    const int e = this->last_epoch_;
    if (e == 0 || e % step_size_ != 0) return this->opt_.lr();
    return this->opt_.lr() * gamma_;
}

template <class T> exponential_lr<T>::exponential_lr(optimizer<T>& opt, double gamma) : scheduler<T>(opt), gamma_(gamma) {
    if (!(gamma >= 0)) throw std::invalid_argument("exponential_lr: invalid gamma " + num(gamma) + " (must be >= 0)");
    this->initial_step();
}

template <class T> double exponential_lr<T>::next_lr() const {
    return this->last_epoch_ == 0 ? this->opt_.lr() : this->opt_.lr() * gamma_;
}

template <class T>
cosine_annealing_lr<T>::cosine_annealing_lr(optimizer<T>& opt, int t_max, double eta_min)
    : scheduler<T>(opt), t_max_(t_max), eta_min_(eta_min) {
    if (t_max < 1) throw std::invalid_argument("cosine_annealing_lr: invalid t_max " + num(t_max) + " (must be >= 1)");
    if (!(eta_min >= 0))
        throw std::invalid_argument("cosine_annealing_lr: invalid eta_min " + num(eta_min) + " (must be >= 0)");
    this->initial_step();
}

template <class T> double cosine_annealing_lr<T>::next_lr() const {
    const int e = this->last_epoch_;
    const double lr = this->opt_.lr(), tm = double(t_max_);
    if (e == 0) return lr;
    // Python's % is a floor modulo: (e - 1 - T_max) may be negative.
    const int period = 2 * t_max_;
    const int r = ((e - 1 - t_max_) % period + period) % period;
    if (r == 0) return lr + (this->base_lr_ - eta_min_) * (1 - std::cos(pi / tm)) / 2;
    return (1 + std::cos(pi * e / tm)) / (1 + std::cos(pi * (e - 1) / tm)) * (lr - eta_min_) + eta_min_;
}

template <class T>
linear_warmup<T>::linear_warmup(optimizer<T>& opt, double start_factor, double end_factor, int total_iters)
    : scheduler<T>(opt), start_(start_factor), end_(end_factor), total_(total_iters) {
    if (!(start_factor > 0 && start_factor <= 1))
        throw std::invalid_argument("linear_warmup: invalid start_factor " + num(start_factor) + " (must be in (0, 1])");
    if (!(end_factor >= 0 && end_factor <= 1))
        throw std::invalid_argument("linear_warmup: invalid end_factor " + num(end_factor) + " (must be in [0, 1])");
    if (total_iters < 1)
        throw std::invalid_argument("linear_warmup: invalid total_iters " + num(total_iters) + " (must be >= 1)");
    this->initial_step();
}

template <class T> double linear_warmup<T>::next_lr() const {
    const int e = this->last_epoch_;
    const double lr = this->opt_.lr();
    if (e == 0) return lr * start_;
    if (e > total_) return lr;
    return lr * (1.0 + (end_ - start_) / (total_ * start_ + (e - 1) * (end_ - start_)));
}

template class scheduler<float>;
template class scheduler<double>;
template class step_lr<float>;
template class step_lr<double>;
template class exponential_lr<float>;
template class exponential_lr<double>;
template class cosine_annealing_lr<float>;
template class cosine_annealing_lr<double>;
template class linear_warmup<float>;
template class linear_warmup<double>;

}  // namespace tapegrad::optim
