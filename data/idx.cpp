#include "data/idx.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <sstream>

#include <zlib.h>

namespace tapegrad::data {

namespace {

struct gz_closer {
    void operator()(gzFile_s* f) const { gzclose(f); }
};
using gz_ptr = std::unique_ptr<gzFile_s, gz_closer>;

gz_ptr open_gz(const std::string& path) {
    errno = 0;
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) {
        const int e = errno;
        throw data_error(path + ": cannot open: " + (e ? std::strerror(e) : "zlib could not allocate a stream") +
                         " (check the path; Fashion-MNIST comes from Debian's dataset-fashion-mnist)");
    }
    gzbuffer(f, 1u << 17);  // fewer, larger reads: the 26 MB training images inflate faster
    return gz_ptr(f);
}

/// Read up to `n` bytes; returns how many were read, throws on a zlib error
/// other than a cut-off stream (which the caller reports as truncation).
std::size_t read_some(gzFile f, const std::string& path, unsigned char* dst, std::size_t n, std::size_t offset) {
    std::size_t got = 0;
    while (got < n) {
        const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
        const int r = gzread(f, dst + got, chunk);
        if (r < 0) {
            int code = 0;
            const char* msg = gzerror(f, &code);
            if (code == Z_BUF_ERROR) break;  // truncated gzip stream
            std::ostringstream os;
            os << path << ": read error at byte " << offset + got << ": " << (msg ? msg : "unknown zlib error");
            throw data_error(os.str());
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    return got;
}

std::uint32_t big_endian(const unsigned char* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

std::string hex(std::uint32_t v) {
    std::ostringstream os;
    os << "0x" << std::hex;
    os.width(8);
    os.fill('0');
    os << v;
    return os.str();
}

}  // namespace

idx_array read_idx(const std::string& path, std::size_t expected_dims) {
    gz_ptr f = open_gz(path);
    unsigned char head[4];
    std::size_t got = read_some(f.get(), path, head, 4, 0);
    if (got < 4) {
        throw data_error(path + ": truncated: the file ends at byte " + std::to_string(got) +
                         " inside the 4-byte magic number");
    }
    const std::uint32_t magic = big_endian(head);
    const std::uint32_t expected_magic = 0x0800u | static_cast<std::uint32_t>(expected_dims);
    if (magic != expected_magic) {
        throw data_error(path + ": wrong magic number " + hex(magic) + " at byte 0, expected " + hex(expected_magic) +
                         " (an IDX file of uint8 with " + std::to_string(expected_dims) +
                         " dimension(s)); is this the right file?");
    }
    idx_array out;
    std::vector<unsigned char> dim_bytes(4 * expected_dims);
    got = read_some(f.get(), path, dim_bytes.data(), dim_bytes.size(), 4);
    if (got < dim_bytes.size()) {
        throw data_error(path + ": truncated: the header ends at byte " + std::to_string(4 + got) + ", expected " +
                         std::to_string(4 + dim_bytes.size()) + " bytes of header");
    }
    std::size_t total = 1;
    constexpr std::size_t limit = std::size_t(1) << 32;  // a uint8 data set beyond 4 GiB is not one we can train on
    for (std::size_t i = 0; i < expected_dims; ++i) {
        const std::uint32_t d = big_endian(&dim_bytes[4 * i]);
        out.dims.push_back(d);
        if (d != 0 && total > limit / d) {
            throw data_error(path + ": implausible dimension " + std::to_string(d) + " at byte " +
                             std::to_string(4 + 4 * i) + ": the data would exceed 4 GiB");
        }
        total *= d;
    }
    const std::size_t header = 4 + dim_bytes.size();
    // The header's count is a claim, not a size to allocate: a plain file is
    // measured first, and any file is read in chunks, so memory follows the
    // bytes that are really there (after decompression), never the header.
    std::size_t present = std::numeric_limits<std::size_t>::max();
    if (gzdirect(f.get())) {
        std::error_code ec;
        const auto size = std::filesystem::file_size(path, ec);
        if (!ec) present = size > header ? std::size_t(size) - header : 0;
    }
    auto short_of = [&](std::size_t holds, bool compressed) {
        std::ostringstream os;
        os << path << " says " << (out.dims.empty() ? 0 : out.dims[0]) << " items";
        if (out.dims.size() > 1) {
            os << " of";
            for (std::size_t i = 1; i < out.dims.size(); ++i) os << (i > 1 ? " x " : " ") << out.dims[i];
            os << " bytes";
        }
        os << " (" << total << " bytes of data) but holds " << holds << " bytes"
           << (compressed ? " (decompressed)" : "") << " after its " << header
           << "-byte header: truncated: the data ends at byte " << header + holds << ", expected " << header + total
           << " bytes; is the file complete?";
        return data_error(os.str());
    };
    if (present < total) throw short_of(present, false);
    constexpr std::size_t chunk = std::size_t(1) << 22;
    const bool measured = present != std::numeric_limits<std::size_t>::max();
    out.data.reserve(measured ? total : std::min(total, chunk));
    std::size_t filled = 0;
    while (filled < total) {
        const std::size_t step = std::min(chunk, total - filled);
        out.data.resize(filled + step);  // grows geometrically, bounded by what has arrived plus one chunk
        const std::size_t r = read_some(f.get(), path, out.data.data() + filled, step, header + filled);
        filled += r;
        if (r < step) throw short_of(filled, !gzdirect(f.get()));
    }
    unsigned char extra;
    if (read_some(f.get(), path, &extra, 1, header + total) != 0) {
        throw data_error(path + ": unexpected data after byte " + std::to_string(header + total) +
                         ": the file is longer than its header says");
    }
    int code = 0;
    gzerror(f.get(), &code);
    if (code == Z_BUF_ERROR) {
        throw data_error(path + ": truncated gzip stream: the data is complete but the gzip trailer is missing");
    }
    return out;
}

std::vector<unsigned char> read_gz_file(const std::string& path, std::size_t max_bytes) {
    gz_ptr f = open_gz(path);
    std::vector<unsigned char> out;
    std::size_t used = 0;
    out.resize(std::min<std::size_t>(1 << 16, max_bytes + 1));
    for (;;) {
        const std::size_t got = read_some(f.get(), path, out.data() + used, out.size() - used, used);
        used += got;
        if (used < out.size()) break;
        // One byte past the limit tells "exactly the limit" from "more".
        if (used > max_bytes) {
            throw data_error(path + ": holds more than " + std::to_string(max_bytes) + " bytes" +
                             (gzdirect(f.get()) ? "" : " after decompression") +
                             ", more than this loader accepts; is it the right file?");
        }
        out.resize(std::min(out.size() * 2, max_bytes + 1));
    }
    int code = 0;
    gzerror(f.get(), &code);
    if (code == Z_BUF_ERROR) {
        throw data_error(path + ": truncated gzip stream after " + std::to_string(used) + " bytes");
    }
    out.resize(used);
    return out;
}

}  // namespace tapegrad::data
