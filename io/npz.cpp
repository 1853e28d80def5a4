// .npz reading and writing: a zip archive (PKWARE APPNOTE) whose members are
// NPY files (NumPy's format.py, version 1.0 written; 1.0-3.0 read).
// Only what numpy.savez/savez_compressed produce needs to be read; the byte
// layouts below are noted field by field because a wrong offset is silent.

#include "io/npz.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include <zlib.h>

namespace tapegrad::npz {

namespace {

using bytes = std::vector<unsigned char>;

void put16(bytes& b, std::uint32_t v) {
    b.push_back(std::uint8_t(v));
    b.push_back(std::uint8_t(v >> 8));
}
void put32(bytes& b, std::uint32_t v) {
    put16(b, v & 0xffff);
    put16(b, v >> 16);
}

std::size_t elem_size(const std::string& dtype) { return dtype == "<f4" ? 4 : 8; }

// Elements of shape `s`, or false when the count (or its byte size, or any
// partial product xtensor forms as a stride) would not fit: a shape read from
// a file like (2^61+1, 8) must be refused, not wrapped around.
bool checked_count(const shape_t& s, std::size_t elem, std::size_t& n) {
    constexpr std::size_t limit = std::size_t(1) << 62;  // strides are signed
    std::size_t strided = elem;                           // product of the nonzero dimensions, in bytes
    n = 1;
    for (auto d : s) {
        if (d != 0 && strided > limit / d) return false;
        if (d != 0) strided *= d;
        n *= d;
    }
    return true;
}

std::size_t count(const shape_t& s) {
    std::size_t n = 0;
    if (!checked_count(s, 1, n)) throw npz_error("npz: shape " + shape_str(s) + " is too large");
    return n;
}

// NPY v1.0: magic, version, uint16 header length, a Python dict literal padded
// with spaces to a multiple of 64 bytes and ended by '\n', then the data.
bytes npy_bytes(const entry& e) {
    std::string shape = "(";
    for (std::size_t i = 0; i < e.shape.size(); ++i) shape += std::to_string(e.shape[i]) + ", ";
    if (e.shape.size() == 1) shape.pop_back();                 // "(3,)"
    else if (!e.shape.empty()) shape.resize(shape.size() - 2);  // "(2, 3)"
    shape += ")";
    std::string header = "{'descr': '" + e.dtype + "', 'fortran_order': False, 'shape': " + shape + ", }";
    const std::size_t unpadded = 10 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header += '\n';
    bytes b = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    put16(b, std::uint32_t(header.size()));
    b.insert(b.end(), header.begin(), header.end());
    b.insert(b.end(), e.data.begin(), e.data.end());
    return b;
}

// Every structural error says which file, where, and what was expected.
[[noreturn]] void corrupt(const std::string& path, std::size_t offset, const std::string& what) {
    throw npz_error(path + ": corrupt or unsupported .npz at byte offset " + std::to_string(offset) + ": " + what);
}

// Bytes held elsewhere (a file read into memory, or a caller's buffer).
struct byte_view {
    const unsigned char* p;
    std::size_t n;
    std::size_t size() const { return n; }
    const unsigned char* data() const { return p; }
    const unsigned char* begin() const { return p; }
    unsigned char operator[](std::size_t i) const { return p[i]; }
};

struct reader {
    byte_view b;
    const std::string& path;
    void need(std::size_t at, std::size_t n, const char* what) const {
        if (at > b.size() || n > b.size() - at)
            corrupt(path, at,
                    std::string(what) + " needs " + std::to_string(n) + " bytes but the file ends at byte " +
                        std::to_string(b.size()) + " (truncated?)");
    }
    std::uint64_t le(std::size_t at, int n, const char* what) const {
        need(at, std::size_t(n), what);
        std::uint64_t v = 0;
        for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[at + std::size_t(i)];
        return v;
    }
};

// Values of the NPY header dict: 'descr', 'fortran_order', 'shape'.
entry parse_npy(const bytes& npy, const std::string& path, std::size_t base, const std::string& name) {
    reader r{{npy.data(), npy.size()}, path};
    auto fail = [&](std::size_t at, const std::string& what) { corrupt(path, base + at, "array '" + name + "': " + what); };
    if (npy.size() < 10 || std::memcmp(npy.data(), "\x93NUMPY", 6) != 0) fail(0, "not an NPY array (bad magic)");
    const unsigned major = npy[6];
    std::size_t hlen = 0, hstart = 0;  // fail() throws; clang cannot see that
    if (major == 1) { hlen = std::size_t(r.le(8, 2, "NPY header length")); hstart = 10; }
    else if (major == 2 || major == 3) { hlen = std::size_t(r.le(8, 4, "NPY header length")); hstart = 12; }
    else fail(6, "NPY version " + std::to_string(major) + " is not supported (1, 2 or 3)");
    if (hstart + hlen > npy.size()) fail(hstart, "NPY header runs past the end of the array");
    const std::string h(npy.begin() + long(hstart), npy.begin() + long(hstart + hlen));
    auto value_of = [&](const std::string& key) {
        auto k = h.find("'" + key + "'");
        if (k == std::string::npos) fail(hstart, "NPY header has no '" + key + "'");
        auto colon = h.find(':', k);
        if (colon == std::string::npos) fail(hstart + k, "NPY header: no ':' after '" + key + "'");
        auto v = h.find_first_not_of(' ', colon + 1);
        if (v == std::string::npos) fail(hstart + k, "NPY header: no value for '" + key + "'");
        return v;
    };
    entry e;
    e.name = name;
    auto d = value_of("descr");
    auto dend = h.find(h[d], d + 1);
    if ((h[d] != '\'' && h[d] != '"') || dend == std::string::npos) fail(hstart + d, "NPY header: bad 'descr'");
    e.dtype = h.substr(d + 1, dend - d - 1);
    if (e.dtype != "<f4" && e.dtype != "<f8")
        fail(hstart + d, "dtype '" + e.dtype + "' is not supported (only '<f4' and '<f8'; save float32 or float64)");
    auto f = value_of("fortran_order");
    if (h.compare(f, 4, "True") == 0)
        fail(hstart + f, "Fortran-order arrays are not supported (save with np.ascontiguousarray)");
    auto s = value_of("shape");
    if (h[s] != '(') fail(hstart + s, "NPY header: 'shape' is not a tuple");
    auto send = h.find(')', s);
    if (send == std::string::npos) fail(hstart + s, "NPY header: unterminated 'shape'");
    // Dimensions: decimal integers separated by commas, "(3,)" and "()" allowed.
    std::istringstream dims(h.substr(s + 1, send - s - 1));
    std::string tok;
    while (std::getline(dims, tok, ',')) {
        const auto a = tok.find_first_not_of(' ');
        if (a == std::string::npos) continue;
        const auto z = tok.find_last_not_of(' ');
        const std::string digits = tok.substr(a, z - a + 1);
        errno = 0;
        char* endp = nullptr;
        const unsigned long long v = std::strtoull(digits.c_str(), &endp, 10);
        if (digits.find_first_not_of("0123456789") != std::string::npos || errno == ERANGE ||
            endp != digits.c_str() + digits.size())
            fail(hstart + s, "NPY header: bad dimension '" + tok + "' (expected a whole number)");
        if (e.shape.size() == 32) fail(hstart + s, "NPY header: more than 32 dimensions");
        e.shape.push_back(std::size_t(v));
    }
    const std::size_t data_at = hstart + hlen;
    const std::size_t have = npy.size() - data_at;
    std::size_t elems = 0;
    if (!checked_count(e.shape, elem_size(e.dtype), elems))
        fail(data_at, "shape " + shape_str(e.shape) + " of " + e.dtype + " is too large (more than 2^62 bytes) but data has " +
                          std::to_string(have) + " bytes");
    const std::size_t want = elems * elem_size(e.dtype);
    if (have != want)
        fail(data_at, "data has " + std::to_string(have) + " bytes but shape " + shape_str(e.shape) + " of " + e.dtype +
                          " needs " + std::to_string(want));
    e.data.assign(npy.begin() + long(data_at), npy.end());
    return e;
}

// Inflate a raw deflate stream in chunks: memory follows what really comes
// out, and more output than the `out_size` the zip claims is an error.
bytes inflate_raw(const unsigned char* src, std::size_t n, std::size_t out_size, const std::string& path,
                  std::size_t at, const std::string& name) {
    bytes out;
    out.reserve(std::min<std::size_t>(out_size, std::size_t(1) << 20));
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) corrupt(path, at, "zlib inflateInit2 failed");
    std::size_t used_in = 0;
    int rc = Z_OK;
    unsigned char buf[1 << 15];
    while (rc != Z_STREAM_END) {
        if (zs.avail_in == 0 && used_in < n) {
            const std::size_t c = std::min<std::size_t>(n - used_in, 1u << 30);
            zs.next_in = const_cast<unsigned char*>(src + used_in);
            zs.avail_in = uInt(c);
            used_in += c;
        }
        zs.next_out = buf;
        zs.avail_out = sizeof buf;
        rc = inflate(&zs, Z_NO_FLUSH);
        const std::size_t produced = sizeof buf - zs.avail_out;
        if (out.size() + produced > out_size) {
            inflateEnd(&zs);
            corrupt(path, at, "member '" + name + "' inflates to more than the " + std::to_string(out_size) +
                                  " bytes the zip directory says");
        }
        out.insert(out.end(), buf, buf + produced);
        if (rc == Z_STREAM_END) break;
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && produced > 0)) {
            inflateEnd(&zs);
            corrupt(path, at, "member '" + name + "': deflate data is corrupt" +
                                  std::string(rc == Z_BUF_ERROR ? " (truncated)" : ""));
        }
    }
    inflateEnd(&zs);
    if (out.size() != out_size)
        corrupt(path, at, "member '" + name + "' inflates to " + std::to_string(out.size()) + " bytes but the zip directory says " +
                              std::to_string(out_size));
    return out;
}

}  // namespace

