// Checkpoints: bit-identical round trips, and files written by numpy.savez.

#include <cstring>
#include <fstream>

#include <doctest/doctest.h>

#include "nn/checkpoint.hpp"
#include "nn/layers.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using nn::activation;

namespace {

// mlp with a BatchNorm so buffers are saved too.
template <class T> std::shared_ptr<nn::sequential<T>> net(unsigned seed) {
    std::mt19937_64 rng(seed);
    auto s = nn::mlp<T>({3, 5, 2}, activation::relu, rng, nn::init::kaiming_normal);
    s->push_back(std::make_shared<nn::batch_norm1d<T>>(2));
    return s;
}

template <class T> void round_trip(const std::string& path) {
    auto a = net<T>(1);
    // give the buffers non-trivial values: one training forward
    (*a)(tensor<T>(xt::xarray<T>{{1, 2, 3}, {-1, 0.5, 2}, {0.25, -3, 1}}));
    reset_tape<T>();
    nn::save_npz(*a, path);
    auto b = net<T>(2);
    CHECK(b->parameters()[0].value() != a->parameters()[0].value());
    nn::load_npz(*b, path);
    auto pa = a->named_parameters(), pb = b->named_parameters();
    auto ba = a->named_buffers(), bb = b->named_buffers();
    pa.insert(pa.end(), ba.begin(), ba.end());
    pb.insert(pb.end(), bb.begin(), bb.end());
    REQUIRE(pa.size() == pb.size());
    for (std::size_t i = 0; i < pa.size(); ++i) {
        INFO(pa[i].first);
        CHECK(pa[i].first == pb[i].first);
        const auto &x = pa[i].second.value(), &y = pb[i].second.value();
        REQUIRE(x.shape() == y.shape());
        CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0);  // bit-identical
    }
}

std::string fixture(const std::string& name) { return std::string(TAPEGRAD_SOURCE_DIR) + "/tests/fixtures/checkpoint/" + name; }

// What numpy wrote: element k of each array is (k - 5) / 8 + offset (see the script).
template <class T> void expect_numpy_values(nn::module<T>& m) {
    const std::vector<std::pair<std::string, double>> offsets{{"0.weight", 0}, {"0.bias", 1}, {"2.weight", 2}, {"2.bias", 3}};
    for (auto& [name, off] : offsets) {
        INFO(name);
        const auto& v = m.parameter(name).value();
        for (std::size_t k = 0; k < v.size(); ++k) CHECK(v.flat(k) == T((double(k) - 5) / 8 + off));
    }
}

}  // namespace

TEST_CASE("save_npz then load_npz restores parameters and buffers bit for bit") {
    round_trip<float>("test_checkpoint_f32.npz");
    round_trip<double>("test_checkpoint_f64.npz");
}

TEST_CASE("the written file is a stored zip of NPY v1.0 arrays named by dotted names") {
    auto a = net<float>(3);
    nn::save_npz(*a, "test_checkpoint_layout.npz");
    auto entries = npz::read("test_checkpoint_layout.npz");
    std::vector<std::string> names;
    for (auto& e : entries) names.push_back(e.name);
    CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias",
                                            "3.running_mean", "3.running_var"});
    CHECK(entries[0].dtype == "<f4");
    CHECK(entries[0].shape == shape_t{5, 3});
    std::ifstream f("test_checkpoint_layout.npz", std::ios::binary);
    std::string head(64, '\0');
    f.read(&head[0], 64);
    CHECK(head.compare(0, 4, "PK\x03\x04") == 0);
    CHECK(head[8] == 0);  // method 0: stored
    CHECK(head.compare(30, 12, "0.weight.npy") == 0);
    CHECK(head.compare(42, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
}

TEST_CASE("load_npz reads files written by numpy.savez (float64, float32, compressed)") {
    std::mt19937_64 rng(4);
    auto d = nn::mlp<double>({3, 4, 2}, activation::tanh, rng);
    nn::load_npz(*d, fixture("numpy_mlp_f64.npz"));
    expect_numpy_values(*d);
    auto f = nn::mlp<float>({3, 4, 2}, activation::tanh, rng);
    nn::load_npz(*f, fixture("numpy_mlp_f32.npz"));
    expect_numpy_values(*f);
    auto c = nn::mlp<double>({3, 4, 2}, activation::tanh, rng);
    nn::load_npz(*c, fixture("numpy_mlp_f64_compressed.npz"));
    expect_numpy_values(*c);
}
