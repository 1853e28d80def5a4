#include "formulas/article.hpp"

#include <cmath>
#include <random>
#include <stdexcept>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "autograd/tensor.hpp"  // shape_str

namespace tapegrad::formulas {

namespace {

void require_2d(const xt::xarray<double>& a, const char* what, const char* op) {
    if (a.dimension() != 2)
        throw std::invalid_argument(std::string("formulas::") + op + ": " + what + " must be 2-D (column vectors are [n, 1]), got shape " +
                                    shape_str(a.shape()));
}

void require_shape(const xt::xarray<double>& a, std::size_t rows, std::size_t cols, const char* what, const char* op) {
    require_2d(a, what, op);
    if (a.shape()[0] != rows || a.shape()[1] != cols)
        throw std::invalid_argument(std::string("formulas::") + op + ": " + what + " has shape " + shape_str(a.shape()) +
                                    ", expected [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
}

void require_same(const xt::xarray<double>& a, const xt::xarray<double>& b, const char* what, const char* op) {
    if (a.shape() != b.shape())
        throw std::invalid_argument(std::string("formulas::") + op + ": " + what + " shapes differ: " +
                                    shape_str(a.shape()) + " vs " + shape_str(b.shape()));
}

}  // namespace

const char* to_string(output_activation a) { return a == output_activation::softmax ? "softmax" : "sigmoid"; }

xt::xarray<double> matmul(const xt::xarray<double>& a, const xt::xarray<double>& b) {
    require_2d(a, "left operand", "matmul");
    require_2d(b, "right operand", "matmul");
    const std::size_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
    if (b.shape()[0] != k)
        throw std::invalid_argument("formulas::matmul: inner sizes differ: " + shape_str(a.shape()) + " . " +
                                    shape_str(b.shape()));
    xt::xarray<double> c = xt::zeros<double>({m, n});
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t p = 0; p < k; ++p)
            for (std::size_t j = 0; j < n; ++j) c(i, j) += a(i, p) * b(p, j);
    return c;
}

xt::xarray<double> transpose(const xt::xarray<double>& a) {
    require_2d(a, "operand", "transpose");
    xt::xarray<double> t = xt::zeros<double>({a.shape()[1], a.shape()[0]});
    for (std::size_t i = 0; i < a.shape()[0]; ++i)
        for (std::size_t j = 0; j < a.shape()[1]; ++j) t(j, i) = a(i, j);
    return t;
}

xt::xarray<double> sum_columns(const xt::xarray<double>& a) {
    require_2d(a, "operand", "sum_columns");
    xt::xarray<double> s = xt::zeros<double>({a.shape()[0], std::size_t{1}});
    for (std::size_t i = 0; i < a.shape()[0]; ++i)
        for (std::size_t j = 0; j < a.shape()[1]; ++j) s(i, 0) += a(i, j);
    return s;
}

problem make_problem(output_activation activation, unsigned seed, std::size_t in, std::size_t hidden,
                     std::size_t out, std::size_t samples) {
    if (in == 0 || hidden == 0 || out == 0 || samples == 0)
        throw std::invalid_argument("formulas::make_problem: sizes must be positive, got in=" + std::to_string(in) +
                                    " hidden=" + std::to_string(hidden) + " out=" + std::to_string(out) +
                                    " samples=" + std::to_string(samples));
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_int_distribution<std::size_t> label(0, out - 1);
    auto fill = [&](std::size_t r, std::size_t c) {
        xt::xarray<double> a = xt::zeros<double>({r, c});
        for (auto& v : a) v = uniform(rng);
        return a;
    };
    problem p;
    p.net.activation = activation;
    p.net.W1 = fill(hidden, in);
    p.net.b1 = fill(hidden, 1);
    p.net.W2 = fill(out, hidden);
    p.net.b2 = fill(out, 1);
    p.input = xt::zeros<double>({in, samples});
    for (auto& v : p.input) v = normal(rng);
    p.target = xt::zeros<double>({out, samples});
    for (std::size_t j = 0; j < samples; ++j) p.target(label(rng), j) = 1.0;
    return p;
}

forward_values forward(const network& net, const xt::xarray<double>& input) {
    require_2d(net.W1, "W1", "forward");
    require_2d(net.W2, "W2", "forward");
    const std::size_t hidden = net.W1.shape()[0], in = net.W1.shape()[1], out = net.W2.shape()[0];
    require_shape(net.W2, out, hidden, "W2", "forward");
    require_shape(net.b1, hidden, 1, "b1", "forward");
    require_shape(net.b2, out, 1, "b2", "forward");
    require_2d(input, "input", "forward");
    require_shape(input, in, input.shape()[1], "input", "forward");

    forward_values fw;
    fw.z1 = matmul(net.W1, input) + net.b1;  // b1 [hidden, 1] broadcasts over the samples
    fw.hidden = xt::tanh(fw.z1);
    fw.z2 = matmul(net.W2, fw.hidden) + net.b2;
    if (net.activation == output_activation::sigmoid) {
        fw.output = 1.0 / (1.0 + xt::exp(-fw.z2));
    } else {
        // softmax down each column, shifted by the column max so exp cannot overflow
        fw.output = xt::zeros<double>(fw.z2.shape());
        for (std::size_t j = 0; j < fw.z2.shape()[1]; ++j) {
            double m = fw.z2(0, j), s = 0;
            for (std::size_t i = 1; i < out; ++i) m = std::max(m, fw.z2(i, j));
            for (std::size_t i = 0; i < out; ++i) s += (fw.output(i, j) = std::exp(fw.z2(i, j) - m));
            for (std::size_t i = 0; i < out; ++i) fw.output(i, j) /= s;
        }
    }
    return fw;
}

double loss(const xt::xarray<double>& output, const xt::xarray<double>& target) {
    require_same(output, target, "output and target", "loss");
    double e = 0;
    for (std::size_t i = 0; i < output.size(); ++i) {
        const double d = target.data()[i] - output.data()[i];
        e += d * d;
    }
    return 0.5 * e;
}

xt::xarray<double> article_delta3(const xt::xarray<double>& output, const xt::xarray<double>& target) {
    require_same(output, target, "output and target", "article_delta3");
    return output * (1.0 - output) * (target - output);
}

xt::xarray<double> article_delta2(const network& net, const forward_values& fw, const xt::xarray<double>& delta3) {
    // (W2' delta3) .* tanh'(z1), tanh' = 1 - tanh^2
    xt::xarray<double> back = matmul(transpose(net.W2), delta3);
    require_same(back, fw.hidden, "W2' delta3 and hidden", "article_delta2");
    return back * (1.0 - fw.hidden * fw.hidden);
}

xt::xarray<double> article_delta1(const network& net, const xt::xarray<double>& delta2,
                                  const xt::xarray<double>& input) {
    // literal: (W1' delta2) .* input
    xt::xarray<double> back = matmul(transpose(net.W1), delta2);
    require_same(back, input, "W1' delta2 and input", "article_delta1");
    return back * input;
}

gradients article_gradients(const forward_values& fw, const xt::xarray<double>& input,
                            const xt::xarray<double>& delta3, const xt::xarray<double>& delta2) {
    // The updates add lr * (delta * activation'), so each gradient is minus that.
    gradients g;
    g.W2 = -matmul(delta3, transpose(fw.hidden));
    g.b2 = -sum_columns(delta3);
    g.W1 = -matmul(delta2, transpose(input));
    g.b1 = -sum_columns(delta2);
    return g;
}

gradients article_chain(const network& net, const xt::xarray<double>& input, const xt::xarray<double>& target) {
    const forward_values fw = forward(net, input);
    const xt::xarray<double> d3 = article_delta3(fw.output, target);
    const xt::xarray<double> d2 = article_delta2(net, fw, d3);
    return article_gradients(fw, input, d3, d2);
}

xt::xarray<double> correct_delta3(output_activation activation, const xt::xarray<double>& output,
                                  const xt::xarray<double>& target) {
    require_same(output, target, "output and target", "correct_delta3");
    if (activation == output_activation::sigmoid) return output * (1.0 - output) * (target - output);
    require_2d(output, "output", "correct_delta3");
    // -dE/dz_j = sum_k (t_k - o_k) do_k/dz_j = o_j ((t_j - o_j) - sum_k o_k (t_k - o_k))
    xt::xarray<double> d = xt::zeros<double>(output.shape());
    for (std::size_t j = 0; j < output.shape()[1]; ++j) {
        double s = 0;
        for (std::size_t k = 0; k < output.shape()[0]; ++k) s += output(k, j) * (target(k, j) - output(k, j));
        for (std::size_t i = 0; i < output.shape()[0]; ++i)
            d(i, j) = output(i, j) * ((target(i, j) - output(i, j)) - s);
    }
    return d;
}

xt::xarray<double> correct_delta1(const network& net, const xt::xarray<double>& delta2) {
    return matmul(transpose(net.W1), delta2);
}

gradients correct_chain(const network& net, const xt::xarray<double>& input, const xt::xarray<double>& target) {
    const forward_values fw = forward(net, input);
    const xt::xarray<double> d3 = correct_delta3(net.activation, fw.output, target);
    const xt::xarray<double> d2 = article_delta2(net, fw, d3);
    return article_gradients(fw, input, d3, d2);
}

}  // namespace tapegrad::formulas
