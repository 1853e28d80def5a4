// libFuzzer harness: npz::read, then every array to an xtensor array of its
// dtype (what nn::load_npz and optimizer::load_state do with a file).

#include <cstddef>
#include <cstdint>

#include "io/npz.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    tapegrad::fuzz::memory_file f(data, size);
    try {
        for (const auto& e : tapegrad::npz::read(f.path())) {
            if (e.dtype == "<f4") {
                const auto a = tapegrad::npz::to_array<float>(e, f.path());
                if (a.size() * 4 != e.data.size()) __builtin_trap();
            } else {
                const auto a = tapegrad::npz::to_array<double>(e, f.path());
                if (a.size() * 8 != e.data.size()) __builtin_trap();
            }
        }
    } catch (const tapegrad::npz::npz_error&) {
    }
    return 0;
}
