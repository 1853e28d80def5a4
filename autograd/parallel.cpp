// The engine's thread pool: persistent workers that sleep on a condition
// variable between jobs. A job is split into one contiguous piece per thread;
// the caller runs the first piece itself and waits for the others.

#include "autograd/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace tapegrad {

namespace {

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

    void run(std::size_t n, std::size_t align, const std::function<void(std::size_t, std::size_t)>& f) {
        const std::size_t pieces = threads_.size() + 1;
        std::size_t chunk = (n + pieces - 1) / pieces;
        chunk = (chunk + align - 1) / align * align;
        {
            std::lock_guard<std::mutex> lock(m_);
            job_ = &f;
            n_ = n;
            chunk_ = chunk;
            pending_ = threads_.size();
            ++generation_;
        }
        wake_.notify_all();
        f(0, std::min(n, chunk));
        std::unique_lock<std::mutex> lock(m_);
        done_.wait(lock, [this] { return pending_ == 0; });
        job_ = nullptr;
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
            const auto* f = job_;
            const std::size_t begin = std::min(n_, piece * chunk_), end = std::min(n_, begin + chunk_);
            lock.unlock();
            if (begin < end) (*f)(begin, end);
            lock.lock();
            if (--pending_ == 0) done_.notify_one();
        }
    }

    std::vector<std::thread> threads_;
    std::mutex m_;
    std::condition_variable wake_, done_;
    const std::function<void(std::size_t, std::size_t)>* job_ = nullptr;
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

void parallel_run(std::size_t n, std::size_t align, const std::function<void(std::size_t, std::size_t)>& f) {
    std::unique_lock<std::mutex> lock(pool_user(), std::try_to_lock);
    if (!lock.owns_lock() || the_pool().workers() == 0) {
        f(0, n);
        return;
    }
    the_pool().run(n, align, f);
}

}  // namespace detail
}  // namespace tapegrad
