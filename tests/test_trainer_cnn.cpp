// `train --model cnn --arch SPEC` (apps/cnn_arch): every token of the grammar,
// its defaults and errors, the planned shapes, the parameter count against the
// built nn modules and PyTorch, describe(), the memory estimate and the option rules.

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "apps/cnn_arch.hpp"
#include "apps/model.hpp"
#include "apps/options.hpp"
#include "autograd/ops.hpp"

using namespace tapegrad;
using namespace tapegrad::app;
using kind = arch_token::kind;

namespace {
std::string error_of(const std::string& arch, std::size_t side = 8) {
    try {
        (void)plan_cnn(parse_arch(arch), side, side, 10);
    } catch (const option_error& e) {
        return e.what();
    }
    return "(accepted)";
}

model_spec cnn_spec(std::size_t side, std::string arch = "") {
    model_spec s;
    s.kind = "cnn";
    s.inputs = side * side;
    s.classes = 10;
    s.arch = std::move(arch);
    return s;
}
}  // namespace

TEST_CASE("every token of the grammar and its defaults") {
    const auto t = parse_arch("c32,c8k5,c4k5s2p0,c2k4,bn,relu,tanh,sigmoid,gelu,elu,leaky_relu,softplus,mp2,ap3,gap,"
                              "d0.25,d0,fc128");
    REQUIRE(t.size() == 18);
    CHECK(t[0].k == kind::conv);
    CHECK(t[0].size == 32);
    CHECK(t[0].kernel == 3);  // defaults: 3x3, stride 1, padding 3/2 = 1 ("same" size)
    CHECK(t[0].stride == 1);
    CHECK(t[0].padding == 1);
    CHECK(t[1].kernel == 5);
    CHECK(t[1].padding == 2);
    CHECK(t[2].kernel == 5);
    CHECK(t[2].stride == 2);
    CHECK(t[2].padding == 0);
    CHECK(t[3].padding == 2);  // even kernel: K/2
    CHECK(t[4].k == kind::batch_norm);
    const std::vector<std::string> acts{"relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus"};
    for (std::size_t i = 0; i < acts.size(); ++i) {
        CHECK(t[5 + i].k == kind::activation);
        CHECK(t[5 + i].activation == acts[i]);
    }
    CHECK(t[12].k == kind::max_pool);
    CHECK(t[12].kernel == 2);
    CHECK(t[13].k == kind::avg_pool);
    CHECK(t[13].kernel == 3);
    CHECK(t[14].k == kind::global_avg_pool);
    CHECK(t[15].k == kind::dropout);
    CHECK(t[15].p == 0.25);
    CHECK(t[16].p == 0);
    CHECK(t[17].k == kind::linear);
    CHECK(t[17].size == 128);
    CHECK(t[17].position == 18);
    CHECK(t[17].text == "fc128");
}

TEST_CASE("bad tokens name the token, its position and the grammar") {
    auto msg = [](const std::string& arch) {
        try {
            (void)parse_arch(arch);
        } catch (const option_error& e) {
            return std::string(e.what());
        }
        return std::string("(accepted)");
    };
    const std::string grammar = "; an --arch is a comma-separated list of c<N>[k<K>][s<S>][p<P>]";
    CHECK(msg("c32,conv,relu").find("--arch: token 2 'conv' of 'c32,conv,relu' is not a layer" + grammar) == 0);
    CHECK(msg("c32,,relu").find("--arch: token 2 '' of 'c32,,relu' is empty" + grammar) == 0);
    CHECK(msg("").find("--arch: token 1 '' of '' is empty") == 0);
    CHECK(msg("c32,RELU").find("token 2 'RELU'") != std::string::npos);
    CHECK(msg("c0").find("--arch: token 1 'c0' of 'c0': its filters must be a whole number from 1 to 100000, got '0'") ==
          0);
    CHECK(msg("c").find("'c' of 'c' is not a layer") != std::string::npos);
    CHECK(msg("c8k0").find("its kernel must be a whole number from 1 to 1000, got '0'") != std::string::npos);
    CHECK(msg("c8s0").find("its stride must be a whole number from 1 to 1000, got '0'") != std::string::npos);
    CHECK(msg("c8p3k3").find("'c8p3k3' of 'c8p3k3' is not a layer") != std::string::npos);  // order: k, s, p
    CHECK(msg("c8x").find("is not a layer") != std::string::npos);
    CHECK(msg("mp0").find("its window must be a whole number from 1 to 1000, got '0'") != std::string::npos);
    CHECK(msg("mp2k2").find("is not a layer") != std::string::npos);
    CHECK(msg("fc0").find("its features must be a whole number from 1 to 1000000000, got '0'") != std::string::npos);
    CHECK(msg("fc-3").find("'fc-3' of 'fc-3' is not a layer") != std::string::npos);
    CHECK(msg("c99999999999999999999").find("its filters must be a whole number from 1 to 100000") != std::string::npos);
    CHECK(msg("d1").find("a dropout probability must be below 1") != std::string::npos);
    CHECK(msg("d-0.1").find("its probability must be a number from 0 to 1, got '-0.1'") != std::string::npos);
    CHECK(msg("dnan").find("not NaN or infinity") != std::string::npos);
    CHECK(msg("d").find("'d' of 'd' is not a layer") != std::string::npos);
    CHECK(msg("c32 ,relu").find("is not a layer") != std::string::npos);
    CHECK(msg(default_cnn_arch) == "(accepted)");
    // the option reads the syntax (shapes wait for the image size); the checkpoint's label is used as given
    train_options o;
    o.model = "cnn";
    for (const auto& s : train_settings()) {
        if (s.key != "arch") continue;
        CHECK_NOTHROW(s.set(o, "c8,mp2,mp2,mp2,mp2,mp2", s.flag));
        CHECK(o.arch == "c8,mp2,mp2,mp2,mp2,mp2");
        CHECK_THROWS_WITH(s.set(o, "c8,zz", "f.npz: the checkpoint's setting 'arch'"),
                          doctest::Contains("f.npz: the checkpoint's setting 'arch': token 2 'zz'"));
        CHECK_NOTHROW(s.set(o, "", s.flag));  // empty: the default (run_train writes it out)
    }
}

