// --arch lists: parsing, shape planning and building (see cnn_arch.hpp).

#include "apps/cnn_arch.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>
#include <sstream>

#include "apps/options.hpp"
#include "nn/conv_layers.hpp"
#include "nn/layers.hpp"

namespace tapegrad::app {

namespace {

const std::vector<std::string> activation_tokens = {"relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus"};

constexpr std::uint64_t max_filters = 100000;
constexpr std::uint64_t max_features = 1000000000;
constexpr std::uint64_t max_window = 1000;
constexpr std::size_t max_tokens = 200;

std::string shape_text(const std::vector<std::size_t>& s) {
    std::string t;
    for (std::size_t i = 0; i < s.size(); ++i) t += (i ? "x" : "") + std::to_string(s[i]);
    return t;
}

std::string quoted(const std::string& text) {
    std::string t = text.size() > 60 ? text.substr(0, 57) + "..." : text;
    for (char& c : t)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return "'" + t + "'";
}

/// Reads "<letters><digits>" parts of a token: "c32k5s2p0" -> c=32, k=5, s=2, p=0.
class token_reader {
  public:
    token_reader(const std::string& t, std::string where) : t_(t), where_(std::move(where)) {}
    bool at(const std::string& prefix) const { return t_.compare(pos_, prefix.size(), prefix) == 0; }
    /// `prefix` followed by a digit ("c3", not "conv").
    bool at_number(const std::string& prefix) const {
        return at(prefix) && pos_ + prefix.size() < t_.size() && std::isdigit(static_cast<unsigned char>(t_[pos_ + prefix.size()]));
    }
    bool done() const { return pos_ == t_.size(); }
    /// The digits after `prefix` (which must be next) as a whole number in [lo, hi].
    std::size_t number(const std::string& prefix, const std::string& what, std::uint64_t lo, std::uint64_t hi) {
        pos_ += prefix.size();
        const std::size_t end = t_.find_first_not_of("0123456789", pos_);
        const std::string digits = t_.substr(pos_, end == std::string::npos ? std::string::npos : end - pos_);
        pos_ = end == std::string::npos ? t_.size() : end;
        try {
            return static_cast<std::size_t>(parse_whole(what, digits, lo, hi));
        } catch (const option_error& e) {
            throw option_error(where_ + ": " + e.what() + "; " + arch_grammar());
        }
    }

