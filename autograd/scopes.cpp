// Grad mode (per thread) and gradient_tape.

#include "autograd/tensor.hpp"

namespace tapegrad {

namespace {
thread_local bool g_grad_enabled = true;
thread_local int g_tape_depth = 0;
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

template <class T> gradient_tape<T>::gradient_tape() : start_(tape<T>::current().size()), depth_(++g_tape_depth) {}
template <class T> gradient_tape<T>::~gradient_tape() { --g_tape_depth; }
template <class T>
std::vector<tensor<T>> gradient_tape<T>::gradient(const tensor<T>& loss, const std::vector<tensor<T>>& wrt) {
    gradient_options opts;
    opts.create_graph = depth_ > 1;  // an enclosing tape is watching: record the reverse pass
    return tape<T>::current().gradient(loss, wrt, opts);
}
template <class T> std::size_t gradient_tape<T>::recorded() const { return tape<T>::current().size() - start_; }

#define TAPEGRAD_INSTANTIATE(T) \
    template class gradient_tape<T>;
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)

}  // namespace tapegrad
