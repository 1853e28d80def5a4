// libFuzzer harness: a training checkpoint (one .npz) as `tapegrad train
// --resume` and `tapegrad eval` read it: app::check_checkpoint, which runs
// read_checkpoint, here on the bytes in memory (the file-based entry point
// reads the file and calls the same code).

#include <cstddef>
#include <cstdint>
#include <exception>

#include "apps/commands.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        tapegrad::app::check_checkpoint(data, size, "fuzz checkpoint.npz");
    } catch (const std::exception&) {
        // Any exception with a message is a clean refusal; crashes, UB and leaks are findings.
    }
    return 0;
}