template <class T> entry make_entry(std::string name, const xt::xarray<T>& a) {
    static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "npz: float or double only");
    entry e;
    e.name = std::move(name);
    e.dtype = sizeof(T) == 4 ? "<f4" : "<f8";
    e.shape.assign(a.shape().begin(), a.shape().end());
    e.data.resize(a.size() * sizeof(T));
    // xarray is row-major and contiguous; the host is little-endian (x86-64).
    if (!e.data.empty()) std::memcpy(e.data.data(), a.data(), e.data.size());
    return e;
}

template <class T> xt::xarray<T> to_array(const entry& e, const std::string& path) {
    const char* want = sizeof(T) == 4 ? "<f4" : "<f8";
    if (e.dtype != want)
        throw npz_error(path + ": array '" + e.name + "' has dtype " + e.dtype + " but " + want +
                        " is needed (values are loaded bit-identically, never converted)");
    xt::xarray<T> a = xt::empty<T>(e.shape);
    if (!e.data.empty()) std::memcpy(a.data(), e.data.data(), e.data.size());
    return a;
}

void write(const std::string& path, const std::vector<entry>& entries) {
    bytes out, central;
    std::set<std::string> seen;
    for (const auto& e : entries) {
        if (!seen.insert(e.name).second) throw npz_error(path + ": array name '" + e.name + "' appears twice");
        if (e.dtype != "<f4" && e.dtype != "<f8") throw npz_error(path + ": array '" + e.name + "': bad dtype " + e.dtype);
        if (e.data.size() != count(e.shape) * elem_size(e.dtype))
            throw npz_error(path + ": array '" + e.name + "': data size does not match shape " + shape_str(e.shape));
        const bytes npy = npy_bytes(e);
        if (npy.size() >= 0xffffffffu || out.size() >= 0xffffffffu)
            throw npz_error(path + ": array '" + e.name + "' is too large for a zip without zip64");
        const std::string fname = e.name + ".npy";
        const std::uint32_t crc = std::uint32_t(crc32(0L, npy.data(), uInt(npy.size())));
        const std::uint32_t offset = std::uint32_t(out.size());
        // local file header (30 bytes + name): stored, fixed 1980-01-01 timestamp
        put32(out, 0x04034b50); put16(out, 20); put16(out, 0); put16(out, 0);
        put16(out, 0); put16(out, 0x21);
        put32(out, crc); put32(out, std::uint32_t(npy.size())); put32(out, std::uint32_t(npy.size()));
        put16(out, std::uint32_t(fname.size())); put16(out, 0);
        out.insert(out.end(), fname.begin(), fname.end());
        out.insert(out.end(), npy.begin(), npy.end());
        // central directory header (46 bytes + name)
        put32(central, 0x02014b50); put16(central, 20); put16(central, 20); put16(central, 0); put16(central, 0);
        put16(central, 0); put16(central, 0x21);
        put32(central, crc); put32(central, std::uint32_t(npy.size())); put32(central, std::uint32_t(npy.size()));
        put16(central, std::uint32_t(fname.size())); put16(central, 0); put16(central, 0);
        put16(central, 0); put16(central, 0); put32(central, 0); put32(central, offset);
        central.insert(central.end(), fname.begin(), fname.end());
    }
    if (entries.size() >= 0xffff) throw npz_error(path + ": too many arrays for a zip without zip64");
    const std::uint32_t cd_offset = std::uint32_t(out.size());
    out.insert(out.end(), central.begin(), central.end());
    // end of central directory record (22 bytes)
    put32(out, 0x06054b50); put16(out, 0); put16(out, 0);
    put16(out, std::uint32_t(entries.size())); put16(out, std::uint32_t(entries.size()));
    put32(out, std::uint32_t(central.size())); put32(out, cd_offset); put16(out, 0);

    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw npz_error(path + ": cannot write (" + std::strerror(errno) + "); does the directory exist?");
        f.write(reinterpret_cast<const char*>(out.data()), std::streamsize(out.size()));
        f.close();
        if (!f) {
            std::remove(tmp.c_str());
            throw npz_error(path + ": write failed (disk full?)");
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw npz_error(path + ": cannot replace the file (" + std::strerror(errno) + ")");
    }
}

