#pragma once
// Heap allocation counter for the benchmark binaries: malloc, calloc, realloc,
// posix_memalign, aligned_alloc and memalign are interposed (operator new and
// xsimd's aligned allocator both end up in them), so every allocation in the
// process, LibTorch's included, is counted.

#include <cstddef>

namespace tapegrad::bench {

/// Allocations made by the whole process since it started.
std::size_t allocation_count();

/// Start following the bytes live on the heap (malloc_usable_size of each block
/// allocated and freed from now on); costs nothing while not following.
void heap_track_begin();
/// Stop following; the peak of (bytes live - bytes live at heap_track_begin()) in between.
std::size_t heap_track_end();

}  // namespace tapegrad::bench
