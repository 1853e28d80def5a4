// Strict options: every bad value of a `train` option is refused with a message
// that names the option, the allowed values and what was given (apps/options).

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "apps/model.hpp"
#include "apps/options.hpp"

using namespace tapegrad::app;

namespace {

/// The message of setting `flag` to `value` (after the earlier options), or "(accepted)".
std::string error_of(const std::string& flag, const std::string& value, train_options o = {}) {
    for (const auto& s : train_settings()) {
        if (s.flag != flag) continue;
        try {
            s.set(o, value, s.flag);
        } catch (const option_error& e) {
            return e.what();
        }
        return "(accepted)";
    }
    return "(no such option " + flag + ")";
}

}  // namespace

TEST_CASE("whole-number options: signs, overflow, junk and ranges") {
    CHECK(error_of("--epochs", "abc") == "--epochs must be a whole number from 1 to 100000, got 'abc'");
    CHECK(error_of("--epochs", "99999999999999999999") ==
          "--epochs must be a whole number from 1 to 100000, got '99999999999999999999'");
    CHECK(error_of("--epochs", "0") == "--epochs must be a whole number from 1 to 100000, got '0'");
    CHECK(error_of("--epochs", "1e3") == "--epochs must be a whole number from 1 to 100000, got '1e3'");
    CHECK(error_of("--epochs", " 5") == "--epochs must be a whole number from 1 to 100000, got ' 5'");
    CHECK(error_of("--epochs", "") == "--epochs must be a whole number from 1 to 100000, got ''");
    CHECK(error_of("--warmup", "-1") == "--warmup must be a whole number from 0 to 1000000000, got '-1'");
    CHECK(error_of("--batch-size", "18446744073709551615") ==
          "--batch-size must be a whole number from 1 to 1000000, got '18446744073709551615'");
    CHECK(error_of("--batch-size", "0") == "--batch-size must be a whole number from 1 to 1000000, got '0'");
    CHECK(error_of("--step-size", "0") == "--step-size must be a whole number from 1 to 100000, got '0'");
    CHECK(error_of("--seed", "-1") == "--seed must be a whole number from 0 to 18446744073709551615, got '-1'");
    CHECK(error_of("--seed", "18446744073709551616") ==
          "--seed must be a whole number from 0 to 18446744073709551615, got '18446744073709551616'");
    CHECK(error_of("--threads", "0") == "--threads must be a whole number from 1 to 256, got '0'");
    CHECK(error_of("--hidden", "2.5") == "--hidden must be a whole number from 1 to 1000000000, got '2.5'");
    CHECK(error_of("--stop-after", "+2") == "--stop-after must be a whole number from 0 to 100000, got '+2'");
    // accepted at the limits
    CHECK(error_of("--epochs", "100000") == "(accepted)");
    CHECK(error_of("--seed", "18446744073709551615") == "(accepted)");
    CHECK(error_of("--warmup", "0") == "(accepted)");
}

TEST_CASE("real-number options: NaN and infinity are refused wherever they are spelled") {
    CHECK(error_of("--gamma", "nan") ==
          "--gamma must be a number greater than 0 and at most 1 (not NaN or infinity), got 'nan'");
    CHECK(error_of("--clip", "nan") == "--clip must be a number from 0 to 1000000 (not NaN or infinity), got 'nan'");
    CHECK(error_of("--lr", "inf") == "--lr must be a number greater than 0 and at most 10 (not NaN or infinity), got 'inf'");
    CHECK(error_of("--lr", "-INFINITY") ==
          "--lr must be a number greater than 0 and at most 10 (not NaN or infinity), got '-INFINITY'");
    CHECK(error_of("--lr", "0") == "--lr must be a number greater than 0 and at most 10, got '0'");
    CHECK(error_of("--lr", "1e999") == "--lr must be a number greater than 0 and at most 10, got '1e999'");
    CHECK(error_of("--lr", "0.01x") == "--lr must be a number greater than 0 and at most 10, got '0.01x'");
    CHECK(error_of("--momentum", "2") == "--momentum must be a number from 0 to 1, got '2'");
    CHECK(error_of("--weight-decay", "-0.1") == "--weight-decay must be a number from 0 to 10, got '-0.1'");
    CHECK(error_of("--gamma", "0") == "--gamma must be a number greater than 0 and at most 1, got '0'");
    CHECK(error_of("--val-fraction", "0.95") == "--val-fraction must be a number from 0.001 to 0.9, got '0.95'");
    CHECK(error_of("--val-fraction", "") == "--val-fraction must be a number from 0.001 to 0.9, got ''");
    CHECK(error_of("--clip", "0") == "(accepted)");
    CHECK(error_of("--lr", "2e-3") == "(accepted)");
}

TEST_CASE("list and choice options") {
    CHECK(error_of("--layers", "") ==
          "--layers must be a comma-separated list of 1 to 100 whole numbers from 1 to 1000000000, got '' (an empty "
          "list would train a linear model)");
    CHECK(error_of("--layers", "256,x").find("got '256,x'") != std::string::npos);
    CHECK(error_of("--layers", "256,,128").find("got '256,,128'") != std::string::npos);
    CHECK(error_of("--layers", "256,0").find("from 1 to 1000000000") != std::string::npos);
    CHECK(error_of("--layers", "-5").find("--layers must be") == 0);
    std::string hundred_one = "1";
    for (int i = 0; i < 100; ++i) hundred_one += ",1";
    CHECK(error_of("--layers", hundred_one).find("got 101 or more sizes") != std::string::npos);
    CHECK(error_of("--optimizer", "lbfgs") == "--optimizer must be one of sgd, adam, adamw, rmsprop, adagrad, got 'lbfgs'");
    CHECK(error_of("--schedule", "Cosine") == "--schedule must be one of none, step, cosine, exp, got 'Cosine'");
    CHECK(error_of("--name", "a\nb") == "--name must be printable text (no control characters), got 'a?b'");
    // the seed network has no --layers: an empty list is its saved value
    train_options seed;
    seed.model = "seed";
    CHECK(error_of("--layers", "", seed) == "(accepted)");
    CHECK(error_of("--layers", "256,128") == "(accepted)");
}

