// Loaders never trust a length field (issue #15, section 1): IDX counts are
// checked against the bytes actually present (after decompression), the digits
// CSV parses every field exactly, and an .npz is checked member by member
// (names, offsets, overlaps, total size, shapes) before anything is inflated.
// Each case asserts the whole message: file, counts and byte offset.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include "data/dataset.hpp"
#include "io/npz.hpp"

namespace fs = std::filesystem;
using namespace tapegrad;
using bytes = std::vector<unsigned char>;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        static int counter = 0;
        path = fs::temp_directory_path() /
               ("tapegrad_bounds_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

void put_be32(bytes& b, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}
void put16(bytes& b, std::uint32_t v) {
    b.push_back(static_cast<unsigned char>(v));
    b.push_back(static_cast<unsigned char>(v >> 8));
}
void put32(bytes& b, std::uint32_t v) {
    put16(b, v & 0xffff);
    put16(b, v >> 16);
}

bytes idx_bytes(std::uint32_t magic, const std::vector<std::uint32_t>& dims, const bytes& data) {
    bytes b;
    put_be32(b, magic);
    for (auto d : dims) put_be32(b, d);
    b.insert(b.end(), data.begin(), data.end());
    return b;
}

void write_plain(const std::string& path, const bytes& b) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
void write_text(const std::string& path, const std::string& s) { write_plain(path, bytes(s.begin(), s.end())); }

void write_gz(const std::string& path, const bytes& b) {
    gzFile f = gzopen(path.c_str(), "wb1");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
    gzclose(f);
}

template <class E, class F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    FAIL("expected an exception");
    return "";
}
template <class F> std::string data_error_of(F&& f) { return error_of<data::data_error>(f); }
template <class F> std::string npz_error_of(F&& f) { return error_of<npz::npz_error>(f); }

// ------------------------------------------------------------- npz builders

/// An NPY v1.0 array: `header` is the dict literal, `data` the element bytes.
bytes npy(const std::string& header, std::size_t data_bytes) {
    std::string h = header;
    h.append((64 - (10 + h.size() + 1) % 64) % 64, ' ');
    h += '\n';
    bytes b = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    put16(b, static_cast<std::uint32_t>(h.size()));
    b.insert(b.end(), h.begin(), h.end());
    b.resize(b.size() + data_bytes, 0);
    return b;
}

bytes deflate_raw(const bytes& in) {
    z_stream zs{};
    REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    bytes out(deflateBound(&zs, in.size()) + 16);
    zs.next_in = const_cast<unsigned char*>(in.data());
    zs.avail_in = static_cast<uInt>(in.size());
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

/// One member of a hand-built zip; -1 fields take the honest value.
struct member {
    std::string name;
    bytes content;            ///< the uncompressed bytes
    bool deflate = false;
    std::int64_t usize = -1;  ///< claimed uncompressed size
    std::int64_t local = -1;  ///< claimed local header offset
};

/// A zip in the layout np.savez writes: local header + data for each member,
/// then the central directory and its end record. `n_entries` overrides the count.
bytes make_zip(const std::vector<member>& ms, std::int64_t n_entries = -1) {
    bytes out, central;
    for (const auto& m : ms) {
        const bytes data = m.deflate ? deflate_raw(m.content) : m.content;
        const auto crc = static_cast<std::uint32_t>(crc32(0, m.content.data(), static_cast<uInt>(m.content.size())));
        const auto usize = static_cast<std::uint32_t>(m.usize >= 0 ? m.usize : std::int64_t(m.content.size()));
        const auto offset = static_cast<std::uint32_t>(out.size());
        const std::uint16_t method = m.deflate ? 8 : 0;
        put32(out, 0x04034b50); put16(out, 20); put16(out, 0); put16(out, method); put16(out, 0); put16(out, 0x21);
        put32(out, crc); put32(out, static_cast<std::uint32_t>(data.size())); put32(out, usize);
        put16(out, static_cast<std::uint32_t>(m.name.size())); put16(out, 0);
        out.insert(out.end(), m.name.begin(), m.name.end());
        out.insert(out.end(), data.begin(), data.end());
        put32(central, 0x02014b50); put16(central, 20); put16(central, 20); put16(central, 0); put16(central, method);
        put16(central, 0); put16(central, 0x21);
        put32(central, crc); put32(central, static_cast<std::uint32_t>(data.size())); put32(central, usize);
        put16(central, static_cast<std::uint32_t>(m.name.size())); put16(central, 0); put16(central, 0);
        put16(central, 0); put16(central, 0); put32(central, 0);
        put32(central, m.local >= 0 ? static_cast<std::uint32_t>(m.local) : offset);
        central.insert(central.end(), m.name.begin(), m.name.end());
    }
    const auto cd = static_cast<std::uint32_t>(out.size());
    out.insert(out.end(), central.begin(), central.end());
    const auto n = static_cast<std::uint32_t>(n_entries >= 0 ? n_entries : std::int64_t(ms.size()));
    put32(out, 0x06054b50); put16(out, 0); put16(out, 0); put16(out, n); put16(out, n);
    put32(out, static_cast<std::uint32_t>(central.size())); put32(out, cd); put16(out, 0);
    return out;
}

const std::string f4_3 = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";

std::string digits_row(const std::string& last_fields = "1,2") {
    std::string row;
    for (int k = 0; k < 63; ++k) row += "1,";
    return row + last_fields + "\n";
}

}  // namespace