  private:
    const std::string& t_;
    std::string where_;
    std::size_t pos_ = 0;
};

}  // namespace

std::string arch_grammar() {
    return "an --arch is a comma-separated list of c<N>[k<K>][s<S>][p<P>] (Conv2d: N filters, KxK kernel, default 3, "
           "stride S, default 1, zero padding P, default K/2), bn (BatchNorm), relu, tanh, sigmoid, gelu, elu, "
           "leaky_relu, softplus, mp<K> (MaxPool2d KxK), ap<K> (AvgPool2d KxK), gap (global average pool), "
           "d<P> (Dropout, 0 <= P < 1), fc<N> (Linear to N features); the Linear to the classes is added at the end, "
           "e.g. " +
           std::string(default_cnn_arch);
}

std::vector<arch_token> parse_arch(const std::string& text, const std::string& label) {
    std::vector<arch_token> out;
    std::size_t start = 0;
    while (true) {
        const std::size_t comma = text.find(',', start);
        arch_token t;
        t.text = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        t.position = out.size() + 1;
        const std::string where = label + ": token " + std::to_string(t.position) + " " + quoted(t.text) + " of " +
                                  quoted(text);
        if (t.position > max_tokens)
            throw option_error(label + ": " + quoted(text) + " has more than " + std::to_string(max_tokens) +
                               " layers");
        token_reader r(t.text, where);
        using k = arch_token::kind;
        bool known = true;
        if (t.text == "bn") {
            t.k = k::batch_norm;
        } else if (t.text == "gap") {
            t.k = k::global_avg_pool;
        } else if (std::find(activation_tokens.begin(), activation_tokens.end(), t.text) != activation_tokens.end()) {
            t.k = k::activation;
            t.activation = t.text;
        } else if (r.at_number("fc")) {
            t.k = k::linear;
            t.size = r.number("fc", "its features", 1, max_features);
        } else if (r.at_number("mp") || r.at_number("ap")) {
            t.k = r.at("mp") ? k::max_pool : k::avg_pool;
            t.kernel = r.number(t.text.substr(0, 2), "its window", 1, max_window);
        } else if (r.at_number("c")) {
            t.k = k::conv;
            t.size = r.number("c", "its filters", 1, max_filters);
            t.kernel = r.at("k") ? r.number("k", "its kernel", 1, max_window) : 3;
            t.stride = r.at("s") ? r.number("s", "its stride", 1, max_window) : 1;
            t.padding = r.at("p") ? r.number("p", "its padding", 0, max_window) : t.kernel / 2;
        } else if (r.at("d") && t.text.size() > 1) {
            t.k = k::dropout;
            try {
                t.p = parse_real("its probability", t.text.substr(1), 0, 1);
            } catch (const option_error& e) {
                throw option_error(where + ": " + e.what() + "; " + arch_grammar());
            }
            if (t.p >= 1)
                throw option_error(where + ": a dropout probability must be below 1 (1 drops everything); " +
                                   arch_grammar());
        } else {
            known = false;
        }
        const bool numbered = t.k == k::conv || t.k == k::linear || t.k == k::max_pool || t.k == k::avg_pool;
        if (known && numbered && !r.done()) known = false;  // "c32x", "mp2k3"
        if (!known)
            throw option_error(where + (t.text.empty() ? " is empty" : " is not a layer") + "; " + arch_grammar());
        out.push_back(t);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

std::size_t square_side(std::size_t inputs) {
    auto side = static_cast<std::size_t>(std::llround(std::sqrt(static_cast<double>(inputs))));
    if (side == 0 || side * side != inputs)
        throw option_error("--model cnn needs square images, but the data has " + std::to_string(inputs) +
                           " values per example: use --model mlp for this data");
    return side;
}

std::vector<planned_layer> plan_cnn(const std::vector<arch_token>& arch, std::size_t height, std::size_t width,
                                    std::size_t classes) {
    using op = planned_layer::op;
    using k = arch_token::kind;
    std::vector<planned_layer> plan;
    std::vector<std::size_t> shape{1, height, width};  // [C, H, W], or [F] once flat
    auto add = [&](op o, const arch_token& t, std::vector<std::size_t> out, double params, std::string what,
                   double workspace = 0) {
        planned_layer l;
        l.o = o;
        l.token = t;
        l.input = shape;
        l.output = out;
        l.parameters = params;
        l.workspace = workspace;
        l.what = (t.position ? t.text + " (token " + std::to_string(t.position) + "): " : std::string()) + what;
        plan.push_back(std::move(l));
        shape = std::move(out);
    };
    const arch_token inserted;  // position 0: the trainer's own layers
    add(op::unflatten, inserted, shape, 0, "Unflatten to 1x" + std::to_string(height) + "x" + std::to_string(width));
    auto flatten = [&] {
        const std::size_t f = shape[0] * shape[1] * shape[2];
        add(op::flatten, inserted, {f}, 0, "Flatten " + shape_text(shape) + " -> " + std::to_string(f));
    };
    for (const arch_token& t : arch) {
        const std::string where = "--arch: " + t.text + " (token " + std::to_string(t.position) + ")";
        const bool image = shape.size() == 3;
        const bool needs_image = t.k == k::conv || t.k == k::max_pool || t.k == k::avg_pool ||
                                 t.k == k::global_avg_pool;
        if (needs_image && !image)
            throw option_error(where + " needs images [C, H, W] but gets " + std::to_string(shape[0]) +
                               " flat features (after an fc or gap): put every c, mp, ap and gap before the first "
                               "fc and gap");
        switch (t.k) {
        case k::conv: {
            const std::size_t c = shape[0], h = shape[1], w = shape[2];
            if (h + 2 * t.padding < t.kernel || w + 2 * t.padding < t.kernel)
                throw option_error(where + " gets a " + shape_text(shape) + " input, smaller than its " +
                                   std::to_string(t.kernel) + "x" + std::to_string(t.kernel) + " kernel with padding " +
                                   std::to_string(t.padding) + ": use a smaller kernel (k), more padding (p), or "
                                   "fewer pools or strides before it");
            const std::size_t oh = (h + 2 * t.padding - t.kernel) / t.stride + 1;
            const std::size_t ow = (w + 2 * t.padding - t.kernel) / t.stride + 1;
            const double fan_in = static_cast<double>(c * t.kernel * t.kernel);
            add(op::conv, t, {t.size, oh, ow}, (fan_in + 1) * static_cast<double>(t.size),
                "Conv2d " + std::to_string(c) + " -> " + std::to_string(t.size) + ", " + std::to_string(t.kernel) +
                    "x" + std::to_string(t.kernel) + ", stride " + std::to_string(t.stride) + ", padding " +
                    std::to_string(t.padding),
                fan_in * static_cast<double>(oh * ow));
            break;
        }
        case k::batch_norm:
            add(image ? op::batch_norm2d : op::batch_norm1d, t, shape, 2.0 * static_cast<double>(shape[0]),
                std::string(image ? "BatchNorm2d(" : "BatchNorm1d(") + std::to_string(shape[0]) + ")");
            break;
        case k::activation:
            add(op::activation, t, shape, 0, t.activation);
            break;
        case k::max_pool:
        case k::avg_pool: {
            if (shape[1] < t.kernel || shape[2] < t.kernel)
                throw option_error(where + " gets a " + shape_text(shape) + " input, smaller than its " +
                                   std::to_string(t.kernel) + "x" + std::to_string(t.kernel) +
                                   " window: remove a pool or use a smaller window (the images are " +
                                   std::to_string(height) + "x" + std::to_string(width) + ")");
            add(t.k == k::max_pool ? op::max_pool : op::avg_pool, t,
                {shape[0], shape[1] / t.kernel, shape[2] / t.kernel}, 0,
                std::string(t.k == k::max_pool ? "MaxPool2d " : "AvgPool2d ") + std::to_string(t.kernel) + "x" +
                    std::to_string(t.kernel));
            break;
        }
        case k::global_avg_pool:
            add(op::global_avg_pool, t, {shape[0]}, 0, "global average pool " + shape_text(shape) + " -> " +
                                                           std::to_string(shape[0]));
            break;
        case k::dropout:
            add(op::dropout, t, shape, 0, "Dropout(" + t.text.substr(1) + ")");
            break;
        case k::linear:
            if (image) flatten();
            add(op::linear, t, {t.size}, (static_cast<double>(shape[0]) + 1) * static_cast<double>(t.size),
                "Linear " + std::to_string(shape[0]) + " -> " + std::to_string(t.size));
            break;
        }
    }
    if (shape.size() == 3) flatten();
    add(op::linear, inserted, {classes}, (static_cast<double>(shape[0]) + 1) * static_cast<double>(classes),
        "Linear " + std::to_string(shape[0]) + " -> " + std::to_string(classes) + " (the classes)");
    return plan;
}

std::shared_ptr<nn::module<float>> make_cnn(const std::string& arch, std::size_t inputs, std::size_t classes,
                                            std::uint64_t seed) {
    const std::size_t side = square_side(inputs);
    const std::vector<planned_layer> plan = plan_cnn(parse_arch(arch), side, side, classes);
    std::mt19937_64 rng(seed);
    auto net = std::make_shared<nn::sequential<float>>();
    using op = planned_layer::op;
    for (const planned_layer& l : plan) {
        const arch_token& t = l.token;
        switch (l.o) {
        case op::unflatten:
            net->push_back(std::make_shared<nn::unflatten<float>>(l.output));
            break;
        case op::conv: {
            conv2d_options co;
            co.stride = {t.stride, t.stride};
            co.padding = {t.padding, t.padding};
            net->push_back(std::make_shared<nn::conv2d<float>>(l.input[0], t.size,
                                                               std::array<std::size_t, 2>{t.kernel, t.kernel}, rng, co));
            break;
        }
        case op::batch_norm2d:
            net->push_back(std::make_shared<nn::batch_norm2d<float>>(l.input[0]));
            break;
        case op::batch_norm1d:
            net->push_back(std::make_shared<nn::batch_norm1d<float>>(l.input[0]));
            break;
        case op::activation:
            net->push_back(std::make_shared<nn::activation_module<float>>(nn::parse_activation(t.activation)));
            break;
        case op::max_pool:
            net->push_back(std::make_shared<nn::max_pool2d<float>>(std::array<std::size_t, 2>{t.kernel, t.kernel}));
            break;
        case op::avg_pool:
            net->push_back(std::make_shared<nn::avg_pool2d<float>>(std::array<std::size_t, 2>{t.kernel, t.kernel}));
            break;
        case op::global_avg_pool:
            net->push_back(std::make_shared<nn::global_avg_pool2d<float>>());
            break;
        case op::dropout:  // reseeded every step by the trainer (reseed_dropout)
            net->push_back(std::make_shared<nn::dropout<float>>(t.p, seed));
            break;
        case op::flatten:
            net->push_back(std::make_shared<nn::flatten<float>>());
            break;
        case op::linear:
            net->push_back(std::make_shared<nn::linear<float>>(l.input[0], l.output[0], rng));
            break;
        }
    }
    return net;
}

void reseed_dropout(nn::module<float>& model, std::uint64_t seed, std::uint64_t step) {
    std::uint64_t place = 0;
    auto walk = [&](auto& self, nn::module<float>& m) -> void {
        if (auto* d = dynamic_cast<nn::dropout<float>*>(&m)) {
            // One engine per (seed, step, place): seed_seq mixes the three words.
            std::seed_seq mix{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                              static_cast<std::uint32_t>(step), static_cast<std::uint32_t>(step >> 32),
                              static_cast<std::uint32_t>(place)};
            std::uint32_t words[2];
            mix.generate(words, words + 2);
            d->reseed((static_cast<std::uint64_t>(words[0]) << 32) | words[1]);
        }
        ++place;
        for (auto& [name, child] : m.children()) self(self, *child);
    };
    walk(walk, model);
}

}  // namespace tapegrad::app
