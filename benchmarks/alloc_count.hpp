#pragma once
// Heap allocation counter for the benchmark binaries: malloc, calloc, realloc,
// posix_memalign, aligned_alloc and memalign are interposed (operator new and
// xsimd's aligned allocator both end up in them), so every allocation in the
// process, LibTorch's included, is counted.

#include <cstddef>

namespace tapegrad::bench {

/// Allocations made by the whole process since it started.
std::size_t allocation_count();

}  // namespace tapegrad::bench
