#include "data/idx.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>

#include <zlib.h>

namespace tapegrad::data {

namespace {

struct file_closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

/// A file's bytes held in memory, read front to back: plain bytes as they
/// are, gzip inflated member after member (bytes after the last member are
/// ignored, as gzread does). Memory follows what the caller asks for.
class byte_source {
  public:
    byte_source(const unsigned char* data, std::size_t size, const std::string& name)
        : data_(data), size_(size), name_(name) {
        gzip_ = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
        if (gzip_ && inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK)
            throw data_error(name + ": zlib could not allocate a stream");
    }
    ~byte_source() {
        if (gzip_) inflateEnd(&zs_);
    }
    byte_source(const byte_source&) = delete;
    byte_source& operator=(const byte_source&) = delete;

    /// gzip-compressed (else the bytes are the content).
    bool compressed() const { return gzip_; }
    /// The gzip stream stopped before its end (cut off): what came before is returned.
    bool cut() const { return cut_; }

    /// Up to `n` bytes into `dst`; fewer only at the end of the content. Throws
    /// data_error for corrupt gzip data; `offset` (in the content) is for its message.
    std::size_t read(unsigned char* dst, std::size_t n, std::size_t offset) {
        if (!gzip_) {
            const std::size_t got = std::min(n, size_ - used_);
            if (got) std::memcpy(dst, data_ + used_, got);
            used_ += got;
            return got;
        }
        std::size_t got = 0;
        while (got < n && !done_) {
            if (zs_.avail_in == 0) {  // zlib counts in 32 bits: feed at most 1 GiB at a time
                const std::size_t c = std::min<std::size_t>(size_ - used_, 1u << 30);
                zs_.next_in = const_cast<unsigned char*>(data_ + used_);  // zlib's API is not const-correct
                zs_.avail_in = static_cast<uInt>(c);
                used_ += c;
            }
            const std::size_t want = std::min<std::size_t>(n - got, 1u << 30);
            zs_.next_out = dst + got;
            zs_.avail_out = static_cast<uInt>(want);
            const int rc = inflate(&zs_, Z_NO_FLUSH);
            got += want - zs_.avail_out;
            const bool input_left = zs_.avail_in > 0 || used_ < size_;
            if (rc == Z_STREAM_END) {
                // Another member follows only if it starts with the gzip magic.
                if (zs_.avail_in == 0 && used_ < size_) {
                    zs_.next_in = const_cast<unsigned char*>(data_ + used_);
                    zs_.avail_in = static_cast<uInt>(std::min<std::size_t>(size_ - used_, 1u << 30));
                    used_ += zs_.avail_in;
                }
                if (zs_.avail_in >= 2 && zs_.next_in[0] == 0x1f && zs_.next_in[1] == 0x8b) inflateReset(&zs_);
                else done_ = true;
            } else if ((rc == Z_OK || rc == Z_BUF_ERROR) && !input_left && zs_.avail_out > 0) {
                cut_ = done_ = true;  // all input used up inside a member
            } else if (rc != Z_OK) {
                std::ostringstream os;
                os << name_ << ": read error at byte " << offset + got << ": "
                   << (zs_.msg ? zs_.msg : "corrupt gzip data");
                throw data_error(os.str());
            }
        }
        return got;
    }

