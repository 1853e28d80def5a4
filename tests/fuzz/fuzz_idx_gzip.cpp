// libFuzzer harness: data::read_idx on a gzip-compressed IDX file in memory.
// Byte 0 chooses how the rest is used: even, as the *uncompressed* IDX
// content, gzip-compressed here, so mutations reach the header and the
// incremental reading behind zlib; odd, as the gzip file itself (corrupt
// headers, CRCs, truncated streams, concatenated members).

#include <cstddef>
#include <cstdint>
#include <vector>

#include <zlib.h>

#include "data/idx.hpp"

namespace {

std::vector<std::uint8_t> gzip(const std::uint8_t* data, std::size_t size) {
    z_stream zs{};
    // windowBits 9 + 16: a gzip wrapper with a 512-byte window; level 1 and
    // memLevel 1 keep zlib's state at a few KiB, so the harness stays fast.
    if (deflateInit2(&zs, 1, Z_DEFLATED, 9 + 16, 1, Z_DEFAULT_STRATEGY) != Z_OK) __builtin_trap();
    std::vector<std::uint8_t> out(deflateBound(&zs, static_cast<uLong>(size)) + 32);
    zs.next_in = const_cast<std::uint8_t*>(data);
    zs.avail_in = static_cast<uInt>(size);
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) __builtin_trap();
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const bool as_is = data[0] & 1;
    const std::uint8_t* body = data + 1;
    const std::size_t n = size - 1;
    std::vector<std::uint8_t> file = as_is ? std::vector<std::uint8_t>(body, body + n) : gzip(body, n);
    // The uncompressed magic's byte 3 is the dimension count (see fuzz_idx_raw).
    const std::size_t dims = !as_is && n >= 4 && body[3] >= 1 && body[3] <= 4 ? body[3] : 3;
    try {
        const auto a = tapegrad::data::read_idx(file.data(), file.size(), "fuzz input", dims);
        std::size_t count = 1;
        for (auto d : a.dims) count *= d;
        if (a.data.size() != count) __builtin_trap();
    } catch (const tapegrad::data::data_error&) {
    }
    return 0;
}
