// libFuzzer harness: data::read_idx on a plain (uncompressed) IDX file, in
// memory (the file-based read_idx reads the file and calls the same code).
// Every input must end in a returned array or a data_error, never a crash,
// undefined behaviour, a leak, or memory beyond what the input holds.

#include <cstddef>
#include <cstdint>

#include "data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // Follow the magic's dimension count (byte 3) so the fuzzer gets past the
    // magic check for 1-, 3- and 4-dimensional files alike.
    const std::size_t dims = size >= 4 && data[3] >= 1 && data[3] <= 4 ? data[3] : 1;
    try {
        const auto a = tapegrad::data::read_idx(data, size, "fuzz input", dims);
        std::size_t n = 1;
        for (auto d : a.dims) n *= d;
        if (a.dims.size() != dims || a.data.size() != n) __builtin_trap();  // the reader's own promise
    } catch (const tapegrad::data::data_error&) {
    }
    return 0;
}
