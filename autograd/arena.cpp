// The arena's block allocation.

#include "autograd/arena.hpp"

#include <algorithm>

namespace tapegrad {

void* arena::alloc_bytes(std::size_t bytes, std::size_t align) {
    constexpr std::size_t min_block = 64 * 1024;
    if (bytes == 0) bytes = 1;
    while (true) {
        if (block_ < blocks_.size()) {
            auto& b = blocks_[block_];
            std::size_t start = (used_ + align - 1) / align * align;
            if (start + bytes <= b.size) {
                used_ = start + bytes;
                return b.data.get() + start;
            }
            // Too small: try the next block (a kept one if it fits, else a new one).
            ++block_;
            used_ = 0;
            if (block_ < blocks_.size() && blocks_[block_].size < bytes + align) {
                std::size_t size = std::max(min_block, bytes + align);
                blocks_[block_] = {std::make_unique<unsigned char[]>(size), size};
            }
            continue;
        }
        std::size_t size = std::max(min_block, bytes + align);
        blocks_.push_back({std::make_unique<unsigned char[]>(size), size});
        block_ = blocks_.size() - 1;
        used_ = 0;
    }
}

std::size_t arena::capacity() const {
    std::size_t total = 0;
    for (const auto& b : blocks_) total += b.size;
    return total;
}

}  // namespace tapegrad
