#pragma once
// Engine threads: large elementwise ops and line loops (softmax and friends)
// split their work across a small pool. Off by default (1 thread): on a machine
// whose cores also run BLAS threads, extra threads only help when they have a
// core of their own. BLAS threads are set separately, with blas::set_num_threads.

#include <cstddef>
#include <utility>

namespace tapegrad {

/// Threads the engine's own loops may use (1 = the calling thread only, the default).
/// Workers wait passively (no spinning), so they do not take a core from BLAS.
void set_engine_threads(int n);
/// The number set by set_engine_threads.
int engine_threads();

namespace detail {

/// Work below this many elements stays on the calling thread: waking a worker
/// costs a few microseconds, as much as ~10k elements of tanh.
constexpr std::size_t parallel_grain = std::size_t(1) << 15;

/// A borrowed callable f(begin, end): no allocation, unlike std::function.
struct range_fn {
    void (*call)(const void* f, std::size_t begin, std::size_t end);
    const void* f;
    void operator()(std::size_t begin, std::size_t end) const { call(f, begin, end); }
};

/// f(begin, end) over pieces of [0, n) on the engine threads; piece boundaries are
/// multiples of `align`. Runs on the calling thread alone if another thread is
/// using the pool.
void parallel_run(std::size_t n, std::size_t align, range_fn f);

/// Same for any callable, which must outlive the call.
template <class F> void parallel_run(std::size_t n, std::size_t align, const F& f) {
    parallel_run(n, align, range_fn{[](const void* p, std::size_t b, std::size_t e) { (*static_cast<const F*>(p))(b, e); }, &f});
}

/// f(begin, end) over [0, n): split across the engine threads when n >= parallel_grain.
template <class F> void parallel_for(std::size_t n, std::size_t align, const F& f) {
    if (n < parallel_grain || engine_threads() < 2) {
        f(std::size_t(0), n);
        return;
    }
    parallel_run(n, align, f);
}

}  // namespace detail
}  // namespace tapegrad
