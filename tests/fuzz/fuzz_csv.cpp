// libFuzzer harness: data::load_digits_csv on bytes in memory (64 pixels 0..16, then a label
// 0..9, one row a line). A returned data set must keep its promises.

#include <cstddef>
#include <cstdint>

#include "data/dataset.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const auto d = tapegrad::data::load_digits_csv(data, size, "fuzz input");
        if (d.size() == 0 || d.x.size() != d.size() * 64) __builtin_trap();
        for (auto y : d.y)
            if (y >= 10) __builtin_trap();
        for (float v : d.x)
            if (!(v >= 0 && v <= 16)) __builtin_trap();
    } catch (const tapegrad::data::data_error&) {
    }
    return 0;
}
