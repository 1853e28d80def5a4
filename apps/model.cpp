// The trainer's networks and optimizers, built from nn/ and optim/.

#include "apps/model.hpp"

#include <random>
#include <sstream>
#include <stdexcept>

#include "autograd/one_hot.hpp"
#include "autograd/ops.hpp"
#include "nn/layers.hpp"
#include "io/npz.hpp"

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

std::shared_ptr<nn::module<float>> make_classifier(const model_spec& spec, std::uint64_t seed) {
    if (spec.inputs == 0 || spec.classes == 0) throw std::invalid_argument("make_classifier: empty input or output");
    std::mt19937_64 rng(seed);
    std::vector<std::size_t> sizes{spec.inputs};
    nn::activation act;
    if (spec.kind == "seed") {
        sizes.push_back(spec.hidden);
        act = nn::activation::tanh;
    } else if (spec.kind == "mlp") {
        sizes.insert(sizes.end(), spec.layers.begin(), spec.layers.end());
        act = nn::parse_activation(spec.activation);
    } else {
        throw std::invalid_argument("unknown model '" + spec.kind + "': use seed or mlp");
    }
    sizes.push_back(spec.classes);
    return nn::mlp<float>(sizes, act, rng);
}

tensor<float> classification_loss(const std::string& loss, const tensor<float>& logits,
                                  const std::vector<std::size_t>& labels) {
    if (loss == "ce") return cross_entropy(logits, labels);
    if (loss == "mse") {
        const std::size_t n = labels.size(), c = logits.shape()[1];
        return mse(softmax(logits, 1), tensor<float>(one_hot<float>(labels, n, c)));
    }
    throw std::invalid_argument("unknown loss '" + loss + "': use ce or mse");
}

checkpoint_paths checkpoint_files(const std::string& model_path) {
    std::string stem = model_path;
    if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".npz") == 0) stem.resize(stem.size() - 4);
    return {model_path, stem + ".optim.npz", stem + ".meta.npz"};
}

void save_arrays(const std::string& path, const state_dict& arrays) {
    std::vector<npz::entry> entries;
    for (const auto& [name, a] : arrays) entries.push_back(npz::make_entry(name, a));
    npz::write(path, entries);
}

state_dict load_arrays(const std::string& path) {
    state_dict out;
    for (const auto& e : npz::read(path)) out[e.name] = npz::to_array<float>(e, path);
    return out;
}

}  // namespace tapegrad::app