// ------------------------------------------------------------------- IDX

TEST_CASE("IDX: a 9-byte labels file claiming 4294967295 items is refused without allocating") {
    temp_dir t;
    write_plain(t.file("labels"), idx_bytes(0x801, {0xffffffffu}, {7}));
    CHECK(data_error_of([&] { data::read_idx(t.file("labels"), 1); }) ==
          t.file("labels") + " says 4294967295 items (4294967295 bytes of data) but holds 1 bytes after its 8-byte "
                             "header: truncated: the data ends at byte 9, expected 4294967303 bytes; is the file "
                             "complete?");
}

TEST_CASE("IDX: a 16-byte images file claiming 60000 x 28 x 28 is refused") {
    temp_dir t;
    write_plain(t.file("images"), idx_bytes(0x803, {60000, 28, 28}, {}));
    CHECK(data_error_of([&] { data::read_idx(t.file("images"), 3); }) ==
          t.file("images") + " says 60000 items of 28 x 28 bytes (47040000 bytes of data) but holds 0 bytes after "
                             "its 16-byte header: truncated: the data ends at byte 16, expected 47040016 bytes; is "
                             "the file complete?");
}

TEST_CASE("IDX gzip: counts are checked against what decompresses, read in chunks") {
    temp_dir t;
    write_gz(t.file("labels.gz"), idx_bytes(0x801, {0xffffffffu}, {1, 2, 3}));
    CHECK(data_error_of([&] { data::read_idx(t.file("labels.gz"), 1); }) ==
          t.file("labels.gz") + " says 4294967295 items (4294967295 bytes of data) but holds 3 bytes "
                                "(decompressed) after its 8-byte header: truncated: the data ends at byte 11, "
                                "expected 4294967303 bytes; is the file complete?");
    // More than one read chunk (4 MiB) arrives before the shortfall shows.
    bytes px(5u << 20, 9);
    write_gz(t.file("images.gz"), idx_bytes(0x803, {10000, 28, 28}, px));
    CHECK(data_error_of([&] { data::read_idx(t.file("images.gz"), 3); }) ==
          t.file("images.gz") + " says 10000 items of 28 x 28 bytes (7840000 bytes of data) but holds 5242880 bytes "
                                "(decompressed) after its 16-byte header: truncated: the data ends at byte "
                                "5242896, expected 7840016 bytes; is the file complete?");
}

TEST_CASE("IDX: a large honest file still loads across read chunks") {
    temp_dir t;
    bytes px(3 * 1000 * 2000);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(i * 7);
    write_gz(t.file("big.gz"), idx_bytes(0x803, {3, 1000, 2000}, px));
    write_plain(t.file("big"), idx_bytes(0x803, {3, 1000, 2000}, px));
    for (const char* name : {"big.gz", "big"}) {
        const auto a = data::read_idx(t.file(name), 3);
        CHECK(a.dims == std::vector<std::uint32_t>{3, 1000, 2000});
        CHECK(a.data == px);
    }
}