TEST_CASE("programmatic options are checked with the same rules") {
    train_options o;
    CHECK_NOTHROW(validate_train_options(o));
    o.gamma = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH(validate_train_options(o), doctest::Contains("--gamma must be a number greater than 0"));
    o = {};
    o.epochs = 0;
    CHECK_THROWS_WITH(validate_train_options(o), doctest::Contains("--epochs must be a whole number from 1 to 100000, got '0'"));
    o = {};
    o.layers.clear();
    CHECK_THROWS_WITH(validate_train_options(o), doctest::Contains("--layers must be"));
}

TEST_CASE("checkpoint settings: the file and the setting are named") {
    train_options o;
    o.batch_size = 32;  // run_train resolves the data set's default before saving
    config_map c = to_config(o);
    c["step_size"] = "0";
    CHECK_THROWS_WITH(from_config(c, o, "runs/x/checkpoint.npz"),
                      "runs/x/checkpoint.npz: the checkpoint's setting 'step_size' must be a whole number from 1 to "
                      "100000, got '0'");
    c = to_config(o);
    c.erase("lr");
    CHECK_THROWS_WITH(from_config(c, o, "f.npz"), doctest::Contains("f.npz: the checkpoint has no setting 'lr'"));
    c = to_config(o);
    c["colour"] = "red";
    CHECK_THROWS_WITH(from_config(c, o, "f.npz"), doctest::Contains("unknown setting 'colour'"));
    CHECK_THROWS_WITH(parse_config_text("lr=1\nlr=2\n", "f.npz"), doctest::Contains("repeats the setting 'lr'"));
    CHECK_THROWS_WITH(parse_config_text("lr\n", "f.npz"), doctest::Contains("line 1 of the checkpoint's settings is not 'key=value'"));
    CHECK_THROWS_WITH(parse_config_text("lr=1\x01\n", "f.npz"), doctest::Contains("control character"));
    // a round trip gives the same settings
    train_options back;
    from_config(parse_config_text(config_text(to_config(o)), "f.npz"), back, "f.npz");
    CHECK(to_config(back) == to_config(o));
}

TEST_CASE("a model too large for memory is refused before it is built, saying what it needs") {
    model_spec s;
    s.inputs = 64;
    s.classes = 10;
    s.layers = {100000000};
    CHECK(parameter_count(s) == doctest::Approx(65.0 * 1e8 + 1e8 * 10 + 10));
    CHECK_THROWS_WITH(check_memory(s, 32, "adam", 0, 24e9),
                      doctest::Contains("the model mlp 64-100000000-10 relu, ce has 7.5e+09 parameters and needs about"));
    CHECK_THROWS_WITH(check_memory(s, 32, "adam", 0, 24e9), doctest::Contains("more than the 24 GB of memory here"));
    s.layers = {256, 128};
    CHECK_NOTHROW(check_memory(s, 32, "adam", 0, 24e9));
    // weights, gradients, two adam moments: 4 floats of 4 bytes per parameter, plus activations
    CHECK(estimate_training_bytes(s, 32, "adam", 0) > 16 * parameter_count(s));
}

namespace {
void write_idx(const std::string& path, std::uint32_t magic, std::vector<std::uint32_t> dims, std::size_t bytes,
               unsigned char fill) {
    std::ofstream f(path, std::ios::binary);
    auto be32 = [&](std::uint32_t v) {
        const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                                    static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
        f.write(reinterpret_cast<const char*>(b), 4);
    };
    be32(magic);
    for (auto d : dims) be32(d);
    for (std::size_t i = 0; i < bytes; ++i) f.put(static_cast<char>(fill + i % 3));
}
}  // namespace

TEST_CASE("test images of another size are refused before training starts") {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("tapegrad_options_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    // 6 training images of 3x3, 2 test images of 2x2 (plain IDX: zlib reads it through gzread)
    write_idx((dir / "train-images-idx3-ubyte.gz").string(), 0x803, {6, 3, 3}, 6 * 9, 10);
    write_idx((dir / "train-labels-idx1-ubyte.gz").string(), 0x801, {6}, 6, 0);
    write_idx((dir / "t10k-images-idx3-ubyte.gz").string(), 0x803, {2, 2, 2}, 2 * 4, 10);
    write_idx((dir / "t10k-labels-idx1-ubyte.gz").string(), 0x801, {2}, 2, 0);
    train_options o;
    o.data = "fashion";
    o.data_dir = dir.string();
    o.normalization = "none";
    o.layers = {4};
    o.epochs = 1;
    o.quiet = true;
    o.out = (dir / "run").string();
    CHECK_THROWS_WITH(run_train(o), doctest::Contains("data: the test set fashion-mnist/test has 4 values per example "
                                                      "and 10 classes, the training set 9 and 10"));
    CHECK(!fs::exists(dir / "run"));  // refused before anything was written
    fs::remove_all(dir);
}
