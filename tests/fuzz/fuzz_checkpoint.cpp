// libFuzzer harness: a training checkpoint as `tapegrad train --resume` and
// `tapegrad eval` read it (app::check_checkpoint, which runs read_checkpoint).
// Kept thin on purpose: the input becomes every file of a checkpoint set, so
// the harness does not depend on how the set is laid out.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <exception>
#include <fstream>
#include <string>

#include <unistd.h>

#include "apps/commands.hpp"
#include "apps/model.hpp"

namespace {

// tmpfs keeps the per-input writes off the disk; one directory per process,
// removed at exit (the path lives on the heap so it outlives static destructors).
const std::string& dir() {
    static const std::string* d = [] {
        const std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        auto* p = new std::string(base + "/tapegrad_fuzz_ckpt_" + std::to_string(getpid()));
        std::filesystem::create_directories(*p);
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(dir(), ec);
        });
        return p;
    }();
    return *d;
}

void put(const std::string& path, const std::uint8_t* data, std::size_t size) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!f) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string model = dir() + "/checkpoint.npz";
    const tapegrad::app::checkpoint_paths files = tapegrad::app::checkpoint_files(model);
    for (const std::string& p : {files.model, files.optimizer, files.meta}) put(p, data, size);
    try {
        tapegrad::app::check_checkpoint(model);
    } catch (const std::exception&) {
        // Any exception with a message is a clean refusal; crashes, UB and leaks are findings.
    }
    return 0;
}