TEST_CASE("IDX: dimensions whose product overflows are refused at their byte") {
    temp_dir t;
    write_plain(t.file("huge"), idx_bytes(0x803, {0x10000u, 0x10000u, 2}, {}));
    CHECK(data_error_of([&] { data::read_idx(t.file("huge"), 3); }) ==
          t.file("huge") + ": implausible dimension 2 at byte 12: the data would exceed 4 GiB");
}

TEST_CASE("IDX pairs: no images, or images of zero pixels, are refused naming the header bytes") {
    temp_dir t;
    write_plain(t.file("img0"), idx_bytes(0x803, {0, 28, 28}, {}));
    write_plain(t.file("lbl0"), idx_bytes(0x801, {0}, {}));
    const std::vector<std::string> classes = {"a", "b"};
    CHECK(data_error_of([&] { data::load_idx_pair(t.file("img0"), t.file("lbl0"), classes, "x"); }) ==
          t.file("img0") + ": holds no images (bytes 4-7 of the header are 0)");
    write_plain(t.file("imgw"), idx_bytes(0x803, {2, 0, 28}, {}));
    write_plain(t.file("lbl2"), idx_bytes(0x801, {2}, {0, 1}));
    CHECK(data_error_of([&] { data::load_idx_pair(t.file("imgw"), t.file("lbl2"), classes, "x"); }) ==
          t.file("imgw") + ": images of 0 x 28 pixels (bytes 8-15 of the header): each needs at least one");
}

// ------------------------------------------------------------------- CSV

TEST_CASE("digits CSV: fields are whole numbers, exactly") {
    temp_dir t;
    const std::string one = digits_row("1,3");
    struct bad {
        std::string text, message;
    };
    const std::vector<bad> cases = {
        {std::string("5\0,", 3), "line 1, field 1 (byte 0): not an integer: '5\\x00'"},
        {"+5,", "line 1, field 1 (byte 0): not an integer: '+5'"},
        {" 5,", "line 1, field 1 (byte 0): not an integer: ' 5'"},
        {"5 ,", "line 1, field 1 (byte 0): not an integer: '5 '"},
        {"-,", "line 1, field 1 (byte 0): not an integer: '-'"},
        {",", "line 1, field 1 (byte 0): not an integer: ''"},
        {std::string(40, 'x') + ",", "line 1, field 1 (byte 0): not an integer: 'xxxxxxxxxxxxxxxxxxxxxxxx... (40 bytes)'"},
        {"\x1b[2J,", "line 1, field 1 (byte 0): not an integer: '\\x1b[2J'"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.message);
        write_text(t.file("bad.csv"), c.text + one.substr(2));
        CHECK(data_error_of([&] { data::load_digits_csv(t.file("bad.csv")); }) ==
              t.file("bad.csv") + ": " + c.message +
                  " (expected a whole number: 0..16 for a pixel, 0..9 for the label)");
    }
}

TEST_CASE("digits CSV: out-of-range values name the line, byte and text") {
    temp_dir t;
    write_text(t.file("neg.csv"), "-1," + digits_row().substr(2));
    CHECK(data_error_of([&] { data::load_digits_csv(t.file("neg.csv")); }) ==
          t.file("neg.csv") + ": line 1 (byte 0): pixel 0 = -1 is outside 0..16");
    write_text(t.file("big.csv"), digits_row() + "99999999999999999999," + digits_row().substr(2));
    CHECK(data_error_of([&] { data::load_digits_csv(t.file("big.csv")); }) ==
          t.file("big.csv") + ": line 2 (byte 130): pixel 0 = 99999999999999999999 is outside 0..16");
    write_text(t.file("label.csv"), digits_row("1,10"));
    CHECK(data_error_of([&] { data::load_digits_csv(t.file("label.csv")); }) ==
          t.file("label.csv") + ": line 1: label 10 is out of range (byte 128): there are 10 classes (0..9)");
}

TEST_CASE("digits CSV: a line of a million fields stops at the 66th") {
    temp_dir t;
    std::string row;
    for (int k = 0; k < 1000000; ++k) row += "1,";
    write_text(t.file("wide.csv"), digits_row() + row + "1\n");
    CHECK(data_error_of([&] { data::load_digits_csv(t.file("wide.csv")); }) ==
          t.file("wide.csv") + ": line 2 (byte 130) has more than 65 values, expected 65 (64 pixels then the label)");
}

