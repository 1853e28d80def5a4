// The trainer's networks and optimizers, built from nn/ and optim/.

#include "apps/model.hpp"

#include "apps/cnn_arch.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <stdexcept>

#include "autograd/one_hot.hpp"
#include "autograd/ops.hpp"
#include "formulas/hand_backward.hpp"
#include "nn/layers.hpp"
#include "io/npz.hpp"

#include <unistd.h>

namespace tapegrad::app {

std::string model_spec::describe() const {
    std::ostringstream os;
    if (kind == "cnn") {
        const std::size_t side = static_cast<std::size_t>(std::llround(std::sqrt(static_cast<double>(inputs))));
        if (side * side == inputs) os << "cnn 1x" << side << "x" << side << " ";
        else os << "cnn " << inputs << " ";
        os << (arch.empty() ? default_cnn_arch : arch) << " -> " << classes << ", " << loss;
    } else if (kind == "seed") {
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
    if (spec.kind == "cnn") return make_cnn(spec.arch.empty() ? default_cnn_arch : spec.arch, spec.inputs,
                                            spec.classes, seed);
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
        throw std::invalid_argument("unknown model '" + spec.kind + "': use seed, mlp or cnn");
    }
    sizes.push_back(spec.classes);
    return nn::mlp<float>(sizes, act, rng);
}

tensor<float> classification_loss(const std::string& loss, const tensor<float>& logits,
                                  const std::vector<std::size_t>& labels, const std::string& backward) {
    if (loss == "ce") return cross_entropy(logits, labels);
    if (loss == "mse") {
        const std::size_t n = labels.size(), c = logits.shape()[1];
        const tensor<float> target(one_hot<float>(labels, n, c));
        if (backward == "hand") return formulas::softmax_mse_hand(logits, target, formulas::delta3_form::corrected);
        if (backward == "article") return formulas::softmax_mse_hand(logits, target, formulas::delta3_form::article);
        return mse(softmax(logits, 1), target);
    }
    throw std::invalid_argument("unknown loss '" + loss + "': use ce or mse");
}

namespace {
/// The cnn's layers with their shapes (throws option_error on a layer that does not fit).
std::vector<planned_layer> cnn_plan(const model_spec& spec) {
    const std::size_t side = square_side(spec.inputs);
    return plan_cnn(parse_arch(spec.arch.empty() ? default_cnn_arch : spec.arch), side, side, spec.classes);
}

std::vector<double> widths(const model_spec& spec) {
    std::vector<double> w{static_cast<double>(spec.inputs)};
    if (spec.kind == "seed") w.push_back(static_cast<double>(spec.hidden));
    else
        for (auto h : spec.layers) w.push_back(static_cast<double>(h));
    w.push_back(static_cast<double>(spec.classes));
    return w;
}

std::string gigabytes(double b) {
    std::ostringstream os;
    os.setf(std::ios::fixed);
    os.precision(b < 1e10 ? 2 : 0);
    os << b / 1e9 << " GB";
    return os.str();
}
}  // namespace

double parameter_count(const model_spec& spec) {
    if (spec.kind == "cnn") {
        double n = 0;
        for (const auto& l : cnn_plan(spec)) n += l.parameters;
        return n;
    }
    const std::vector<double> w = widths(spec);
    double n = 0;
    for (std::size_t i = 0; i + 1 < w.size(); ++i) n += (w[i] + 1) * w[i + 1];
    return n;
}

double estimate_training_bytes(const model_spec& spec, std::size_t batch, const std::string& optimizer,
                               double momentum) {
    const double state = optimizer == "adam" || optimizer == "adamw" ? 2 : optimizer == "sgd" ? (momentum > 0 ? 1 : 0)
                                                                                              : 1;
    const double rows = std::max(4.0 * static_cast<double>(batch), 1000.0);  // values and gradients of a batch
    if (spec.kind == "cnn") {  // every layer's output, its gradient, and a conv's im2col columns (and their gradient)
        double units = static_cast<double>(spec.inputs), params = 0;
        for (const auto& l : cnn_plan(spec)) {
            double out = 1;
            for (auto d : l.output) out *= static_cast<double>(d);
            units += out + 2 * l.workspace;
            params += l.parameters;
        }
        return 4.0 * (params * (2 + state) + rows * units);
    }
    const std::vector<double> w = widths(spec);
    double units = 0;  // every layer's outputs (and the activations between them)
    for (std::size_t i = 1; i < w.size(); ++i) units += 2 * w[i];
    return 4.0 * (parameter_count(spec) * (2 + state) + rows * (units + w[0]));
}

void check_memory(const model_spec& spec, std::size_t batch, const std::string& optimizer, double momentum,
                  double available) {
    if (available <= 0) {
        const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
        if (pages <= 0 || page <= 0) return;
        available = static_cast<double>(pages) * static_cast<double>(page);
    }
    const double need = estimate_training_bytes(spec, batch, optimizer, momentum);
    if (need <= available) return;
    std::ostringstream os;
    os.precision(3);
    os << "the model " << spec.describe() << " has " << parameter_count(spec) << " parameters and needs about "
       << gigabytes(need) << " to train (weights, gradients, " << optimizer
       << " state and a batch's activations), more than the " << gigabytes(available)
       << " of memory here: "
       << (spec.kind == "cnn" ? "use a smaller --arch (fewer filters or fc units, or more pooling) or --batch-size"
                              : "use smaller --layers or --hidden");
    throw std::runtime_error(os.str());
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
