// nn::module: registration, dotted names, modes, the printout, errors.

#include <doctest/doctest.h>

#include "nn/layers.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using nn::activation;

namespace {

// encoder { fc1: Linear(3 -> 4), act: ReLU, fc2: Linear(4 -> 2) } + head: Linear(2 -> 1)
struct encoder : nn::module<double> {
    std::shared_ptr<nn::linear<double>> fc1, fc2;
    explicit encoder(std::mt19937_64& rng) {
        fc1 = register_module("fc1", std::make_shared<nn::linear<double>>(3, 4, rng));
        register_module("act", std::make_shared<nn::activation_module<double>>(activation::relu));
        fc2 = register_module("fc2", std::make_shared<nn::linear<double>>(4, 2, rng));
    }
    tensor<double> forward(const tensor<double>& x) override { return fc2->forward(relu(fc1->forward(x))); }
    std::string type_name() const override { return "Encoder"; }
};

struct model : nn::module<double> {
    std::shared_ptr<encoder> enc;
    std::shared_ptr<nn::linear<double>> head;
    tensor<double>& scale;
    explicit model(std::mt19937_64& rng)
        : scale(register_parameter("scale", tensor<double>::scalar(2.0))) {
        enc = register_module("encoder", std::make_shared<encoder>(rng));
        head = register_module("head", std::make_shared<nn::linear<double>>(2, 1, rng));
    }
    tensor<double> forward(const tensor<double>& x) override { return head->forward(enc->forward(x)) * scale; }
    std::string type_name() const override { return "Model"; }
    using nn::module<double>::register_parameter;  // for the error tests
    using nn::module<double>::register_module;
};

std::vector<std::string> names_of(const std::vector<std::pair<std::string, tensor<double>>>& v) {
    std::vector<std::string> out;
    for (auto& p : v) out.push_back(p.first);
    return out;
}

}  // namespace

TEST_CASE("named_parameters walks children depth first with dotted names") {
    std::mt19937_64 rng(1);
    model m(rng);
    CHECK(names_of(m.named_parameters()) ==
          std::vector<std::string>{"scale", "encoder.fc1.weight", "encoder.fc1.bias", "encoder.fc2.weight",
                                   "encoder.fc2.bias", "head.weight", "head.bias"});
    CHECK(m.parameters().size() == 7);
    CHECK(m.parameter_count() == 1 + (12 + 4) + (8 + 2) + (2 + 1));
    // parameters are handles to the same leaves the layers use
    CHECK(m.parameters()[1].node_ptr() == m.enc->fc1->weight().node_ptr());
    CHECK(m.parameter("encoder.fc2.bias").node_ptr() == m.enc->fc2->bias().node_ptr());
    for (auto& p : m.parameters()) CHECK(p.requires_grad());
}

TEST_CASE("sequential names children 0, 1, ... and mlp puts no activation last") {
    std::mt19937_64 rng(2);
    auto net = nn::mlp<double>({4, 8, 8, 3}, activation::tanh, rng);
    CHECK(net->size() == 5);
    CHECK(names_of(net->named_parameters()) ==
          std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"});
    CHECK((*net)[1]->type_name() == "Tanh");
    CHECK((*net)[4]->type_name() == "Linear(8 -> 3)");
    CHECK_THROWS_WITH_AS((*net)[5], "Sequential: index 5 out of range (size 5)", std::out_of_range);
    CHECK_THROWS_WITH_AS(nn::mlp<double>({4}, activation::relu, rng),
                         "mlp: needs at least two sizes (inputs and outputs), got 1", std::invalid_argument);
}

TEST_CASE("train and eval reach every child") {
    std::mt19937_64 rng(3);
    model m(rng);
    CHECK(m.is_training());
    m.eval();
    CHECK(!m.is_training());
    CHECK(!m.enc->is_training());
    CHECK(!m.enc->fc1->is_training());
    m.train();
    CHECK(m.enc->fc2->is_training());
}

TEST_CASE("zero_grad clears every parameter's gradient") {
    std::mt19937_64 rng(4);
    model m(rng);
    auto y = sum(m(tensor<double>(testing::uniform({5, 3}))));
    y.backward();
    for (auto& p : m.parameters()) CHECK(p.has_grad());
    m.zero_grad();
    for (auto& p : m.parameters()) CHECK(!p.has_grad());
    reset_tape<double>();
}

TEST_CASE("summary lists layers, shapes and parameter counts") {
    std::mt19937_64 rng(5);
    auto net = nn::mlp<float>({784, 256, 10}, activation::relu, rng);
    const std::string expected =
        "Sequential\n"
        "  (0): Linear(784 -> 256)  [weight [256, 784], bias [256]]  200,960 params\n"
        "  (1): ReLU\n"
        "  (2): Linear(256 -> 10)  [weight [10, 256], bias [10]]  2,570 params\n"
        "Total parameters: 203,530 (training mode)\n";
    CHECK(net->summary() == expected);
    nn::batch_norm1d<float> bn(4);
    bn.eval();
    CHECK(bn.summary() ==
          "BatchNorm1d(4, eps=1e-05, momentum=0.1)  [weight [4], bias [4], running_mean [4] (buffer), "
          "running_var [4] (buffer)]  8 params\nTotal parameters: 8 (eval mode)\n");
}

TEST_CASE("registration errors name the module and the name") {
    std::mt19937_64 rng(6);
    model m(rng);
    CHECK_THROWS_WITH_AS(m.register_parameter("scale", tensor<double>::scalar(1.0)),
                         "register_parameter: name 'scale' is already registered in Model", std::invalid_argument);
    CHECK_THROWS_WITH_AS(m.register_parameter("a.b", tensor<double>::scalar(1.0)),
                         "register_parameter: name 'a.b' contains a '.', which separates nested names; choose another",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(m.register_parameter("", tensor<double>::scalar(1.0)), "register_parameter: empty name",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(m.register_parameter("u", tensor<double>()),
                         "register_parameter: 'u' must be a defined leaf tensor (use detach() on an op result)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(m.register_module("head", std::make_shared<nn::linear<double>>(1, 1, rng)),
                         "register_module: name 'head' is already registered in Model", std::invalid_argument);
    CHECK_THROWS_WITH_AS(m.parameter("encoder.fc3.weight"),
                         "Model: no parameter or buffer named 'encoder.fc3.weight'; valid names: scale, "
                         "encoder.fc1.weight, encoder.fc1.bias, encoder.fc2.weight, encoder.fc2.bias, head.weight, "
                         "head.bias",
                         std::out_of_range);
}

TEST_CASE("parse_activation and parse_init list the valid names") {
    CHECK(nn::parse_activation("log_softmax") == activation::log_softmax);
    CHECK(nn::activation_name(activation::leaky_relu) == "leaky_relu");
    CHECK_THROWS_WITH_AS(nn::parse_activation("swish"),
                         "unknown activation 'swish'; valid names: relu, leaky_relu, elu, gelu, tanh, sigmoid, "
                         "softplus, softmax, log_softmax",
                         std::invalid_argument);
    CHECK(nn::parse_init("kaiming_normal") == nn::init::kaiming_normal);
    CHECK_THROWS_WITH_AS(nn::parse_init("he"),
                         "unknown initialiser 'he'; valid names: pytorch_default, xavier_uniform, xavier_normal, "
                         "kaiming_uniform, kaiming_normal",
                         std::invalid_argument);
}