TEST_CASE("digits CSV: a gzip bomb stops at 64 MiB; an empty file has no rows") {
    temp_dir t;
    write_gz(t.file("bomb.csv.gz"), bytes((64u << 20) + 10, '1'));
    CHECK(data_error_of([&] { data::load_digits_csv(t.file("bomb.csv.gz")); }) ==
          t.file("bomb.csv.gz") +
              ": holds more than 67108864 bytes after decompression, more than this loader accepts; is it the right "
              "file?");
    write_text(t.file("empty.csv"), "\n\r\n\n");
    CHECK(data_error_of([&] { data::load_digits_csv(t.file("empty.csv")); }) ==
          t.file("empty.csv") + ": no rows (4 bytes); expected 65 values a line");
}

TEST_CASE("digits CSV: CRLF lines, blank lines and leading zeros are accepted") {
    temp_dir t;
    std::string row = digits_row("016,9");
    row.insert(row.size() - 1, "\r");
    write_text(t.file("ok.csv"), "\n" + row + "\n" + digits_row("0,0"));
    const auto d = data::load_digits_csv(t.file("ok.csv"));
    REQUIRE(d.size() == 2);
    CHECK(d.x[63] == 16.f);
    CHECK(d.y == std::vector<std::size_t>{9, 0});
}

// ------------------------------------------------------------------- npz

TEST_CASE("npz: a shape whose element count overflows is refused, not wrapped") {
    temp_dir t;
    // (2^61+1) * 8 elements * 4 bytes wraps to 32 in 64 bits.
    const std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2305843009213693953, 8), }";
    const bytes arr = npy(h, 32);
    write_plain(t.file("wrap.npz"), make_zip({{"w.npy", arr}}));
    CHECK(npz_error_of([&] { npz::read(t.file("wrap.npz")); }) ==
          t.file("wrap.npz") + ": corrupt or unsupported .npz at byte offset " + std::to_string(35 + arr.size() - 32) +
              ": array 'w': shape "
                               "[2305843009213693953, 8] of <f4 is too large (more than 2^62 bytes) but data has 32 "
                               "bytes");
    // A zero dimension makes the count 0, but the strides would still overflow.
    const std::string z = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904), }";
    write_plain(t.file("zero.npz"), make_zip({{"z.npy", npy(z, 0)}}));
    CHECK(npz_error_of([&] { npz::read(t.file("zero.npz")); }).find("shape [0, 4611686018427387904] of <f4 is too large") !=
          std::string::npos);
}

TEST_CASE("npz: dimensions must be whole numbers, at most 32 of them") {
    temp_dir t;
    struct bad {
        std::string shape, message;
    };
    const std::vector<bad> cases = {
        {"(-1,)", "NPY header: bad dimension '-1' (expected a whole number)"},
        {"(3x,)", "NPY header: bad dimension '3x' (expected a whole number)"},
        {"(2 3,)", "NPY header: bad dimension '2 3' (expected a whole number)"},
        {"(99999999999999999999999,)", "NPY header: bad dimension '99999999999999999999999' (expected a whole number)"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.shape);
        const std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + c.shape + ", }";
        write_plain(t.file("dims.npz"), make_zip({{"a.npy", npy(h, 12)}}));
        // byte offset: 30 + 5 (local header + name) + 10 (NPY preamble) + where 'shape''s value starts
        const std::size_t at = 35 + 10 + h.find("(");
        CHECK(npz_error_of([&] { npz::read(t.file("dims.npz")); }) ==
              t.file("dims.npz") + ": corrupt or unsupported .npz at byte offset " + std::to_string(at) + ": array 'a': " +
                  c.message);
    }
    std::string many = "(";
    for (int k = 0; k < 33; ++k) many += "1, ";
    many += ")";
    const std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + many + ", }";
    write_plain(t.file("many.npz"), make_zip({{"a.npy", npy(h, 4)}}));
    CHECK(npz_error_of([&] { npz::read(t.file("many.npz")); }).find("array 'a': NPY header: more than 32 dimensions") !=
          std::string::npos);
}