namespace {

/// One member as the central directory describes it, checked before any inflation.
struct member {
    std::string fname;            ///< "<name>.npy"
    std::size_t dir_at = 0;       ///< its central directory entry
    std::size_t local = 0;        ///< its local header
    std::size_t data_at = 0;      ///< first byte of its (compressed) data
    std::uint64_t csize = 0, usize = 0;
    std::uint32_t crc = 0;
    unsigned method = 0;
};

// Bounds for what one .npz may unpack to. Members may not overlap, so the
// compressed sizes add up to at most the file; deflate expands at most ~1032:1.
constexpr std::uint64_t max_total_bytes = std::uint64_t(16) << 30;

}  // namespace

std::vector<entry> read(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw npz_error(path + ": cannot open (" + std::strerror(errno) + ")");
    const bytes file((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return read(file.data(), file.size(), path);
}

std::vector<entry> read(const unsigned char* data, std::size_t size, const std::string& path) {
    const byte_view b{data, size};
    reader r{b, path};
    if (b.size() < 22) corrupt(path, 0, "file has " + std::to_string(b.size()) + " bytes, too short for a zip archive");
    // The end-of-central-directory record is the last 22 bytes plus a comment of up to 64 KiB.
    std::size_t eocd = std::string::npos;
    const std::size_t lowest = b.size() > 22 + 0xffff ? b.size() - 22 - 0xffff : 0;
    for (std::size_t i = b.size() - 22 + 1; i-- > lowest;)
        if (r.le(i, 4, "signature") == 0x06054b50) { eocd = i; break; }
    if (eocd == std::string::npos)
        corrupt(path, b.size(), "no end-of-central-directory record (not a zip, or truncated)");
    std::uint64_t n_entries = r.le(eocd + 10, 2, "entry count");
    std::uint64_t cd_offset = r.le(eocd + 16, 4, "central directory offset");
    std::size_t cd_end = eocd;  // where the central directory must stop
    if (n_entries == 0xffff || cd_offset == 0xffffffff) {
        // zip64: a locator just before the record points at the zip64 end record.
        if (eocd < 20 || r.le(eocd - 20, 4, "zip64 locator") != 0x07064b50)
            corrupt(path, eocd, "zip64 fields without a zip64 locator");
        const std::uint64_t z = r.le(eocd - 20 + 8, 8, "zip64 end offset");
        if (z > eocd - 20) corrupt(path, eocd - 20 + 8, "zip64 end record offset " + std::to_string(z) + " is past the locator");
        if (r.le(std::size_t(z), 4, "zip64 end record") != 0x06064b50)
            corrupt(path, std::size_t(z), "bad zip64 end-of-central-directory signature");
        n_entries = r.le(std::size_t(z) + 32, 8, "zip64 entry count");
        cd_offset = r.le(std::size_t(z) + 48, 8, "zip64 central directory offset");
        cd_end = std::size_t(z);
    }
    if (cd_offset > cd_end)
        corrupt(path, eocd + 16, "central directory offset " + std::to_string(cd_offset) + " is past its end record at byte " +
                                     std::to_string(cd_end));
    // Each entry takes at least 46 bytes: a count the directory cannot hold is a lie.
    if (n_entries > (cd_end - cd_offset) / 46)
        corrupt(path, eocd + 10, "the zip says " + std::to_string(n_entries) + " entries but its central directory holds " +
                                     std::to_string(cd_end - cd_offset) + " bytes (46 or more per entry)");

    // Pass 1: every name, offset and size is checked before anything is inflated.
    std::vector<member> members;
    std::set<std::string> names;
    std::uint64_t total = 0;
    std::size_t at = std::size_t(cd_offset);
    for (std::uint64_t k = 0; k < n_entries; ++k) {
        member m;
        m.dir_at = at;
        if (r.le(at, 4, "central directory entry") != 0x02014b50)
            corrupt(path, at, "bad central directory signature for entry " + std::to_string(k));
        m.method = unsigned(r.le(at + 10, 2, "compression method"));
        m.crc = std::uint32_t(r.le(at + 16, 4, "crc32"));
        m.csize = r.le(at + 20, 4, "compressed size");
        m.usize = r.le(at + 24, 4, "size");
        const auto name_len = std::size_t(r.le(at + 28, 2, "name length"));
        const auto extra_len = std::size_t(r.le(at + 30, 2, "extra length"));
        const auto comment_len = std::size_t(r.le(at + 32, 2, "comment length"));
        std::uint64_t local = r.le(at + 42, 4, "local header offset");
        r.need(at + 46, name_len + extra_len + comment_len, "entry name");
        m.fname.assign(b.begin() + long(at + 46), b.begin() + long(at + 46 + name_len));
        // zip64 extra field (id 1): only the fields that are 0xffffffff above, in this order.
        const std::size_t extra_end = at + 46 + name_len + extra_len;
        for (std::size_t x = at + 46 + name_len; x + 4 <= extra_end;) {
            const auto id = r.le(x, 2, "extra id"), len = std::size_t(r.le(x + 2, 2, "extra length"));
            const std::size_t field_end = std::min(x + 4 + len, extra_end);
            if (id == 1) {
                std::size_t p = x + 4;
                auto next = [&](std::uint64_t& v, const char* what) {
                    if (p + 8 > field_end) corrupt(path, p, std::string("zip64 extra field too short for the ") + what);
                    v = r.le(p, 8, what);
                    p += 8;
                };
                if (m.usize == 0xffffffff) next(m.usize, "zip64 size");
                if (m.csize == 0xffffffff) next(m.csize, "zip64 compressed size");
                if (local == 0xffffffff) next(local, "zip64 offset");
            }
            x += 4 + len;
        }
        if (m.fname.size() < 4 || m.fname.compare(m.fname.size() - 4, 4, ".npy") != 0)
            corrupt(path, at + 46, "member '" + m.fname + "' is not a .npy array");
        const std::string name = m.fname.substr(0, m.fname.size() - 4);
        if (!names.insert(name).second) corrupt(path, at + 46, "array '" + name + "' appears twice");
        if (m.method != 0 && m.method != 8)
            corrupt(path, at + 10, "member '" + m.fname + "' uses compression method " + std::to_string(m.method) +
                                       " (only stored and deflate are supported)");
        if (m.method == 0 && m.csize != m.usize)
            corrupt(path, at + 20, "stored member '" + m.fname + "' has different sizes");
        // deflate cannot expand more than ~1032:1; a larger claim is corruption, not a reason to allocate
        if (m.method == 8 && m.usize > m.csize * 1032 + 1024)
            corrupt(path, at + 24, "member '" + m.fname + "' claims an impossible uncompressed size");
        // The local header repeats the name (it must be the same) and has its own extra field; the data follows.
        if (local >= cd_offset)
            corrupt(path, at + 42, "local header of '" + m.fname + "' at byte " + std::to_string(local) +
                                       " is not before the central directory (byte " + std::to_string(cd_offset) + ")");
        m.local = std::size_t(local);
        if (r.le(m.local, 4, "local header") != 0x04034b50)
            corrupt(path, m.local, "bad local header signature for '" + m.fname + "'");
        const auto local_name = std::size_t(r.le(m.local + 26, 2, "name length"));
        const auto local_extra = std::size_t(r.le(m.local + 28, 2, "extra length"));
        r.need(m.local + 30, local_name, "local name");
        if (local_name != name_len || std::memcmp(b.data() + m.local + 30, b.data() + at + 46, name_len) != 0)
            corrupt(path, m.local + 30, "the local header's name differs from the directory's '" + m.fname + "'");
        m.data_at = m.local + 30 + local_name + local_extra;
        if (m.data_at > cd_offset || m.csize > cd_offset - m.data_at)
            corrupt(path, m.data_at, "data of '" + m.fname + "' (" + std::to_string(m.csize) +
                                         " bytes) runs past the start of the central directory at byte " +
                                         std::to_string(cd_offset));
        total += m.usize;
        if (total > max_total_bytes)
            corrupt(path, at + 24, "the arrays add up to more than " + std::to_string(max_total_bytes >> 30) +
                                       " GiB uncompressed, more than this reader accepts");
        members.push_back(std::move(m));
        at += 46 + name_len + extra_len + comment_len;
    }
    // Members may not share bytes: many directory entries pointing at one
    // compressed block is how a small zip claims gigabytes.
    std::vector<const member*> by_offset;
    for (const auto& m : members) by_offset.push_back(&m);
    std::sort(by_offset.begin(), by_offset.end(), [](const member* x, const member* y) { return x->local < y->local; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
        const member& prev = *by_offset[i - 1];
        const member& cur = *by_offset[i];
        const std::size_t prev_end = prev.data_at + std::size_t(prev.csize);
        if (cur.local < prev_end)
            corrupt(path, cur.local, "members '" + prev.fname + "' (bytes " + std::to_string(prev.local) + "-" +
                                         std::to_string(prev_end) + ") and '" + cur.fname + "' (from byte " +
                                         std::to_string(cur.local) +
                                         ") overlap; a valid .npz never shares data between arrays (zip bomb?)");
    }

    // Pass 2: unpack, check the CRC, parse.
    std::vector<entry> out;
    for (const auto& m : members) {
        bytes npy;
        if (m.method == 0) npy.assign(b.begin() + long(m.data_at), b.begin() + long(m.data_at + m.csize));
        else npy = inflate_raw(b.data() + m.data_at, std::size_t(m.csize), std::size_t(m.usize), path, m.data_at, m.fname);
        const auto actual = std::uint32_t(crc32_z(0L, npy.data(), npy.size()));
        if (actual != m.crc) {
            std::ostringstream os;
            os << "CRC-32 mismatch in '" << m.fname << "' (stored " << std::hex << m.crc << ", computed " << actual
               << "): the data is damaged";
            corrupt(path, m.data_at, os.str());
        }
        out.push_back(parse_npy(npy, path, m.data_at, m.fname.substr(0, m.fname.size() - 4)));
    }
    return out;
}

template entry make_entry<float>(std::string, const xt::xarray<float>&);
template entry make_entry<double>(std::string, const xt::xarray<double>&);
template xt::xarray<float> to_array<float>(const entry&, const std::string&);
template xt::xarray<double> to_array<double>(const entry&, const std::string&);

}  // namespace tapegrad::npz
