// Data loaders: IDX (gzip and plain), the digits CSV, split, normalisation,
// batching; and every bad-input case with the exact complaint it must make.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include "data/dataset.hpp"

namespace fs = std::filesystem;
using namespace tapegrad::data;

namespace {

/// A fresh directory under the system temp dir, removed at scope exit.
struct temp_dir {
    fs::path path;
    temp_dir() {
        static int counter = 0;
        path = fs::temp_directory_path() /
               ("tapegrad_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

void put_be32(std::vector<unsigned char>& b, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}

/// IDX bytes: magic, dims, then `data`.
std::vector<unsigned char> idx_bytes(std::uint32_t magic, const std::vector<std::uint32_t>& dims,
                                     const std::vector<unsigned char>& data) {
    std::vector<unsigned char> b;
    put_be32(b, magic);
    for (auto d : dims) put_be32(b, d);
    b.insert(b.end(), data.begin(), data.end());
    return b;
}

void write_plain(const std::string& path, const std::vector<unsigned char>& bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const std::string& path, const std::vector<unsigned char>& bytes) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    gzclose(f);
}

std::vector<unsigned char> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<unsigned char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

/// 3 images of 2x2 with pixel value 10*i + k, labels 0, 1, 2.
std::vector<unsigned char> three_images() {
    std::vector<unsigned char> px;
    for (unsigned i = 0; i < 3; ++i)
        for (unsigned k = 0; k < 4; ++k) px.push_back(static_cast<unsigned char>(10 * i + k));
    return idx_bytes(0x803, {3, 2, 2}, px);
}
std::vector<unsigned char> three_labels() { return idx_bytes(0x801, {3}, {0, 1, 2}); }

const std::vector<std::string> classes3 = {"a", "b", "c"};

/// The message of the data_error that `f` throws (fails the test if none).
template <class F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const data_error& e) {
        return e.what();
    }
    FAIL("expected a data_error");
    return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("IDX pairs load the same from plain and gzip files") {
    temp_dir t;
    write_plain(t.file("img"), three_images());
    write_plain(t.file("lbl"), three_labels());
    write_gz(t.file("img.gz"), three_images());
    write_gz(t.file("lbl.gz"), three_labels());
    for (auto [img, lbl] : {std::pair{"img", "lbl"}, std::pair{"img.gz", "lbl.gz"}}) {
        dataset d = load_idx_pair(t.file(img), t.file(lbl), classes3, "tiny");
        REQUIRE(d.size() == 3);
        CHECK(d.features == 4);
        CHECK(d.y == std::vector<std::size_t>{0, 1, 2});
        CHECK(d.x[0] == 0.f);
        CHECK(d.x[4 * 2 + 3] == 23.f);
        CHECK(d.num_classes() == 3);
    }
}

TEST_CASE("a missing file names the file") {
    temp_dir t;
    const std::string msg = error_of([&] { read_idx(t.file("nope.gz"), 3); });
    CHECK(contains(msg, t.file("nope.gz")));
    CHECK(contains(msg, "cannot open"));
    CHECK(contains(error_of([&] { load_digits_csv(t.file("none.csv")); }), "cannot open"));
}

TEST_CASE("a wrong magic number names the file, the value and byte 0") {
    temp_dir t;
    write_gz(t.file("labels_as_images.gz"), three_labels());
    const std::string msg = error_of([&] { read_idx(t.file("labels_as_images.gz"), 3); });
    CHECK(contains(msg, t.file("labels_as_images.gz")));
    CHECK(contains(msg, "wrong magic number 0x00000801 at byte 0"));
    CHECK(contains(msg, "expected 0x00000803"));
    // Text, not IDX at all.
    write_plain(t.file("text"), {'h', 'e', 'l', 'l', 'o', '\n'});
    CHECK(contains(error_of([&] { read_idx(t.file("text"), 1); }), "wrong magic number 0x68656c6c"));
}

TEST_CASE("truncated files report where the data ends") {
    temp_dir t;
    auto bytes = three_images();  // 16 header bytes + 12 pixels
    SUBCASE("inside the data, plain") {
        write_plain(t.file("cut"), std::vector<unsigned char>(bytes.begin(), bytes.end() - 5));
        const std::string msg = error_of([&] { read_idx(t.file("cut"), 3); });
        CHECK(contains(msg, t.file("cut")));
        CHECK(contains(msg, "truncated: the data ends at byte 23, expected 28 bytes"));
    }
    SUBCASE("inside the data, gzip") {
        write_gz(t.file("cut.gz"), std::vector<unsigned char>(bytes.begin(), bytes.end() - 5));
        CHECK(contains(error_of([&] { read_idx(t.file("cut.gz"), 3); }), "the data ends at byte 23"));
    }
    SUBCASE("inside the header") {
        write_plain(t.file("head"), std::vector<unsigned char>(bytes.begin(), bytes.begin() + 10));
        CHECK(contains(error_of([&] { read_idx(t.file("head"), 3); }), "the header ends at byte 10, expected 16"));
    }
    SUBCASE("inside the magic number") {
        write_plain(t.file("two"), {0, 0});
        CHECK(contains(error_of([&] { read_idx(t.file("two"), 3); }), "ends at byte 2 inside the 4-byte magic"));
    }
    SUBCASE("a cut gzip stream") {
        write_gz(t.file("full.gz"), bytes);
        auto gz = read_bytes(t.file("full.gz"));
        write_plain(t.file("cut_stream.gz"), std::vector<unsigned char>(gz.begin(), gz.begin() + gz.size() / 2));
        const std::string msg = error_of([&] { read_idx(t.file("cut_stream.gz"), 3); });
        CHECK(contains(msg, t.file("cut_stream.gz")));
        CHECK(contains(msg, "truncated"));
    }
    SUBCASE("trailing bytes") {
        auto longer = bytes;
        longer.push_back(7);
        write_plain(t.file("long"), longer);
        CHECK(contains(error_of([&] { read_idx(t.file("long"), 3); }), "unexpected data after byte 28"));
    }
}

TEST_CASE("images and labels with different counts name both files") {
    temp_dir t;
    write_plain(t.file("img"), three_images());
    write_plain(t.file("lbl"), idx_bytes(0x801, {2}, {0, 1}));
    const std::string msg = error_of([&] { load_idx_pair(t.file("img"), t.file("lbl"), classes3, "x"); });
    CHECK(contains(msg, t.file("img") + " has 3 images but " + t.file("lbl") + " has 2 labels"));
}

TEST_CASE("a label out of range names the example and its byte") {
    temp_dir t;
    write_plain(t.file("img"), three_images());
    write_plain(t.file("lbl"), idx_bytes(0x801, {3}, {0, 7, 1}));
    const std::string msg = error_of([&] { load_idx_pair(t.file("img"), t.file("lbl"), classes3, "x"); });
    CHECK(contains(msg, t.file("lbl") + ": label 7 of example 1 at byte 9 is out of range: there are 3 classes"));
}

TEST_CASE("an absurd header is refused before allocating") {
    temp_dir t;
    write_plain(t.file("huge"), idx_bytes(0x803, {0xffffffffu, 0xffffffffu, 2}, {}));
    CHECK(contains(error_of([&] { read_idx(t.file("huge"), 3); }), "implausible dimension"));
}

TEST_CASE("digits CSV: the shipped file and bad rows") {
    dataset d = load_digits_csv(digits_path());
    CHECK(d.size() == 1797);
    CHECK(d.features == 64);
    CHECK(d.num_classes() == 10);
    CHECK(d.y[0] == 0);
    CHECK(d.x[2] == 5.f);  // first row: 0,0,5,13,...
    std::vector<std::size_t> counts(10, 0);
    for (auto y : d.y) ++counts[y];
    for (auto c : counts) CHECK(c >= 170);

    temp_dir t;
    std::string row;
    for (int k = 0; k < 64; ++k) row += "1,";
    {
        std::ofstream(t.file("short.csv")) << row << "3\n1,2,3\n";
        CHECK(contains(error_of([&] { load_digits_csv(t.file("short.csv")); }),
                       ": line 2 (byte 130) has 3 values, expected 65"));
    }
    {
        std::ofstream(t.file("label.csv")) << row << "12\n";
        CHECK(contains(error_of([&] { load_digits_csv(t.file("label.csv")); }),
                       "line 1: label 12 is out of range"));
    }
    {
        std::ofstream(t.file("text.csv")) << row << "x\n";
        CHECK(contains(error_of([&] { load_digits_csv(t.file("text.csv")); }), "not an integer: 'x'"));
    }
}

TEST_CASE("split is disjoint, complete and fixed by the seed") {
    dataset d;
    d.features = 1;
    d.class_names = {"a", "b"};
    for (int i = 0; i < 100; ++i) {
        d.x.push_back(static_cast<float>(i));
        d.y.push_back(static_cast<std::size_t>(i % 2));
    }
    split s = split_train_validation(d, 0.2, 7);
    CHECK(s.train.size() == 80);
    CHECK(s.validation.size() == 20);
    std::set<float> seen(s.train.x.begin(), s.train.x.end());
    for (float v : s.validation.x) CHECK(seen.insert(v).second);
    CHECK(seen.size() == 100);
    split again = split_train_validation(d, 0.2, 7);
    CHECK(again.validation.x == s.validation.x);
    split other = split_train_validation(d, 0.2, 8);
    CHECK(other.validation.x != s.validation.x);
    CHECK_THROWS_AS(split_train_validation(d, 1.5, 7), std::invalid_argument);
}

TEST_CASE("normalisation uses training statistics only") {
    dataset train;
    train.features = 2;
    train.class_names = {"a"};
    train.x = {1, 5, 3, 5, 5, 5};  // feature 0: mean 3, std sqrt(8/3); feature 1 constant
    train.y = {0, 0, 0};
    dataset test = train;
    test.x = {3, 6, 9, 5, 0, 0};

    normalizer per(normalization::per_feature);
    per.fit(train);
    CHECK(per.mean()[0] == doctest::Approx(3));
    CHECK(per.scale()[0] == doctest::Approx(std::sqrt(8.0 / 3.0)));
    CHECK(per.scale()[1] == 1.f);  // constant feature keeps scale 1
    per.apply(test);
    CHECK(test.x[0] == doctest::Approx(0));
    CHECK(test.x[1] == doctest::Approx(1));
    CHECK(test.x[2] == doctest::Approx(6 / std::sqrt(8.0 / 3.0)));

    normalizer glob(normalization::global);
    glob.fit(train);
    CHECK(glob.mean().size() == 1);
    CHECK(glob.mean()[0] == doctest::Approx(4));
    dataset t2 = train;
    glob.apply(t2);
    double s = 0, s2 = 0;
    for (float v : t2.x) s += v, s2 += double(v) * v;
    CHECK(s / 6 == doctest::Approx(0).epsilon(1e-6));
    CHECK(s2 / 6 == doctest::Approx(1));

    normalizer sc(normalization::scale);
    sc.fit(train);
    dataset t3 = train;
    sc.apply(t3);
    CHECK(*std::max_element(t3.x.begin(), t3.x.end()) == 1.f);
    CHECK(parse_normalization("feature") == normalization::per_feature);
    CHECK_THROWS_AS(parse_normalization("zscore"), std::invalid_argument);
}

TEST_CASE("loader: every example once per epoch, order fixed by (seed, epoch)") {
    dataset d;
    d.features = 2;
    d.class_names = {"a", "b", "c"};
    for (int i = 0; i < 10; ++i) {
        d.x.push_back(static_cast<float>(i));
        d.x.push_back(static_cast<float>(-i));
        d.y.push_back(static_cast<std::size_t>(i % 3));
    }
    loader l(d, 4, 42);
    CHECK(l.batches_per_epoch() == 3);
    auto epoch_order = [&](std::size_t e) {
        l.start_epoch(e);
        std::vector<float> order;
        batch b;
        std::vector<std::size_t> sizes;
        while (l.next(b)) {
            sizes.push_back(b.y.size());
            REQUIRE(b.x.shape()[1] == 2);
            for (std::size_t i = 0; i < b.y.size(); ++i) {
                const float v = b.x(i, 0);
                CHECK(b.x(i, 1) == -v);
                CHECK(b.y[i] == static_cast<std::size_t>(v) % 3);
                order.push_back(v);
            }
        }
        CHECK(sizes == std::vector<std::size_t>{4, 4, 2});
        return order;
    };
    auto e0 = epoch_order(0), e1 = epoch_order(1), e0b = epoch_order(0);
    CHECK(e0 == e0b);
    CHECK(e0 != e1);
    std::vector<float> sorted = e1;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < 10; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == static_cast<float>(i));

