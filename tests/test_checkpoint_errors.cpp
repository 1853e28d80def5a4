// Checkpoint errors: each names the parameter or byte offset and the file, and a
// failed load changes nothing.

#include <cstdio>
#include <fstream>
#include <iterator>

#include <doctest/doctest.h>

#include "nn/checkpoint.hpp"
#include "nn/layers.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using nn::activation;

namespace {

std::shared_ptr<nn::sequential<double>> net(std::vector<std::size_t> sizes, unsigned seed = 1) {
    std::mt19937_64 rng(seed);
    return nn::mlp<double>(sizes, activation::relu, rng);
}

template <class F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const npz::npz_error& e) {
        return e.what();
    }
    return "(no npz_error thrown)";
}

std::vector<char> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void spit(const std::string& path, const std::vector<char>& b) {
    std::ofstream f(path, std::ios::binary);
    f.write(b.data(), std::streamsize(b.size()));
}

}  // namespace

TEST_CASE("a missing parameter is named, with the file") {
    nn::save_npz(*net({3, 4, 2}), "ckpt_small.npz");
    auto big = net({3, 4, 2, 2});
    CHECK(error_of([&] { nn::load_npz(*big, "ckpt_small.npz"); }) ==
          "ckpt_small.npz: missing parameter '4.weight' of shape [2, 2] (the file was saved from a different model?)");
}

TEST_CASE("unexpected parameters are named") {
    nn::save_npz(*net({3, 4, 2, 2}), "ckpt_big.npz");
    auto small = net({3, 4, 2});
    CHECK(error_of([&] { nn::load_npz(*small, "ckpt_big.npz"); }) ==
          "ckpt_big.npz: unexpected parameter '4.bias', '4.weight' not in the model (Sequential)");
}

TEST_CASE("a wrong shape is named, and nothing is half-loaded") {
    nn::save_npz(*net({3, 4, 2}, 1), "ckpt_432.npz");
    auto other = net({3, 4, 3}, 2);  // 0.weight and 0.bias fit, 2.weight does not
    const auto before = other->parameters()[0].value();
    CHECK(error_of([&] { nn::load_npz(*other, "ckpt_432.npz"); }) ==
          "ckpt_432.npz: parameter '2.weight' has shape [2, 4] in the file but [3, 4] in the model");
    CHECK(other->parameters()[0].value() == before);
}

TEST_CASE("a dtype mismatch is refused rather than converted") {
    std::mt19937_64 rng(1);
    auto f = nn::mlp<float>({3, 4, 2}, activation::relu, rng);
    nn::save_npz(*net({3, 4, 2}), "ckpt_f64.npz");
    CHECK(error_of([&] { nn::load_npz(*f, "ckpt_f64.npz"); }) ==
          "ckpt_f64.npz: array '0.weight' has dtype <f8 but <f4 is needed (values are loaded bit-identically, "
          "never converted)");
}

TEST_CASE("corrupt, truncated and missing files name the file and the byte offset") {
    auto m = net({3, 4, 2});
    nn::save_npz(*m, "ckpt_good.npz");
    const auto good = slurp("ckpt_good.npz");
    const auto before = m->parameters()[0].value();

    auto truncated = good;
    truncated.resize(good.size() / 2);
    spit("ckpt_truncated.npz", truncated);
    CHECK(error_of([&] { nn::load_npz(*m, "ckpt_truncated.npz"); }) ==
          "ckpt_truncated.npz: corrupt or unsupported .npz at byte offset " + std::to_string(truncated.size()) +
              ": no end-of-central-directory record (not a zip, or truncated)");

    // one flipped bit in the first array's data (after the 30-byte header, the
    // name "0.weight.npy" and the 128-byte NPY header)
    auto flipped = good;
    flipped[42 + 128 + 3] ^= 0x10;
    spit("ckpt_flipped.npz", flipped);
    const auto msg = error_of([&] { nn::load_npz(*m, "ckpt_flipped.npz"); });
    CHECK(msg.rfind("ckpt_flipped.npz: corrupt or unsupported .npz at byte offset 42: CRC-32 mismatch in "
                    "'0.weight.npy'",
                    0) == 0);

    auto bad_local = good;
    bad_local[0] = 'X';
    spit("ckpt_bad_local.npz", bad_local);
    CHECK(error_of([&] { nn::load_npz(*m, "ckpt_bad_local.npz"); }) ==
          "ckpt_bad_local.npz: corrupt or unsupported .npz at byte offset 0: bad local header signature for "
          "'0.weight.npy'");

    spit("ckpt_text.npz", std::vector<char>(100, 'a'));
    CHECK(error_of([&] { nn::load_npz(*m, "ckpt_text.npz"); }) ==
          "ckpt_text.npz: corrupt or unsupported .npz at byte offset 100: no end-of-central-directory record (not a "
          "zip, or truncated)");

    std::remove("ckpt_does_not_exist.npz");
    CHECK(error_of([&] { nn::load_npz(*m, "ckpt_does_not_exist.npz"); }) ==
          "ckpt_does_not_exist.npz: cannot open (No such file or directory)");
    CHECK(error_of([&] { nn::save_npz(*m, "no_such_dir/x.npz"); }) ==
          "no_such_dir/x.npz: cannot write (No such file or directory); does the directory exist?");
    CHECK(m->parameters()[0].value() == before);
}
