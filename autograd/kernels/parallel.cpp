// The engine's thread pool: persistent workers that sleep on a condition
// variable between jobs. A job is split into one contiguous piece per thread;
// the caller runs the first piece itself and waits for the others. Workers run
// each piece with the caller's floating-point control word (flush-to-zero), so
// results do not depend on the number of threads.

#include "autograd/kernels/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "autograd/kernels/float_env.hpp"  // fp_control_word: workers take the caller's FTZ

namespace tapegrad {

namespace {

thread_local bool t_in_job = false;  // a job body that calls parallel_for runs it serially

class pool {
  public:
    ~pool() { resize(0); }

    void resize(std::size_t workers) {
        {
            std::lock_guard<std::mutex> lock(m_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join();
        threads_.clear();
        stop_ = false;
        for (std::size_t i = 0; i < workers; ++i)
            threads_.emplace_back([this, i, g = generation_] { work(i + 1, g); });
    }

    std::size_t workers() const { return threads_.size(); }

    void run(std::size_t n, std::size_t align, detail::range_fn f) {
        const std::size_t pieces = threads_.size() + 1;
        std::size_t chunk = (n + pieces - 1) / pieces;
        chunk = (chunk + align - 1) / align * align;
        {
            std::lock_guard<std::mutex> lock(m_);
            job_ = f;
            n_ = n;
            chunk_ = chunk;
            csr_ = fp_control_word();
            error_ = nullptr;
            pending_ = threads_.size();
            ++generation_;
        }
        wake_.notify_all();
        std::exception_ptr mine;
        try {
            t_in_job = true;
            f(0, std::min(n, chunk));
        } catch (...) {
            mine = std::current_exception();
        }
        t_in_job = false;
        std::unique_lock<std::mutex> lock(m_);
        done_.wait(lock, [this] { return pending_ == 0; });  // always: workers still use f
        if (mine) std::rethrow_exception(mine);
        if (error_) std::rethrow_exception(error_);
    }

  private:
    // `seen` starts at the generation current when the thread was made, so a job
    // posted before the thread first takes the lock is not missed.
    void work(std::size_t piece, std::uint64_t seen) {
        std::unique_lock<std::mutex> lock(m_);
        while (true) {
            wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            const detail::range_fn f = job_;
            const unsigned csr = csr_;
            const std::size_t begin = std::min(n_, piece * chunk_), end = std::min(n_, begin + chunk_);
            lock.unlock();
            std::exception_ptr failed;
            if (begin < end) {
                const unsigned own = fp_control_word();
                set_fp_control_word(csr);
                t_in_job = true;
                try {
                    f(begin, end);
                } catch (...) {
                    failed = std::current_exception();
                }
                t_in_job = false;
                set_fp_control_word(own);
            }
            lock.lock();
            if (failed && !error_) error_ = failed;
            if (--pending_ == 0) done_.notify_one();
        }
    }

    std::vector<std::thread> threads_;
    std::mutex m_;
    std::condition_variable wake_, done_;
    detail::range_fn job_{};
    std::exception_ptr error_;
    unsigned csr_ = 0;
    std::size_t n_ = 0, chunk_ = 0, pending_ = 0;
    std::uint64_t generation_ = 0;
    bool stop_ = false;
};

pool& the_pool() {
    static pool p;
    return p;
}
std::mutex& pool_user() {  // one job at a time; other threads run their loops alone
    static std::mutex m;
    return m;
}
std::atomic<int> g_threads{1};

}  // namespace

void set_engine_threads(int n) {
    n = std::max(1, n);
    std::lock_guard<std::mutex> lock(pool_user());
    the_pool().resize(static_cast<std::size_t>(n - 1));
    g_threads = n;
}

int engine_threads() { return g_threads.load(std::memory_order_relaxed); }

namespace detail {

void parallel_run(std::size_t n, std::size_t align, range_fn f) {
    if (t_in_job) {  // nested: this thread already holds the pool
        f(0, n);
        return;
    }
    std::unique_lock<std::mutex> lock(pool_user(), std::try_to_lock);
    if (!lock.owns_lock() || the_pool().workers() == 0) {
        f(0, n);
        return;
    }
    the_pool().run(n, align, f);
}

}  // namespace detail
}  // namespace tapegrad
