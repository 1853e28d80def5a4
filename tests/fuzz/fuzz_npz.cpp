// libFuzzer harness: npz::read on bytes in memory, then every array to an
// xtensor array of its dtype (what nn::load_npz and optimizer::load_state do
// with a file; the file-based npz::read calls the same code).

#include <cstddef>
#include <cstdint>
#include <string>

#include "io/npz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string name = "fuzz input";
    try {
        for (const auto& e : tapegrad::npz::read(data, size, name)) {
            if (e.dtype == "<f4") {
                const auto a = tapegrad::npz::to_array<float>(e, name);
                if (a.size() * 4 != e.data.size()) __builtin_trap();
            } else {
                const auto a = tapegrad::npz::to_array<double>(e, name);
                if (a.size() * 8 != e.data.size()) __builtin_trap();
            }
        }
    } catch (const tapegrad::npz::npz_error&) {
    }
    return 0;
}