TEST_CASE("npz zip bomb: members sharing compressed data are refused before inflating") {
    temp_dir t;
    // 'b.npy' lives inside the data of 'a.npy' (a stored member holding a
    // complete local header + data): two directory entries, one set of bytes.
    const bytes inner = npy(f4_3, 12);
    bytes b_local;
    put32(b_local, 0x04034b50); put16(b_local, 20); put16(b_local, 0); put16(b_local, 0); put16(b_local, 0);
    put16(b_local, 0x21);
    put32(b_local, static_cast<std::uint32_t>(crc32(0, inner.data(), static_cast<uInt>(inner.size()))));
    put32(b_local, static_cast<std::uint32_t>(inner.size())); put32(b_local, static_cast<std::uint32_t>(inner.size()));
    put16(b_local, 5); put16(b_local, 0);
    b_local.insert(b_local.end(), {'b', '.', 'n', 'p', 'y'});
    b_local.insert(b_local.end(), inner.begin(), inner.end());
    // a.npy's data starts at 35; b.npy's local header is its first byte.
    write_plain(t.file("overlap.npz"), make_zip({{"a.npy", b_local}, {"b.npy", inner, false, -1, 35}}));
    // make_zip wrote b.npy's own copy too; the directory entry points inside a.npy instead.
    CHECK(npz_error_of([&] { npz::read(t.file("overlap.npz")); }) ==
          t.file("overlap.npz") + ": corrupt or unsupported .npz at byte offset 35: members 'a.npy' (bytes 0-" +
              std::to_string(35 + b_local.size()) +
              ") and 'b.npy' (from byte 35) overlap; a valid .npz never shares data between arrays (zip bomb?)");

    // Two entries naming one local header: the names cannot both match it.
    write_plain(t.file("same.npz"), make_zip({{"a.npy", inner}, {"b.npy", inner, false, -1, 0}}));
    CHECK(npz_error_of([&] { npz::read(t.file("same.npz")); }) ==
          t.file("same.npz") + ": corrupt or unsupported .npz at byte offset 30: the local header's name differs "
                               "from the directory's 'b.npy'");
}

TEST_CASE("npz: names are checked before anything is inflated") {
    temp_dir t;
    // The first member's deflate data is garbage, but the second member's bad
    // name is found first: the directory is checked in full before inflating.
    member broken{"a.npy", npy(f4_3, 12), true};
    bytes zip = make_zip({broken, {"notes.txt", bytes(5, 'x')}});
    zip[35] ^= 0xff;
    zip[36] ^= 0xff;
    write_plain(t.file("names.npz"), zip);
    const std::string msg = npz_error_of([&] { npz::read(t.file("names.npz")); });
    CHECK(msg.find(": member 'notes.txt' is not a .npy array") != std::string::npos);
    CHECK(msg.find(t.file("names.npz") + ": corrupt or unsupported .npz at byte offset ") == 0);
}

TEST_CASE("npz: an entry count the central directory cannot hold is a lie") {
    temp_dir t;
    const bytes zip = make_zip({{"a.npy", npy(f4_3, 12)}}, 1000);
    write_plain(t.file("count.npz"), zip);
    CHECK(npz_error_of([&] { npz::read(t.file("count.npz")); }) ==
          t.file("count.npz") + ": corrupt or unsupported .npz at byte offset " + std::to_string(zip.size() - 12) +
              ": the zip says 1000 entries but its central directory holds 51 bytes (46 or more per entry)");
}

TEST_CASE("npz: deflate output is held to the size the directory claims") {
    temp_dir t;
    const bytes content = npy(f4_3, 12);
    write_plain(t.file("more.npz"), make_zip({{"a.npy", content, true, std::int64_t(content.size()) - 1}}));
    CHECK(npz_error_of([&] { npz::read(t.file("more.npz")); }) ==
          t.file("more.npz") + ": corrupt or unsupported .npz at byte offset 35: member 'a.npy' inflates to more "
                               "than the " + std::to_string(content.size() - 1) + " bytes the zip directory says");
    write_plain(t.file("less.npz"), make_zip({{"a.npy", content, true, std::int64_t(content.size()) + 1}}));
    CHECK(npz_error_of([&] { npz::read(t.file("less.npz")); }) ==
          t.file("less.npz") + ": corrupt or unsupported .npz at byte offset 35: member 'a.npy' inflates to " +
              std::to_string(content.size()) + " bytes but the zip directory says " +
              std::to_string(content.size() + 1));
    write_plain(t.file("ratio.npz"), make_zip({{"a.npy", content, true, 1 << 30}}));
    CHECK(npz_error_of([&] { npz::read(t.file("ratio.npz")); }).find("member 'a.npy' claims an impossible uncompressed size") !=
          std::string::npos);
}

