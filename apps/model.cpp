// The trainer's networks, optimizers and checkpoint files, on the core ops.

#include "apps/model.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <zlib.h>

#include "autograd/ops.hpp"

namespace tapegrad::app {

std::string model_spec::describe() const {
    std::ostringstream os;
    if (kind == "seed") {
        os << "seed " << inputs << "-" << hidden << "-" << classes << " tanh, softmax, " << loss;
    } else {
        os << "mlp " << inputs;
        for (auto h : layers) os << "-" << h;
        os << "-" << classes << " " << activation << ", " << loss;
    }
    return os.str();
}

namespace {

/// Uniform float in [-bound, bound) from 24 random bits: the same on every platform.
float uniform(std::mt19937_64& rng, float bound) {
    const float u = static_cast<float>(rng() >> 40) * (1.0f / 16777216.0f);
    return (2 * u - 1) * bound;
}

/// A fully connected layer y = x W^T + b with W [out, in] (PyTorch's layout and
/// default initialisation, uniform within 1/sqrt(in)).
struct dense {
    tensor<float> weight, bias;
    dense(std::size_t in, std::size_t out, std::mt19937_64& rng) {
        const float bound = 1.0f / std::sqrt(static_cast<float>(in));
        xt::xarray<float> w = xt::xarray<float>::from_shape({out, in});
        for (auto& v : w) v = uniform(rng, bound);
        xt::xarray<float> b = xt::xarray<float>::from_shape({out});
        for (auto& v : b) v = uniform(rng, bound);
        weight = tensor<float>(std::move(w), true);
        bias = tensor<float>(std::move(b), true);
    }
    tensor<float> operator()(const tensor<float>& x) const { return matmul(x, weight, false, true) + bias; }
};

tensor<float> activate(const std::string& name, const tensor<float>& x) {
    if (name == "relu") return relu(x);
    if (name == "tanh") return tanh(x);
    if (name == "sigmoid") return sigmoid(x);
    if (name == "gelu") return gelu(x);
    if (name == "elu") return elu(x);
    if (name == "leaky_relu") return leaky_relu(x);
    if (name == "softplus") return softplus(x);
    throw std::invalid_argument("unknown activation '" + name + "'");
}

/// A stack of dense layers with an activation between them; parameters named
/// as a PyTorch nn.Sequential would name them ("0.weight", "2.bias", ...).
class dense_stack : public classifier {
  public:
    dense_stack(const model_spec& spec, std::vector<std::size_t> sizes, std::string activation,
                std::vector<std::string> names, std::uint64_t seed)
        : spec_(spec), activation_(std::move(activation)), names_(std::move(names)) {
        std::mt19937_64 rng(seed);
        for (std::size_t l = 0; l + 1 < sizes.size(); ++l) layers_.emplace_back(sizes[l], sizes[l + 1], rng);
        activate(activation_, tensor<float>::zeros({1}));  // reject an unknown activation now
    }
    tensor<float> forward(const tensor<float>& x) override {
        tensor<float> h = x;
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            h = layers_[l](h);
            if (l + 1 < layers_.size()) h = activate(activation_, h);
        }
        return h;
    }
    std::vector<tensor<float>> parameters() override {
        std::vector<tensor<float>> p;
        for (auto& l : layers_) p.push_back(l.weight), p.push_back(l.bias);
        return p;
    }
    state_dict state() override {
        state_dict s;
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            s[names_[l] + ".weight"] = layers_[l].weight.value();
            s[names_[l] + ".bias"] = layers_[l].bias.value();
        }
        return s;
    }
    void load_state(const state_dict& s) override {
        // Check everything first so a bad checkpoint leaves the model untouched.
        std::vector<std::pair<tensor<float>, const xt::xarray<float>*>> todo;
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            for (auto [suffix, t] : {std::pair{".weight", layers_[l].weight}, std::pair{".bias", layers_[l].bias}}) {
                const std::string key = names_[l] + suffix;
                auto it = s.find(key);
                if (it == s.end()) throw std::runtime_error("checkpoint has no parameter '" + key + "'");
                if (shape_t(it->second.shape().begin(), it->second.shape().end()) != t.shape()) {
                    throw std::runtime_error("checkpoint parameter '" + key + "' has shape " +
                                             shape_str(it->second.shape()) + ", the model expects " +
                                             shape_str(t.shape()));
                }
                todo.emplace_back(t, &it->second);
            }
        }
        if (s.size() != todo.size()) {
            for (const auto& [k, v] : s) {
                bool known = false;
                for (std::size_t l = 0; l < layers_.size(); ++l)
                    known |= k == names_[l] + ".weight" || k == names_[l] + ".bias";
                if (!known) throw std::runtime_error("checkpoint has an unexpected parameter '" + k + "'");
            }
        }
        for (auto& [t, v] : todo) t.mutable_value() = *v;
    }
    std::string summary() override {
        std::ostringstream os;
        std::size_t count = 0;
        os << spec_.describe() << "\n";
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            os << "  " << names_[l] << ": linear " << shape_str(layers_[l].weight.shape()) << " + bias\n";
            count += layers_[l].weight.size() + layers_[l].bias.size();
        }
        os << "  parameters: " << count << "\n";
        return os.str();
    }

  private:
    model_spec spec_;
    std::string activation_;
    std::vector<std::string> names_;
    std::vector<dense> layers_;
};

}  // namespace