TEST_CASE("shapes are planned from the image size; layers that do not fit are refused saying what to do") {
    // 8x8 digits: two pools fit, a fifth does not
    CHECK(error_of(default_cnn_arch, 8) == "(accepted)");
    CHECK(error_of("c8,mp2,mp2,mp2,mp2", 8) ==
          "--arch: mp2 (token 5) gets a 8x1x1 input, smaller than its 2x2 window: remove a pool or use a smaller "
          "window (the images are 8x8)");
    CHECK(error_of("c8,mp2,mp2,mp2", 8) == "(accepted)");
    CHECK(error_of("ap9", 8).find("--arch: ap9 (token 1) gets a 1x8x8 input, smaller than its 9x9 window") == 0);
    CHECK(error_of("c8,mp2,c4k9p0", 8) ==
          "--arch: c4k9p0 (token 3) gets a 8x4x4 input, smaller than its 9x9 kernel with padding 0: use a smaller "
          "kernel (k), more padding (p), or fewer pools or strides before it");
    CHECK(error_of("c8k9p0", 8).find("gets a 1x8x8 input") != std::string::npos);
    CHECK(error_of("c8k9p1", 8) == "(accepted)");  // 8 + 2 >= 9
    // conv (or pool, gap) after fc or gap is refused; fc first (an MLP on the pixels) is fine
    CHECK(error_of("c8,fc10,c4", 8) ==
          "--arch: c4 (token 3) needs images [C, H, W] but gets 10 flat features (after an fc or gap): put every c, "
          "mp, ap and gap before the first fc and gap");
    CHECK(error_of("c8,gap,mp2", 8).find("--arch: mp2 (token 3) needs images [C, H, W] but gets 8 flat features") == 0);
    CHECK(error_of("fc32,relu,bn,d0.5", 8) == "(accepted)");
    CHECK_THROWS_WITH(square_side(10), "--model cnn needs square images, but the data has 10 values per example: use "
                                       "--model mlp for this data");
    CHECK(square_side(784) == 28);

    // the planned shapes of c8k5s2p0,bn,relu,ap2,fc16 on 28x28: (28-5)/2+1 = 12, pooled 6, 8*6*6 = 288
    const auto plan = plan_cnn(parse_arch("c8k5s2p0,bn,relu,ap2,fc16,bn,gelu"), 28, 28, 10);
    using op = planned_layer::op;
    REQUIRE(plan.size() == 10);
    CHECK(plan[0].o == op::unflatten);
    CHECK(plan[1].o == op::conv);
    CHECK(plan[1].output == std::vector<std::size_t>{8, 12, 12});
    CHECK(plan[1].parameters == 8 * 25 + 8);
    CHECK(plan[1].workspace == 25 * 144);  // im2col columns per image
    CHECK(plan[2].o == op::batch_norm2d);
    CHECK(plan[4].output == std::vector<std::size_t>{8, 6, 6});
    CHECK(plan[5].o == op::flatten);
    CHECK(plan[5].output == std::vector<std::size_t>{288});
    CHECK(plan[6].parameters == 289 * 16);
    CHECK(plan[7].o == op::batch_norm1d);
    CHECK(plan[7].parameters == 32);
    CHECK(plan[9].o == op::linear);
    CHECK(plan[9].output == std::vector<std::size_t>{10});
    CHECK(plan[9].what == "Linear 16 -> 10 (the classes)");
    CHECK(plan[1].what == "c8k5s2p0 (token 1): Conv2d 1 -> 8, 5x5, stride 2, padding 0");
}

