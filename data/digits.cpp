// The embedded digits data set: data/digits.csv.gz compiled in as bytes
// (cmake/embed.cmake), inflated with zlib and parsed like the file.

#include <cstddef>
#include <vector>

#include <zlib.h>

#include "data/dataset.hpp"

namespace tapegrad::data {

namespace embedded {
extern const unsigned char digits_csv_gz[];
extern const std::size_t digits_csv_gz_size;
}  // namespace embedded

namespace {

/// A whole gzip stream in memory, inflated.
std::vector<unsigned char> gunzip(const unsigned char* in, std::size_t n, const std::string& name) {
    z_stream z{};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw data_error(name + ": zlib inflateInit2 failed");
    z.next_in = const_cast<unsigned char*>(in);  // zlib's API is not const-correct
    z.avail_in = static_cast<uInt>(n);
    std::vector<unsigned char> out;
    unsigned char buf[1 << 16];
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        z.next_out = buf;
        z.avail_out = sizeof buf;
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            inflateEnd(&z);
            throw data_error(name + ": corrupt gzip data at byte " + std::to_string(z.total_in));
        }
        out.insert(out.end(), buf, buf + (sizeof buf - z.avail_out));
    }
    inflateEnd(&z);
    return out;
}

}  // namespace

dataset load_digits() {
    const std::string name = "embedded digits.csv.gz";
    return parse_digits_csv(gunzip(embedded::digits_csv_gz, embedded::digits_csv_gz_size, name), name);
}

}  // namespace tapegrad::data