    loader fixed(d, 3, 1, /*shuffle=*/false);
    batch b;
    REQUIRE(fixed.next(b));
    CHECK(b.x(2, 0) == 2.f);
    CHECK_THROWS_AS(loader(d, 0, 1), std::invalid_argument);
}

TEST_CASE("permutation is a fixed, valid permutation") {
    auto p = permutation(1000, 3);
    std::vector<std::size_t> s = p;
    std::sort(s.begin(), s.end());
    for (std::size_t i = 0; i < s.size(); ++i) CHECK(s[i] == i);
    CHECK(permutation(1000, 3) == p);
    CHECK(permutation(0, 3).empty());
}

TEST_CASE("Fashion-MNIST loads when installed") {
    const std::string dir = default_fashion_dir();
    if (!std::ifstream(dir + "/t10k-labels-idx1-ubyte.gz").good()) {
        MESSAGE("Fashion-MNIST is not installed at " << dir << "; skipped");
        return;
    }
    if (std::getenv("TAPEGRAD_SANITIZED")) return;  // 60 MB of inflating under ASan is slow and adds nothing
    dataset test = load_fashion_mnist(dir, false);
    CHECK(test.size() == 10000);
    CHECK(test.features == 784);
    CHECK(test.class_names[9] == "Ankle boot");
    std::vector<std::size_t> counts(10, 0);
    for (auto y : test.y) ++counts[y];
    for (auto c : counts) CHECK(c == 1000);
}
