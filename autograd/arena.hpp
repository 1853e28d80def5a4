#pragma once
// The bump allocator behind each tape's per-node op data (input lists, axes,
// indices): rewound, never freed, between training steps.

#include <cstddef>
#include <memory>
#include <vector>

namespace tapegrad {

/// Bump allocator for per-node op data; blocks are kept across resets.
class arena {
  public:
    /// `n` uninitialised objects of trivially-copyable type U, valid until reset.
    template <class U> U* alloc(std::size_t n) {
        return static_cast<U*>(alloc_bytes(n * sizeof(U), alignof(U)));
    }
    /// Forget everything allocated; keep the blocks.
    void reset() { block_ = 0; used_ = 0; }
    /// Rewind to an earlier (block, used) position.
    void rewind(std::size_t block, std::size_t used) { block_ = block; used_ = used; }
    std::size_t block() const { return block_; }
    std::size_t used() const { return used_; }
    /// Total bytes of all blocks.
    std::size_t capacity() const;

  private:
    void* alloc_bytes(std::size_t bytes, std::size_t align);
    struct chunk { std::unique_ptr<unsigned char[]> data; std::size_t size; };
    std::vector<chunk> blocks_;
    std::size_t block_ = 0;
    std::size_t used_ = 0;
};

}  // namespace tapegrad