std::unique_ptr<classifier> make_classifier(const model_spec& spec, std::uint64_t seed) {
    if (spec.inputs == 0 || spec.classes == 0) throw std::invalid_argument("make_classifier: empty input or output");
    if (spec.kind == "seed") {
        // softmax(W2 tanh(W1 x + b1) + b2): the softmax is part of the loss.
        return std::make_unique<dense_stack>(spec, std::vector<std::size_t>{spec.inputs, spec.hidden, spec.classes},
                                             "tanh", std::vector<std::string>{"fc1", "fc2"}, seed);
    }
    if (spec.kind == "mlp") {
        std::vector<std::size_t> sizes{spec.inputs};
        sizes.insert(sizes.end(), spec.layers.begin(), spec.layers.end());
        sizes.push_back(spec.classes);
        std::vector<std::string> names;
        for (std::size_t l = 0; l + 1 < sizes.size(); ++l) names.push_back(std::to_string(2 * l));
        return std::make_unique<dense_stack>(spec, sizes, spec.activation, names, seed);
    }
    throw std::invalid_argument("unknown model '" + spec.kind + "': use seed or mlp");
}

tensor<float> classification_loss(const std::string& loss, const tensor<float>& logits,
                                  const std::vector<std::size_t>& labels) {
    if (loss == "ce") return cross_entropy(logits, labels);
    if (loss == "mse") {
        const std::size_t n = labels.size(), c = logits.shape()[1];
        xt::xarray<float> onehot = xt::zeros<float>({n, c});
        for (std::size_t i = 0; i < n; ++i) onehot(i, labels[i]) = 1.0f;
        return mse(softmax(logits, 1), tensor<float>(std::move(onehot)));
    }
    throw std::invalid_argument("unknown loss '" + loss + "': use ce or mse");
}

// ------------------------------------------------------------ optimizers