  private:
    const unsigned char* data_;
    std::size_t size_;
    const std::string& name_;
    std::size_t used_ = 0;  // input consumed (plain) or handed to zlib (gzip)
    bool gzip_ = false, done_ = false, cut_ = false;
    z_stream zs_{};
};

// The IDX data limit (4 GiB) plus header and gzip's worst-case growth.
constexpr std::size_t idx_file_limit = (std::size_t(1) << 32) + (std::size_t(1) << 22);

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

std::vector<unsigned char> read_file_bytes(const std::string& path, std::size_t max_bytes) {
    errno = 0;
    std::unique_ptr<std::FILE, file_closer> f(std::fopen(path.c_str(), "rb"));
    if (!f) {
        const int e = errno;
        throw data_error(path + ": cannot open: " + (e ? std::strerror(e) : "unknown error") +
                         " (check the path; Fashion-MNIST comes from Debian's dataset-fashion-mnist)");
    }
    std::vector<unsigned char> out;
    std::size_t used = 0;
    for (;;) {
        // One byte past the limit tells "exactly the limit" from "more".
        out.resize(std::min(std::max<std::size_t>(out.size() * 2, 1 << 16), max_bytes + 1));
        used += std::fread(out.data() + used, 1, out.size() - used, f.get());
        if (std::ferror(f.get())) throw data_error(path + ": read error at byte " + std::to_string(used) + ": " + std::strerror(errno));
        if (used < out.size()) break;
        if (used > max_bytes)
            throw data_error(path + ": holds more than " + std::to_string(max_bytes) +
                             " bytes, more than this loader accepts; is it the right file?");
    }
    out.resize(used);
    return out;
}

idx_array read_idx(const std::string& path, std::size_t expected_dims) {
    const std::vector<unsigned char> file = read_file_bytes(path, idx_file_limit);
    return read_idx(file.data(), file.size(), path, expected_dims);
}

idx_array read_idx(const unsigned char* data, std::size_t size, const std::string& path, std::size_t expected_dims) {
    byte_source f(data, size, path);
    unsigned char head[4];
    std::size_t got = f.read(head, 4, 0);
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
    got = f.read(dim_bytes.data(), dim_bytes.size(), 4);
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
    if (!f.compressed()) present = size > header ? size - header : 0;
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
    out.data.reserve(measured ? total : std::min<std::size_t>(total, 1 << 16));
    std::size_t filled = 0;
    while (filled < total) {
        // Unmeasured (gzip): at most double what has arrived, so a few bytes
        // claiming gigabytes cost kilobytes, not a zeroed 4 MiB chunk.
        const std::size_t step =
            std::min({chunk, total - filled, measured ? chunk : std::max<std::size_t>(filled, 1 << 16)});
        out.data.resize(filled + step);
        const std::size_t r = f.read(out.data.data() + filled, step, header + filled);
        filled += r;
        if (r < step) throw short_of(filled, f.compressed());
    }
    unsigned char extra;
    if (f.read(&extra, 1, header + total) != 0) {
        throw data_error(path + ": unexpected data after byte " + std::to_string(header + total) +
                         ": the file is longer than its header says");
    }
    if (f.cut()) {
        throw data_error(path + ": truncated gzip stream: the data is complete but the gzip trailer is missing");
    }
    return out;
}

std::vector<unsigned char> read_gz_file(const std::string& path, std::size_t max_bytes) {
    // The file itself may be a little larger than its content (gzip's headers
    // on incompressible data); the exact limit applies to the content.
    const std::vector<unsigned char> file = read_file_bytes(path, max_bytes + max_bytes / 512 + 4096);
    return read_gz_bytes(file.data(), file.size(), path, max_bytes);
}

std::vector<unsigned char> read_gz_bytes(const unsigned char* data, std::size_t size, const std::string& path,
                                         std::size_t max_bytes) {
    byte_source f(data, size, path);
    std::vector<unsigned char> out;
    std::size_t used = 0;
    // Plain bytes fit at once; inflated ones grow the buffer geometrically.
    out.resize(std::min(size + 4096, max_bytes + 1));
    for (;;) {
        used += f.read(out.data() + used, out.size() - used, used);
        if (used < out.size()) break;
        // One byte past the limit tells "exactly the limit" from "more".
        if (used > max_bytes) {
            throw data_error(path + ": holds more than " + std::to_string(max_bytes) + " bytes" +
                             (f.compressed() ? " after decompression" : "") +
                             ", more than this loader accepts; is it the right file?");
        }
        out.resize(std::min(out.size() * 2, max_bytes + 1));
    }
    if (f.cut()) throw data_error(path + ": truncated gzip stream after " + std::to_string(used) + " bytes");
    out.resize(used);
    return out;
}

}  // namespace tapegrad::data
