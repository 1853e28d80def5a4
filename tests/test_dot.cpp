// to_dot: the recorded graph in Graphviz DOT (nodes, edges, labels, escaping) and the
// gradient norms it shows after a reverse pass, against tape.gradient's results.

#include <cmath>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "autograd/dot.hpp"
#include "nn/dot.hpp"
#include "nn/layers.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using testing::uniform;

namespace {

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
    return n;
}

/// Label of every node line, split at its (escaped) line breaks: first line -> rest.
std::map<std::string, std::vector<std::string>> labels(const std::string& dot) {
    std::map<std::string, std::vector<std::string>> out;
    std::istringstream in(dot);
    for (std::string line; std::getline(in, line);) {
        const auto p = line.find("label=\"");
        if (p == std::string::npos) continue;
        const std::string l = line.substr(p + 7, line.rfind("\"]") - p - 7);
        std::vector<std::string> parts;
        for (std::size_t b = 0;;) {
            const auto e = l.find("\\n", b);
            parts.push_back(l.substr(b, e == std::string::npos ? e : e - b));
            if (e == std::string::npos) break;
            b = e + 2;
        }
        out[parts[0]] = parts;
    }
    return out;
}

/// The "|grad| = v" entry of a label, or -1.
double norm_in(const std::vector<std::string>& parts) {
    for (const auto& p : parts)
        if (p.rfind("|grad| = ", 0) == 0) return std::stod(p.substr(9));
    return -1;
}

double l2(const xt::xarray<double>& a) {
    double s = 0;
    for (double v : a) s += v * v;
    return std::sqrt(s);
}

}  // namespace

TEST_CASE("to_dot draws every node and edge with op names, shapes, names and requires-grad") {
    reset_tape<double>();
    tensor<double> x(uniform({2, 3}, -1, 1, 1));
    tensor<double> w(uniform({3, 4}, -1, 1, 2), true), b(uniform({4}, -1, 1, 3), true);
    tensor<double> pre = matmul(x, w);
    tensor<double> s = pre + b;
    tensor<double> h = tanh(s);
    tensor<double> hh = h * h;
    tensor<double> loss = mean(hh);
    dot_options<double> o;
    o.names = {{"fc.weight", w}, {"odd \"name\"\\", b}};
    o.title = "net \"1\"";
    const std::string dot = to_dot(loss, o);
    INFO(dot);
    CHECK(dot.rfind("digraph \"net \\\"1\\\"\" {\n", 0) == 0);
    CHECK(dot.substr(dot.size() - 2) == "}\n");
    CHECK(count(dot, " [shape=") == 8);  // x, w, b; matmul, add, tanh, mul, mean
    CHECK(count(dot, " -> ") == 8);      // 2 + 2 + 1 + 2 (h read twice) + 1
    CHECK(count(dot, "|grad|") == 0);    // no reverse pass yet
    CHECK(count(dot, "penwidth=2") == 1);
    const auto l = labels(dot);
    REQUIRE(l.count("matmul"));
    CHECK(l.at("matmul") == std::vector<std::string>{"matmul", "[2, 4]"});
    CHECK(l.at("tanh") == std::vector<std::string>{"tanh", "[2, 4]"});
    CHECK(l.at(pre.op_name() == std::string("matmul") ? s.op_name() : "?")[1] == "[2, 4]");
    CHECK(l.at(loss.op_name())[1] == "[]");
    CHECK(l.at("fc.weight") == std::vector<std::string>{"fc.weight", "[3, 4]", "requires grad"});
    CHECK(l.at("constant") == std::vector<std::string>{"constant", "[2, 3]", "no grad"});
    CHECK(l.count("odd \\\"name\\\"\\\\"));  // escaped quotes and backslash
    // Edges: x and w into matmul (leaves are numbered first, in the order found).
    const std::string mm_id = dot.substr(dot.rfind("\n  n", dot.find("label=\"matmul")) + 3);
    const std::string mm = mm_id.substr(0, mm_id.find(' '));
    CHECK(count(dot, " -> " + mm + ";") == 2);
}

TEST_CASE("to_dot's gradient norms after backward equal the norms of tape.gradient's results") {
    reset_tape<double>();
    tensor<double> x(uniform({3, 5}, -1, 1, 4));
    tensor<double> w(uniform({5, 2}, -1, 1, 5), true), b(uniform({2}, -1, 1, 6), true);
    tensor<double> pre = matmul(x, w);
    tensor<double> s = pre + b;
    tensor<double> h = sigmoid(s);
    tensor<double> loss = sum(h * h);
    loss.backward();
    dot_options<double> o;
    o.names = {{"w", w}, {"b", b}};
    const auto l = labels(to_dot(loss, o));
    auto& tp = tape<double>::current();
    const std::vector<std::pair<std::string, tensor<double>>> cases = {
        {"w", w}, {"b", b}, {"matmul", pre}, {s.op_name(), s}, {h.op_name(), h}, {loss.op_name(), loss}};
    for (const auto& [name, t] : cases) {
        CAPTURE(name);
        REQUIRE(l.count(name));
        const double want = l2(tp.gradient(loss, {t})[0].value());
        CHECK(want > 0);
        CHECK(norm_in(l.at(name)) == doctest::Approx(want).epsilon(1e-5));
    }
    CHECK(norm_in(l.at("constant")) == -1);  // x needs no gradient
    // Also after a gradient() pass (the latest pass on the tape), and not after one with
    // create_graph, whose gradients are recorded tensors.
    tp.gradient(loss, {w});
    CHECK(norm_in(labels(to_dot(loss, o)).at("matmul")) ==
          doctest::Approx(l2(tp.gradient(loss, {pre})[0].value())).epsilon(1e-5));
    tp.gradient(loss, {w}, {true});
    const auto after = labels(to_dot(loss, o));
    CHECK(norm_in(after.at("matmul")) == -1);
    CHECK(norm_in(after.at("w")) == doctest::Approx(l2(w.grad())).epsilon(1e-5));  // leaves: their .grad()
    dot_options<double> quiet = o;
    quiet.grad_norms = false;
    CHECK(count(to_dot(loss, quiet), "|grad|") == 0);
    reset_tape<double>();
}

TEST_CASE("to_dot names a model's parameters by nn::dot_names; a leaf root is one node; stale roots throw") {
    reset_tape<double>();
    std::mt19937_64 rng(7);
    nn::linear<double> fc(3, 2, rng);
    tensor<double> loss = sum(fc(tensor<double>(uniform({4, 3}, -1, 1, 8))));
    const std::string dot = to_dot(loss, nn::dot_names(fc, "fc"));
    const auto l = labels(dot);
    for (const auto& [name, p] : fc.named_parameters()) {
        CAPTURE(name);
        REQUIRE(l.count("fc." + name));
        CHECK(l.at("fc." + name)[1] == shape_str(p.shape()));
    }
    CHECK(nn::dot_names(fc).names.at(0).first == fc.named_parameters().at(0).first);

    tensor<double> leaf(uniform({2}, -1, 1, 9), true);
    const std::string one = to_dot(leaf);
    CHECK(count(one, " [shape=") == 1);
    CHECK(count(one, " -> ") == 0);
    CHECK(labels(one).at("leaf") == std::vector<std::string>{"leaf", "[2]", "requires grad"});

    std::ostringstream os;
    to_dot(os, loss);
    CHECK(os.str() == to_dot(loss));
    reset_tape<double>();
    CHECK_THROWS_AS(to_dot(loss), std::logic_error);
    CHECK(dot_escape("a\"b\\c\nd\te") == "a\\\"b\\\\c\\nde");
}
