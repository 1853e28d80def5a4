// The loaders' in-memory entry points (what tests/fuzz drives) run the same
// code as the file-based ones: a file's bytes give the same result as the
// file, and errors name the buffer and the byte offset.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
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

bytes slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f);
    return bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void spill(const std::string& path, const bytes& b) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(f);
}

bytes gzip(const bytes& in) {
    uLongf n = compressBound(static_cast<uLong>(in.size())) + 32;
    bytes out(n);
    z_stream zs{};
    REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    zs.next_in = const_cast<unsigned char*>(in.data());
    zs.avail_in = static_cast<uInt>(in.size());
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

template <class F> std::string error_of(F f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no error)";
}

std::string temp_file(const std::string& name) {
    return (fs::temp_directory_path() / ("tapegrad_memory_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

TEST_CASE("IDX in memory: plain and gzip bytes read like the file; a cut buffer names itself and the byte") {
    // 2 images of 2 x 3 pixels.
    const bytes idx = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (const bool gz : {false, true}) {
        CAPTURE(gz);
        const bytes file = gz ? gzip(idx) : idx;
        const std::string path = temp_file(gz ? "images.gz" : "images");
        spill(path, file);
        const data::idx_array from_file = data::read_idx(path, 3);
        const data::idx_array from_memory = data::read_idx(file.data(), file.size(), "images buffer", 3);
        fs::remove(path);
        CHECK(from_memory.dims == std::vector<std::uint32_t>{2, 2, 3});
        CHECK(from_memory.dims == from_file.dims);
        CHECK(from_memory.data == bytes(idx.begin() + 16, idx.end()));
        CHECK(from_memory.data == from_file.data);
    }
    const bytes cut(idx.begin(), idx.end() - 5);
    CHECK(error_of([&] { data::read_idx(cut.data(), cut.size(), "images buffer", 3); }) ==
          "images buffer says 2 items of 2 x 3 bytes (12 bytes of data) but holds 7 bytes after its 16-byte header: "
          "truncated: the data ends at byte 23, expected 28 bytes; is the file complete?");
    // A gzip stream cut in its middle: the bytes that did inflate are counted.
    const bytes gz = gzip(idx);
    const bytes gz_cut(gz.begin(), gz.begin() + static_cast<long>(gz.size()) - 10);
    const std::string msg = error_of([&] { data::read_idx(gz_cut.data(), gz_cut.size(), "images.gz buffer", 3); });
    CHECK(msg.rfind("images.gz buffer", 0) == 0);
    CHECK(msg.find("truncated") != std::string::npos);
    // Nothing at all.
    CHECK(error_of([&] { data::read_idx(nullptr, 0, "empty buffer", 1); }) ==
          "empty buffer: truncated: the file ends at byte 0 inside the 4-byte magic number");
}

TEST_CASE("digits CSV in memory: the shipped file's bytes give the file's data set; bad bytes name the buffer") {
    const std::string path = data::digits_path();
    const bytes file = slurp(path);
    const data::dataset a = data::load_digits_csv(path);
    const data::dataset b = data::load_digits_csv(file.data(), file.size(), "digits buffer");
    REQUIRE(b.size() == 1797);
    CHECK(b.x == a.x);
    CHECK(b.y == a.y);
    CHECK(b.class_names == a.class_names);
    // The gzip stream cut short: refused, naming the buffer.
    const std::string cut = error_of([&] { data::load_digits_csv(file.data(), file.size() / 2, "digits buffer"); });
    CHECK(cut.rfind("digits buffer: truncated gzip stream after ", 0) == 0);
    // A plain row with a bad field: the buffer, line, field and byte.
    std::string row;
    for (int k = 0; k < 64; ++k) row += "1,";
    const std::string text = row + "1\n" + row.substr(0, 10) + "x," + row.substr(12) + "1\n";
    CHECK(error_of([&] {
              data::load_digits_csv(reinterpret_cast<const unsigned char*>(text.data()), text.size(), "csv buffer");
          }) == "csv buffer: line 2, field 6 (byte 140): not an integer: 'x' (expected a whole number: 0..16 for a "
                "pixel, 0..9 for the label)");
}

TEST_CASE("npz in memory: numpy's file's bytes give the file's arrays; a cut buffer names itself and the byte") {
    for (const char* fixture : {"numpy_mlp_f32.npz", "numpy_mlp_f64_compressed.npz"}) {
        CAPTURE(fixture);
        const std::string path = std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/checkpoint/" + fixture;
        const bytes file = slurp(path);
        const std::vector<npz::entry> a = npz::read(path);
        const std::vector<npz::entry> b = npz::read(file.data(), file.size(), "npz buffer");
        REQUIRE(b.size() == a.size());
        REQUIRE(!b.empty());
        for (std::size_t i = 0; i < a.size(); ++i) {
            CHECK(b[i].name == a[i].name);
            CHECK(b[i].dtype == a[i].dtype);
            CHECK(b[i].shape == a[i].shape);
            CHECK(b[i].data == a[i].data);
        }
        // Without its last byte the end-of-directory record is gone.
        CHECK(error_of([&] { npz::read(file.data(), file.size() - 1, "npz buffer"); }) ==
              "npz buffer: corrupt or unsupported .npz at byte offset " + std::to_string(file.size() - 1) +
                  ": no end-of-central-directory record (not a zip, or truncated)");
    }
}