namespace {

/// PyTorch's update rules (torch.optim, 1.13), float32, one state slot per
/// parameter and kind of moment.
class simple_optimizer : public trainer_optimizer {
  public:
    simple_optimizer(const optimizer_spec& s, std::vector<tensor<float>> params) : s_(s), params_(std::move(params)) {
        if (!(s.lr > 0)) throw std::invalid_argument("optimizer: learning rate must be > 0, got " + std::to_string(s.lr));
        if (s.weight_decay < 0) throw std::invalid_argument("optimizer: weight decay must be >= 0");
        if (s.name != "sgd" && s.name != "adam" && s.name != "adamw" && s.name != "rmsprop" && s.name != "adagrad")
            throw std::invalid_argument("unknown optimizer '" + s.name + "': use sgd, adam, adamw, rmsprop or adagrad");
        for (auto& p : params_) {
            m_.push_back(xt::zeros<float>(p.shape()));
            v_.push_back(xt::zeros<float>(p.shape()));
        }
        lr_ = s.lr;
    }
    void set_lr(double lr) override { lr_ = lr; }
    void zero_grad() override {
        for (auto& p : params_) p.zero_grad();
    }
    void step() override {
        ++t_;
        const float lr = static_cast<float>(lr_), wd = static_cast<float>(s_.weight_decay);
        for (std::size_t i = 0; i < params_.size(); ++i) {
            tensor<float>& p = params_[i];
            if (!p.has_grad()) continue;
            auto& w = p.mutable_value();
            xt::xarray<float> g = p.grad();
            if (wd > 0 && s_.name != "adamw") xt::noalias(g) += wd * w;
            if (s_.name == "sgd") {
                const float mu = static_cast<float>(s_.momentum);
                if (mu > 0) {
                    if (t_ == 1) m_[i] = g;
                    else xt::noalias(m_[i]) = mu * m_[i] + g;
                    xt::noalias(w) -= lr * m_[i];
                } else {
                    xt::noalias(w) -= lr * g;
                }
            } else if (s_.name == "adam" || s_.name == "adamw") {
                if (s_.name == "adamw") xt::noalias(w) *= (1 - lr * wd);
                const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
                xt::noalias(m_[i]) = b1 * m_[i] + (1 - b1) * g;
                xt::noalias(v_[i]) = b2 * v_[i] + (1 - b2) * g * g;
                const float c1 = 1 - std::pow(b1, static_cast<float>(t_));
                const float c2 = std::sqrt(1 - std::pow(b2, static_cast<float>(t_)));
                xt::noalias(w) -= (lr / c1) * m_[i] / (xt::sqrt(v_[i]) / c2 + eps);
            } else if (s_.name == "rmsprop") {
                const float alpha = 0.99f, eps = 1e-8f;
                xt::noalias(v_[i]) = alpha * v_[i] + (1 - alpha) * g * g;
                xt::noalias(w) -= lr * g / (xt::sqrt(v_[i]) + eps);
            } else {  // adagrad
                const float eps = 1e-10f;
                xt::noalias(v_[i]) += g * g;
                xt::noalias(w) -= lr * g / (xt::sqrt(v_[i]) + eps);
            }
        }
    }
    state_dict state() override {
        state_dict s;
        s["step"] = xt::xarray<float>({static_cast<float>(t_)});
        for (std::size_t i = 0; i < params_.size(); ++i) {
            s[std::to_string(i) + ".m"] = m_[i];
            s[std::to_string(i) + ".v"] = v_[i];
        }
        return s;
    }
    void load_state(const state_dict& s) override {
        auto get = [&](const std::string& k, const shape_t& shape) -> const xt::xarray<float>& {
            auto it = s.find(k);
            if (it == s.end()) throw std::runtime_error("checkpoint has no optimizer state '" + k + "'");
            if (shape_t(it->second.shape().begin(), it->second.shape().end()) != shape)
                throw std::runtime_error("checkpoint optimizer state '" + k + "' has shape " +
                                         shape_str(it->second.shape()) + ", expected " + shape_str(shape));
            return it->second;
        };
        const std::size_t t = static_cast<std::size_t>(get("step", {1})(0));
        std::vector<xt::xarray<float>> m, v;
        for (std::size_t i = 0; i < params_.size(); ++i) {
            m.push_back(get(std::to_string(i) + ".m", params_[i].shape()));
            v.push_back(get(std::to_string(i) + ".v", params_[i].shape()));
        }
        t_ = t;
        m_ = std::move(m);
        v_ = std::move(v);
    }

  private:
    optimizer_spec s_;
    std::vector<tensor<float>> params_;
    std::vector<xt::xarray<float>> m_, v_;
    std::size_t t_ = 0;
    double lr_;
};

}  // namespace

std::unique_ptr<trainer_optimizer> make_optimizer(const optimizer_spec& spec, std::vector<tensor<float>> params) {
    return std::make_unique<simple_optimizer>(spec, std::move(params));
}

double clip_grad_norm(const std::vector<tensor<float>>& params, double max_norm) {
    double sq = 0;
    for (const auto& p : params)
        if (p.has_grad())
            for (float g : p.grad()) sq += static_cast<double>(g) * g;
    const double norm = std::sqrt(sq);
    if (norm > max_norm) {
        const float scale = static_cast<float>(max_norm / (norm + 1e-6));
        for (auto p : params)
            if (p.has_grad()) xt::noalias(p.mutable_grad()) *= scale;
    }
    return norm;
}

// ------------------------------------------------------------------- npz

