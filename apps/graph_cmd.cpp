// `tapegrad graph`: a picture of the tape for the trainer's models. One step of the
// trainer on a small batch of the embedded digits (forward, loss, backward), then
// to_dot with the parameters' names, and Graphviz's dot for the SVG when installed.

#include <filesystem>
#include <iostream>
#include <numeric>
#include <stdexcept>

#include <xtensor/xadapt.hpp>

#include "apps/commands.hpp"
#include "apps/durable_io.hpp"
#include "apps/model.hpp"
#include "apps/report.hpp"
#include "autograd/dot.hpp"
#include "data/dataset.hpp"
#include "nn/dot.hpp"

namespace fs = std::filesystem;

namespace tapegrad::app {

int run_graph(const graph_options& o) {
    if (o.model != "seed" && o.model != "mlp")
        throw std::invalid_argument("--model must be one of seed, mlp, got '" + o.model + "'");
    if (o.out.empty()) throw std::invalid_argument("--out must name a file, got ''");
    const data::dataset digits = data::load_digits();
    if (o.batch_size < 1 || o.batch_size > digits.size())
        throw std::invalid_argument("--batch-size must be from 1 to " + std::to_string(digits.size()) + ", got " +
                                    std::to_string(o.batch_size));
    std::vector<std::size_t> rows(o.batch_size);
    std::iota(rows.begin(), rows.end(), std::size_t(0));
    const data::dataset batch = digits.subset(rows);

    model_spec spec;
    spec.kind = o.model;
    spec.inputs = batch.features;
    spec.classes = digits.num_classes();
    spec.hidden = 16;
    spec.layers = {32, 16};
    spec.activation = "relu";
    spec.loss = o.model == "seed" ? "mse" : "ce";  // the article trains its network on MSE
    std::shared_ptr<nn::module<float>> model = make_classifier(spec, o.seed);

    // Inputs scaled to [0, 1] (the digits are 0..16), as the trainer's --normalize scale.
    xt::xarray<float> x = xt::adapt(batch.x, std::vector<std::size_t>{batch.size(), batch.features});
    x /= 16.0f;
    reset_tape<float>();
    const tensor<float> loss = classification_loss(spec.loss, model->forward(tensor<float>(x)), batch.y);
    loss.backward();

    dot_options<float> names = nn::dot_names(*model);
    names.title = "tapegrad " + spec.describe();
    const std::string dot = to_dot(loss, names);
    const double loss_value = loss.item();
    reset_tape<float>();

    const fs::path out(o.out);
    if (out.has_parent_path()) fs::create_directories(out.parent_path());
    write_file_checked(o.out, dot);
    std::cout << "graph: " << spec.describe() << " on " << batch.size() << " digits, loss " << loss_value
              << "\nwrote " << o.out << "\n";

    fs::path svg = out;
    svg.replace_extension(".svg");
    if (svg == out) svg += ".svg";
    const std::string problem = run_with_time_limit({"dot", "-Tsvg", "-o", svg.string(), o.out}, o.timeout);
    if (problem.empty()) {
        std::cout << "wrote " << svg.string() << "\n";
    } else if (problem == "not installed") {
        std::cout << "note: Graphviz's dot is not on PATH, so no " << svg.string()
                  << " (apt-get install graphviz, or render it elsewhere: dot -Tsvg " << o.out << ")\n";
    } else {
        std::error_code ec;
        fs::remove(svg, ec);  // a half-written picture would mislead
        std::cout << "note: no " << svg.string() << ": dot " << problem << "\n";
    }
    return 0;
}

}  // namespace tapegrad::app