TEST_CASE("npz: offsets must point before the central directory") {
    temp_dir t;
    const bytes content = npy(f4_3, 12);
    const bytes ok = make_zip({{"a.npy", content}});
    const std::size_t cd = 35 + content.size();
    write_plain(t.file("local.npz"), make_zip({{"a.npy", content, false, -1, std::int64_t(cd)}}));
    CHECK(npz_error_of([&] { npz::read(t.file("local.npz")); }) ==
          t.file("local.npz") + ": corrupt or unsupported .npz at byte offset " + std::to_string(cd + 42) +
              ": local header of 'a.npy' at byte " + std::to_string(cd) +
              " is not before the central directory (byte " + std::to_string(cd) + ")");
    // The directory offset in the end record points past the record itself.
    bytes past = ok;
    const std::size_t eocd = past.size() - 22;
    past[eocd + 16] = 0xff;
    past[eocd + 17] = 0xff;
    write_plain(t.file("cd.npz"), past);
    CHECK(npz_error_of([&] { npz::read(t.file("cd.npz")); }) ==
          t.file("cd.npz") + ": corrupt or unsupported .npz at byte offset " + std::to_string(eocd + 16) +
              ": central directory offset " + std::to_string(0xffff) + " is past its end record at byte " +
              std::to_string(eocd));
    // A compressed size running into the directory.
    member grown{"a.npy", content};
    bytes big = make_zip({grown});
    big[cd + 20] = static_cast<unsigned char>(content.size() + 10);  // compressed size (low byte)
    big[cd + 24] = static_cast<unsigned char>(content.size() + 10);  // size
    write_plain(t.file("run.npz"), big);
    CHECK(npz_error_of([&] { npz::read(t.file("run.npz")); }) ==
          t.file("run.npz") + ": corrupt or unsupported .npz at byte offset 35: data of 'a.npy' (" +
              std::to_string(content.size() + 10) + " bytes) runs past the start of the central directory at byte " +
              std::to_string(cd));
}

TEST_CASE("npz: the total claimed by all members is bounded before inflating") {
    temp_dir t;
    // 17 members of 1 MiB compressed, each claiming 1032 MiB (the most deflate
    // can expand to): 17.1 GiB in all, more than the 16 GiB bound.
    std::vector<member> ms;
    for (int k = 0; k < 17; ++k) ms.push_back({"m" + std::to_string(k) + ".npy", bytes(1u << 20, 0)});
    bytes zip = make_zip(ms);
    // Rewrite each directory entry as deflate with the large claim.
    std::size_t at = zip[zip.size() - 6] | (zip[zip.size() - 5] << 8) | (zip[zip.size() - 4] << 16) |
         (std::size_t(zip[zip.size() - 3]) << 24);
    std::size_t last_size_field = 0;
    for (int k = 0; k < 17; ++k) {
        const std::size_t name_len = zip[at + 28] | (zip[at + 29] << 8);
        zip[at + 10] = 8;
        const std::uint32_t claim = 1032u << 20;
        for (int i = 0; i < 4; ++i) zip[at + 24 + i] = static_cast<unsigned char>(claim >> (8 * i));
        if (k == 15) last_size_field = at + 24;  // 16 x 1032 MiB is the first total over 16 GiB
        at += 46 + name_len;
    }
    write_plain(t.file("total.npz"), zip);
    CHECK(npz_error_of([&] { npz::read(t.file("total.npz")); }) ==
          t.file("total.npz") + ": corrupt or unsupported .npz at byte offset " + std::to_string(last_size_field) +
              ": the arrays add up to more than 16 GiB uncompressed, more than this reader accepts");
}