namespace {

void put16(std::string& b, std::uint16_t v) {
    b += static_cast<char>(v & 0xff);
    b += static_cast<char>(v >> 8);
}
void put32(std::string& b, std::uint32_t v) {
    put16(b, static_cast<std::uint16_t>(v & 0xffff));
    put16(b, static_cast<std::uint16_t>(v >> 16));
}
std::uint16_t get16(const std::string& b, std::size_t at) {
    return static_cast<std::uint16_t>(static_cast<unsigned char>(b[at]) | (static_cast<unsigned char>(b[at + 1]) << 8));
}
std::uint32_t get32(const std::string& b, std::size_t at) { return get16(b, at) | (std::uint32_t(get16(b, at + 2)) << 16); }

/// A .npy file (format 1.0) of little-endian float32.
std::string npy_bytes(const xt::xarray<float>& a) {
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
    for (std::size_t i = 0; i < a.dimension(); ++i) dict += std::to_string(a.shape()[i]) + (a.dimension() == 1 ? "," : i + 1 < a.dimension() ? ", " : "");
    dict += "), }";
    const std::size_t unpadded = 10 + dict.size() + 1;
    dict.append((64 - unpadded % 64) % 64, ' ');
    dict += '\n';
    std::string b = "\x93NUMPY";
    b += '\x01';
    b += '\x00';
    put16(b, static_cast<std::uint16_t>(dict.size()));
    b += dict;
    b.append(reinterpret_cast<const char*>(a.data()), a.size() * sizeof(float));
    return b;
}

xt::xarray<float> parse_npy(const std::string& b, const std::string& where) {
    if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) throw std::runtime_error(where + ": not a .npy array");
    const std::size_t hlen = get16(b, 8);
    if (b[6] != 1 || 10 + hlen > b.size()) throw std::runtime_error(where + ": unsupported .npy header");
    const std::string h = b.substr(10, hlen);
    if (h.find("'descr': '<f4'") == std::string::npos || h.find("'fortran_order': False") == std::string::npos)
        throw std::runtime_error(where + ": expected little-endian float32 in C order");
    const auto open = h.find("'shape': ("), close = h.find(')', open);
    if (open == std::string::npos || close == std::string::npos) throw std::runtime_error(where + ": no shape");
    shape_t shape;
    std::stringstream ss(h.substr(open + 10, close - open - 10));
    std::string part;
    while (std::getline(ss, part, ','))
        if (part.find_first_not_of(' ') != std::string::npos) shape.push_back(std::stoul(part));
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    if (b.size() != 10 + hlen + n * sizeof(float))
        throw std::runtime_error(where + ": data size disagrees with shape " + shape_str(shape));
    xt::xarray<float> a = xt::xarray<float>::from_shape(shape);
    std::memcpy(a.data(), b.data() + 10 + hlen, n * sizeof(float));
    return a;
}

}  // namespace

void save_checkpoint(const std::string& path, const state_dict& arrays) {
    // An uncompressed ("stored") zip of .npy files: exactly what numpy.load reads.
    std::string zip, central;
    std::uint16_t count = 0;
    for (const auto& [name, a] : arrays) {
        const std::string file = name + ".npy";
        const std::string data = npy_bytes(a);
        const std::uint32_t crc = static_cast<std::uint32_t>(
            crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
        const std::uint32_t offset = static_cast<std::uint32_t>(zip.size());
        auto header = [&](std::string& b, bool central_entry) {
            put32(b, central_entry ? 0x02014b50 : 0x04034b50);
            if (central_entry) put16(b, 20);  // made by
            put16(b, 20);                     // needed to extract
            put16(b, 0);                      // flags
            put16(b, 0);                      // stored
            put16(b, 0);                      // time
            put16(b, 0x21);                   // date 1980-01-01
            put32(b, crc);
            put32(b, static_cast<std::uint32_t>(data.size()));
            put32(b, static_cast<std::uint32_t>(data.size()));
            put16(b, static_cast<std::uint16_t>(file.size()));
            put16(b, 0);  // extra
            if (central_entry) {
                put16(b, 0);  // comment
                put16(b, 0);  // disk
                put16(b, 0);  // internal attributes
                put32(b, 0);  // external attributes
                put32(b, offset);
            }
            b += file;
        };
        header(zip, false);
        zip += data;
        header(central, true);
        ++count;
    }
    const std::uint32_t central_offset = static_cast<std::uint32_t>(zip.size());
    zip += central;
    put32(zip, 0x06054b50);
    put16(zip, 0);
    put16(zip, 0);
    put16(zip, count);
    put16(zip, count);
    put32(zip, static_cast<std::uint32_t>(central.size()));
    put32(zip, central_offset);
    put16(zip, 0);
    std::ofstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error(path + ": cannot write the checkpoint");
    f.write(zip.data(), static_cast<std::streamsize>(zip.size()));
    if (!f) throw std::runtime_error(path + ": checkpoint write failed");
}

state_dict load_checkpoint(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error(path + ": cannot open the checkpoint");
    const std::string zip((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    state_dict out;
    std::size_t at = 0;
    while (at + 30 <= zip.size() && get32(zip, at) == 0x04034b50) {
        const std::uint16_t method = get16(zip, at + 8);
        const std::uint32_t size = get32(zip, at + 18);
        const std::uint16_t name_len = get16(zip, at + 26), extra = get16(zip, at + 28);
        if (at + 30 + name_len + extra + size > zip.size())
            throw std::runtime_error(path + ": truncated checkpoint at byte " + std::to_string(at));
        std::string name = zip.substr(at + 30, name_len);
        if (method != 0)
            throw std::runtime_error(path + ": entry '" + name + "' is compressed; tapegrad reads uncompressed .npz "
                                     "(numpy.savez, not savez_compressed)");
        const std::string data = zip.substr(at + 30 + name_len + extra, size);
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
        out[name] = parse_npy(data, path + ": " + name);
        at += 30 + name_len + extra + size;
    }
    if (out.empty()) throw std::runtime_error(path + ": not an .npz checkpoint (no arrays found)");
    return out;
}

}  // namespace tapegrad::app