TEST_CASE("the default network: parameter count = the nn modules' = PyTorch's; it runs on both image sizes") {
    // PyTorch (Conv2d(1,32,3,padding=1), BatchNorm2d(32), ReLU, MaxPool2d(2), Conv2d(32,64,3,padding=1),
    // BatchNorm2d(64), ReLU, MaxPool2d(2), Flatten, Linear(3136,128), ReLU, Linear(128,10)):
    //   conv1 32*1*9+32 = 320, bn 2*32 = 64, conv2 64*32*9+64 = 18496, bn 2*64 = 128,
    //   fc 3136*128+128 = 401536, fc 128*10+10 = 1290; total 421834.
    const model_spec fashion = cnn_spec(28);
    CHECK(parameter_count(fashion) == 421834);
    const auto net = make_classifier(fashion, 1);
    CHECK(static_cast<double>(net->parameter_count()) == 421834);
    const auto named = net->named_parameters();
    REQUIRE(named.size() == 12);
    CHECK(named[0].first == "1.weight");
    CHECK(named[0].second.shape() == std::vector<std::size_t>{32, 1, 3, 3});
    CHECK(named[10].first == "12.weight");
    CHECK(named[10].second.shape() == std::vector<std::size_t>{10, 128});
    CHECK(net->named_buffers().size() == 4);  // running mean and variance of the two BatchNorm2d
    // 8x8: 8 -> 4 -> 2, fc 64*2*2 = 256 inputs
    const model_spec digits = cnn_spec(8);
    CHECK(parameter_count(digits) == 320 + 64 + 18496 + 128 + (256 * 128 + 128) + 1290);
    const auto small = make_classifier(digits, 1);
    CHECK(static_cast<double>(small->parameter_count()) == parameter_count(digits));
    small->eval();
    const tensor<float> logits = small->forward(tensor<float>(xt::xarray<float>(xt::ones<float>({3, 64}))));
    CHECK(logits.shape() == std::vector<std::size_t>{3, 10});
    // the same seed builds the same weights
    const auto again = make_classifier(digits, 1);
    CHECK(again->named_parameters()[0].second.value() == small->named_parameters()[0].second.value());
}

TEST_CASE("describe, memory estimate and option rules for --model cnn") {
    CHECK(cnn_spec(28).describe() == "cnn 1x28x28 c32,bn,relu,mp2,c64,bn,relu,mp2,fc128,relu -> 10, ce");
    CHECK(cnn_spec(8, "c4,relu,mp2,fc16,relu").describe() == "cnn 1x8x8 c4,relu,mp2,fc16,relu -> 10, ce");
    // memory: weights, gradients and two adam moments, plus each layer's output and conv columns for
    // max(4 * batch, 1000) rows: c4 on 8x8 outputs 256, relu 256, pool 64, flatten 64, fc 16, relu 16,
    // fc 10, input 64; columns 9 * 64 (counted twice: value and gradient)
    const model_spec s = cnn_spec(8, "c4,relu,mp2,fc16,relu");
    const double params = 4 * 9 + 4 + 65 * 16 + 17 * 10;
    CHECK(parameter_count(s) == params);
    const double units = 64 + 64 + 256 + 2 * 576 + 256 + 64 + 64 + 16 + 16 + 10;
    CHECK(estimate_training_bytes(s, 32, "adam", 0) == doctest::Approx(4.0 * (params * 4 + 1000 * units)));
    CHECK(estimate_training_bytes(s, 1000, "sgd", 0) == doctest::Approx(4.0 * (params * 2 + 4000 * units)));
    model_spec big = cnn_spec(28, "c100000,fc100000");
    CHECK_THROWS_WITH(check_memory(big, 128, "adam", 0, 24e9),
                      doctest::Contains("use a smaller --arch (fewer filters or fc units, or more pooling) or "
                                        "--batch-size"));
    CHECK_THROWS_WITH(check_memory(big, 128, "adam", 0, 24e9), doctest::Contains("the model cnn 1x28x28 c100000,"));
    CHECK_THROWS_WITH(parameter_count(cnn_spec(8, "c8,mp2,mp2,mp2,mp2")), doctest::Contains("mp2 (token 5)"));
    // --arch belongs to --model cnn
    train_options o;
    o.arch = "c8";
    CHECK_THROWS_WITH(validate_train_options(o), "--arch is for --model cnn, got --model mlp: add --model cnn, or use "
                                                 "--layers for an mlp");
    o.model = "cnn";
    CHECK_NOTHROW(validate_train_options(o));
    o.arch = "c8,bad";
    CHECK_THROWS_WITH(validate_train_options(o), doctest::Contains("--arch: token 2 'bad'"));
    // the arch is a saved setting and comes back from a checkpoint's settings
    o.arch = "c8,relu,gap";
    o.batch_size = 32;
    train_options back;
    from_config(parse_config_text(config_text(to_config(o)), "f.npz"), back, "f.npz");
    CHECK(back.model == "cnn");
    CHECK(back.arch == "c8,relu,gap");
}
