// Interposed allocation functions that count calls and forward to glibc's own
// implementation (__libc_*), so no allocator behaviour changes.

#include "benchmarks/alloc_count.hpp"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace {
std::atomic<std::size_t> g_allocations{0};
inline void count() { g_allocations.fetch_add(1, std::memory_order_relaxed); }

// Heap bytes followed between heap_track_begin() and heap_track_end(): blocks freed
// that were allocated before begin() take the balance below zero, so the peak is
// what the tracked interval added on top of what was live at its start.
std::atomic<bool> g_tracking{false};
std::atomic<long long> g_live{0}, g_peak{0};
inline void track(void* p, bool allocated) {
    if (!p || !g_tracking.load(std::memory_order_relaxed)) return;
    const long long n = static_cast<long long>(malloc_usable_size(p));
    if (!allocated) {
        g_live.fetch_sub(n, std::memory_order_relaxed);
        return;
    }
    const long long now = g_live.fetch_add(n, std::memory_order_relaxed) + n;
    long long peak = g_peak.load(std::memory_order_relaxed);
    while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
}
inline void* tracked(void* p) {
    track(p, true);
    return p;
}
}  // namespace

namespace tapegrad::bench {
std::size_t allocation_count() { return g_allocations.load(std::memory_order_relaxed); }
void heap_track_begin() {
    g_live = 0;
    g_peak = 0;
    g_tracking = true;
}
std::size_t heap_track_end() {
    g_tracking = false;
    return static_cast<std::size_t>(std::max(0LL, g_peak.load()));
}
}  // namespace tapegrad::bench

extern "C" {
void* malloc(std::size_t n) {
    count();
    return tracked(__libc_malloc(n));
}
void* calloc(std::size_t n, std::size_t size) {
    count();
    return tracked(__libc_calloc(n, size));
}
void* realloc(void* p, std::size_t n) {
    count();
    track(p, false);
    return tracked(__libc_realloc(p, n));
}
int posix_memalign(void** out, std::size_t align, std::size_t n) {
    if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
    count();
    void* p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = tracked(p);
    return 0;
}
void* aligned_alloc(std::size_t align, std::size_t n) {
    count();
    return tracked(__libc_memalign(align, n));
}
void* memalign(std::size_t align, std::size_t n) {
    count();
    return tracked(__libc_memalign(align, n));
}
void free(void* p) {
    track(p, false);
    __libc_free(p);
}
}
