#include "data/idx.hpp"

#include <cerrno>
#include <cstring>
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
    constexpr std::size_t limit = std::size_t(1) << 32;  // refuse absurd headers before allocating
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
    out.data.resize(total);
    got = read_some(f.get(), path, out.data.data(), total, header);
    if (got < total) {
        std::ostringstream os;
        os << path << ": truncated: the data ends at byte " << header + got << ", expected " << header + total
           << " bytes (header says";
        for (std::size_t i = 0; i < out.dims.size(); ++i) os << (i ? " x " : " ") << out.dims[i];
        os << ")";
        throw data_error(os.str());
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

std::vector<unsigned char> read_gz_file(const std::string& path) {
    gz_ptr f = open_gz(path);
    std::vector<unsigned char> out;
    std::size_t used = 0;
    out.resize(1 << 16);
    for (;;) {
        if (used == out.size()) out.resize(out.size() * 2);
        const std::size_t got = read_some(f.get(), path, out.data() + used, out.size() - used, used);
        used += got;
        if (used < out.size()) break;
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
