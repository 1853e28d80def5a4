// `tapegrad train` and `tapegrad eval`.

#include "apps/commands.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "apps/model.hpp"
#include "apps/report.hpp"
#include "autograd/blas.hpp"
#include "autograd/float_env.hpp"
#include "autograd/ops.hpp"
#include "data/dataset.hpp"
#include "nn/checkpoint.hpp"
#include "optim/clip.hpp"

namespace fs = std::filesystem;

namespace tapegrad::app {

namespace {

using seconds_clock = std::chrono::steady_clock;

double since(seconds_clock::time_point t0) {
    return std::chrono::duration<double>(seconds_clock::now() - t0).count();
}

// -------------------------------------------------------------- config text
// The checkpoint carries the run's settings as "key=value" lines (stored as a
// uint8 array), so eval and resume rebuild exactly the same model and data.

using config_map = std::map<std::string, std::string>;

std::string join_sizes(const std::vector<std::size_t>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

std::vector<std::size_t> split_sizes(const std::string& s) {
    std::vector<std::size_t> out;
    std::stringstream ss(s);
    std::string part;
    while (std::getline(ss, part, ','))
        if (!part.empty()) out.push_back(std::stoul(part));
    return out;
}

std::string fmt(double v) {
    std::ostringstream os;
    os << std::setprecision(17) << v;
    return os.str();
}

config_map to_config(const train_options& o) {
    return {{"model", o.model},
            {"hidden", std::to_string(o.hidden)},
            {"loss", o.loss},
            {"layers", join_sizes(o.layers)},
            {"activation", o.activation},
            {"optimizer", o.optimizer},
            {"lr", fmt(o.lr)},
            {"momentum", fmt(o.momentum)},
            {"weight_decay", fmt(o.weight_decay)},
            {"schedule", o.schedule},
            {"warmup", std::to_string(o.warmup)},
            {"step_size", std::to_string(o.step_size)},
            {"gamma", fmt(o.gamma)},
            {"clip", fmt(o.clip)},
            {"epochs", std::to_string(o.epochs)},
            {"batch_size", std::to_string(o.batch_size)},
            {"seed", std::to_string(o.seed)},
            {"data", o.data},
            {"val_fraction", fmt(o.val_fraction)},
            {"normalization", o.normalization},
            {"name", o.name}};
}

const std::string& need(const config_map& c, const std::string& key, const std::string& file) {
    auto it = c.find(key);
    if (it == c.end()) throw std::runtime_error(file + ": checkpoint has no setting '" + key + "'");
    return it->second;
}

/// The run settings stored in a checkpoint (everything but where and how long to run).
void from_config(const config_map& c, train_options& o, const std::string& file) {
    o.model = need(c, "model", file);
    o.hidden = std::stoul(need(c, "hidden", file));
    o.loss = need(c, "loss", file);
    o.layers = split_sizes(need(c, "layers", file));
    o.activation = need(c, "activation", file);
    o.optimizer = need(c, "optimizer", file);
    o.lr = std::stod(need(c, "lr", file));
    o.momentum = std::stod(need(c, "momentum", file));
    o.weight_decay = std::stod(need(c, "weight_decay", file));
    o.schedule = need(c, "schedule", file);
    o.warmup = std::stoul(need(c, "warmup", file));
    o.step_size = std::stoul(need(c, "step_size", file));
    o.gamma = std::stod(need(c, "gamma", file));
    o.clip = std::stod(need(c, "clip", file));
    o.batch_size = std::stoul(need(c, "batch_size", file));
    o.seed = std::stoull(need(c, "seed", file));
    o.data = need(c, "data", file);
    o.val_fraction = std::stod(need(c, "val_fraction", file));
    o.normalization = need(c, "normalization", file);
    o.name = need(c, "name", file);
}

xt::xarray<float> text_to_array(const std::string& s) {
    xt::xarray<float> a = xt::xarray<float>::from_shape({s.size()});
    for (std::size_t i = 0; i < s.size(); ++i) a(i) = static_cast<float>(static_cast<unsigned char>(s[i]));
    return a;
}

std::string array_to_text(const xt::xarray<float>& a) {
    std::string s;
    for (float v : a) s += static_cast<char>(static_cast<unsigned char>(v));
    return s;
}

std::string config_text(const config_map& c) {
    std::string s;
    for (const auto& [k, v] : c) s += k + "=" + v + "\n";
    return s;
}

config_map parse_config_text(const std::string& s) {
    config_map c;
    std::stringstream ss(s);
    std::string line;
    while (std::getline(ss, line)) {
        const auto eq = line.find('=');
        if (eq != std::string::npos) c[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return c;
}

// ------------------------------------------------------------------ data

/// Train, validation and test sets, normalised with training statistics.
struct run_data {
    data::dataset train, val, test;
    data::normalizer norm;
    double load_seconds = 0;        ///< everything: read, decompress, split
    double train_load_seconds = 0;  ///< reading the training file(s) alone
};

/// The digits' test part is fixed (not tied to --seed) so every run is scored
/// on the same held-out images.
constexpr std::uint64_t digits_test_seed = 20260101;
constexpr double digits_test_fraction = 0.2;

run_data load_run_data(const train_options& o, bool need_train) {
    run_data d;
    const auto t0 = seconds_clock::now();
    data::dataset train_all;
    if (o.data == "digits") {
        data::split s = data::split_train_validation(data::load_digits_csv(data::digits_path()), digits_test_fraction,
                                                     digits_test_seed);
        train_all = std::move(s.train);
        d.test = std::move(s.validation);
        d.test.name = "digits/test";
    } else if (o.data == "fashion") {
        const std::string dir = o.data_dir.empty() ? data::default_fashion_dir() : o.data_dir;
        if (need_train) {
            const auto t1 = seconds_clock::now();
            train_all = data::load_fashion_mnist(dir, true);
            d.train_load_seconds = since(t1);
        }
        d.test = data::load_fashion_mnist(dir, false);
    } else {
        throw std::invalid_argument("unknown data set '" + o.data + "': use fashion or digits");
    }
    if (need_train) {
        data::split s = data::split_train_validation(train_all, o.val_fraction, o.seed);
        d.train = std::move(s.train);
        d.val = std::move(s.validation);
        d.train.name = o.data + "/train";
        d.val.name = o.data + "/validation";
    }
    d.load_seconds = since(t0);
    return d;
}

// ------------------------------------------------------------ evaluation

struct evaluation {
    double loss = 0;
    double accuracy = 0;
    confusion_matrix confusion;
};

/// Loss, accuracy and confusion matrix over a whole data set, recording nothing.
evaluation evaluate(nn::module<float>& model, const std::string& loss_name, const data::dataset& d) {
    no_grad guard;
    const bool was_training = model.is_training();
    model.eval();
    evaluation e;
    e.confusion = confusion_matrix(d.num_classes());
    data::loader chunks(d, 1000, 0, /*shuffle=*/false);
    data::batch b;
    double loss_sum = 0;
    while (chunks.next(b)) {
        const tensor<float> logits = model.forward(tensor<float>(b.x));
        loss_sum += static_cast<double>(classification_loss(loss_name, logits, b.y).item()) *
                    static_cast<double>(b.y.size());
        const auto& z = logits.value();
        const std::size_t c = z.shape()[1];
        for (std::size_t i = 0; i < b.y.size(); ++i) {
            const float* row = z.data() + i * c;
            std::size_t best = 0;
            for (std::size_t j = 1; j < c; ++j)
                if (row[j] > row[best]) best = j;
            e.confusion.add(b.y[i], best);
        }
    }
    model.train(was_training);
    e.loss = loss_sum / static_cast<double>(d.size());
    e.accuracy = e.confusion.accuracy();
    return e;
}

model_spec spec_of(const train_options& o, std::size_t inputs, std::size_t classes) {
    model_spec s;
    s.kind = o.model;
    s.inputs = inputs;
    s.classes = classes;
    s.hidden = o.hidden;
    s.layers = o.layers;
    s.activation = o.activation;
    s.loss = o.loss;
    return s;
}

/// Everything needed to continue a run: weights (nn::save_npz), optimizer
/// state (optimizer::save_state), and the trainer's metadata: settings,
/// normalisation statistics and the number of epochs done. The metadata is
/// written last, so its epoch count never runs ahead of the other two files.
void write_checkpoint(const std::string& path, nn::module<float>& model, optim::optimizer<float>& opt,
                      const train_options& o, const data::normalizer& norm, std::size_t epochs_done) {
    const checkpoint_paths files = checkpoint_files(path);
    nn::save_npz(model, files.model);
    opt.save_state(files.optimizer);
    state_dict s;
    config_map c = to_config(o);
    c["epochs_done"] = std::to_string(epochs_done);
    s["config"] = text_to_array(config_text(c));
    s["norm_mean"] = xt::xarray<float>::from_shape({norm.mean().size()});
    s["norm_scale"] = xt::xarray<float>::from_shape({norm.scale().size()});
    std::copy(norm.mean().begin(), norm.mean().end(), s["norm_mean"].begin());
    std::copy(norm.scale().begin(), norm.scale().end(), s["norm_scale"].begin());
    save_arrays(files.meta, s);
}

/// The trainer's metadata of a checkpoint (the weights and optimizer state are
/// loaded into the rebuilt model and optimizer).
struct loaded_checkpoint {
    checkpoint_paths files;
    train_options options;
    std::size_t epochs_done = 0;
    data::normalizer norm;
};

loaded_checkpoint read_checkpoint(const std::string& path) {
    loaded_checkpoint c;
    c.files = checkpoint_files(path);
    if (!fs::exists(c.files.meta)) {
        throw std::runtime_error(path + ": no " + c.files.meta +
                                 " beside it: a tapegrad training checkpoint is checkpoint.npz (weights), "
                                 "checkpoint.optim.npz and checkpoint.meta.npz, as `tapegrad train` writes them");
    }
    state_dict s = load_arrays(c.files.meta);
    auto take = [&](const std::string& key) -> xt::xarray<float>& {
        auto it = s.find(key);
        if (it == s.end()) throw std::runtime_error(c.files.meta + ": no array '" + key + "'");
        return it->second;
    };
    const config_map cfg = parse_config_text(array_to_text(take("config")));
    from_config(cfg, c.options, c.files.meta);
    c.epochs_done = std::stoul(need(cfg, "epochs_done", c.files.meta));
    const auto& m = take("norm_mean");
    const auto& sc = take("norm_scale");
    c.norm = data::normalizer(data::parse_normalization(c.options.normalization), std::vector<float>(m.begin(), m.end()),
                              std::vector<float>(sc.begin(), sc.end()));
    return c;
}

std::string fmt_seconds(double s) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(3) << s << " s";
    return os.str();
}

std::string default_name(const train_options& o) { return o.model + "-" + o.data; }

}  // namespace

// -------------------------------------------------------------- schedule

// Learning rate of global step `step` (0-based) in epoch `epoch`: a closed form
// of (step, epoch), so a resumed run continues the exact same curve.
double learning_rate(const train_options& o, std::size_t step, std::size_t epoch, std::size_t total_steps) {
    double f = 1;
    if (o.schedule == "step") {
        f = std::pow(o.gamma, static_cast<double>(epoch / o.step_size));
    } else if (o.schedule == "exp") {
        f = std::pow(o.gamma, static_cast<double>(epoch));
    } else if (o.schedule == "cosine") {
        // Cosine annealing to 0 over the whole run, per step (after warm-up).
        const double t = static_cast<double>(step > o.warmup ? step - o.warmup : 0);
        const double span = static_cast<double>(total_steps > o.warmup ? total_steps - o.warmup : 1);
        f = 0.5 * (1 + std::cos(M_PI * std::min(1.0, t / span)));
    } else if (o.schedule != "none") {
        throw std::invalid_argument("unknown schedule '" + o.schedule + "': use none, step, cosine or exp");
    }
    if (step < o.warmup) f *= static_cast<double>(step + 1) / static_cast<double>(o.warmup);
    return o.lr * f;
}

// ----------------------------------------------------------------- train

int run_train(const train_options& cli) {
    flush_denormals_scope ftz;
    blas::set_num_threads(cli.threads);
    const auto wall0 = seconds_clock::now();

    train_options o = cli;
    loaded_checkpoint resumed;
    if (!cli.resume.empty()) {
        resumed = read_checkpoint(cli.resume);
        o = resumed.options;  // the run's own settings win: a resume must continue the same run
        o.epochs = cli.epochs;
        o.threads = cli.threads;
        o.out = cli.out.empty() ? fs::path(cli.resume).parent_path().string() : cli.out;
        o.stop_after = cli.stop_after;
        o.progress = cli.progress;
        o.quiet = cli.quiet;
        o.data_dir = cli.data_dir;
        if (o.out.empty()) o.out = ".";
    }
    // Digits has 1318 training images: 128-image batches give too few steps in 10 epochs.
    if (o.batch_size == 0) o.batch_size = o.data == "digits" ? 32 : 128;
    if (o.name.empty()) o.name = default_name(o);
    if (o.out.empty()) o.out = (fs::path("runs") / o.name).string();
    fs::create_directories(o.out);

    run_data d = load_run_data(o, true);
    if (!cli.resume.empty()) {
        d.norm = resumed.norm;
    } else {
        d.norm = data::normalizer(data::parse_normalization(o.normalization));
        d.norm.fit(d.train);
    }
    d.norm.apply(d.train);
    d.norm.apply(d.val);
    d.norm.apply(d.test);

    const model_spec spec = spec_of(o, d.train.features, d.train.num_classes());
    std::shared_ptr<nn::module<float>> model = make_classifier(spec, o.seed);
    optimizer_spec os{o.optimizer, o.lr, o.momentum, o.weight_decay};
    std::unique_ptr<optim::optimizer<float>> opt = make_optimizer(os, model->parameters());
    model->train();
    std::size_t start_epoch = 0;
    std::vector<epoch_record> history;
    const std::string csv_path = (fs::path(o.out) / "metrics.csv").string();
    if (!cli.resume.empty()) {
        nn::load_npz(*model, resumed.files.model);
        opt->load_state(resumed.files.optimizer);
        start_epoch = resumed.epochs_done;
        if (fs::exists(csv_path)) {
            for (const auto& r : read_metrics_csv(csv_path))
                if (r.epoch <= start_epoch) history.push_back(r);
        }
    }

    const bool live = o.progress == "bar" || (o.progress == "auto" && stdout_is_terminal());
    std::cout << "tapegrad train: " << spec.describe() << ", " << o.optimizer << " lr " << o.lr << " (" << o.schedule
              << (o.warmup ? ", warm-up " + std::to_string(o.warmup) + " steps" : std::string()) << "), batch "
              << o.batch_size << ", seed " << o.seed << ", " << blas::num_threads() << " BLAS thread(s)\n"
              << "data: " << d.train.name << " " << d.train.size() << ", " << d.val.name << " " << d.val.size()
              << ", " << d.test.name << " " << d.test.size() << " (" << d.train.features << " features, "
              << data::to_string(d.norm.kind()) << " normalisation), loaded in " << std::fixed << std::setprecision(3)
              << d.load_seconds << " s"
              << (d.train_load_seconds > 0 ? " (training images and labels: " + fmt_seconds(d.train_load_seconds) + ")"
                                           : std::string())
              << std::defaultfloat << "\n"
              << "output: " << o.out << "\n";
    if (!o.quiet) std::cout << model->summary();
    if (start_epoch > 0) std::cout << "resuming from " << cli.resume << " after epoch " << start_epoch << "\n";
    if (start_epoch >= o.epochs) std::cout << "nothing to train: the checkpoint already has " << start_epoch << " epochs\n";

    data::loader batches(d.train, o.batch_size, o.seed);
    const std::size_t steps_per_epoch = batches.batches_per_epoch();
    const std::size_t total_steps = steps_per_epoch * o.epochs;
    const std::size_t last_epoch = o.stop_after ? std::min(o.stop_after, o.epochs) : o.epochs;
    progress_bar bar(std::cout, live);
    const std::vector<tensor<float>> params = model->parameters();
    const std::string ckpt_path = (fs::path(o.out) / "checkpoint.npz").string();
    double train_seconds = 0;
    std::size_t trained_samples = 0;
    data::batch b;
    for (std::size_t epoch = start_epoch; epoch < last_epoch; ++epoch) {
        const auto t0 = seconds_clock::now();
        batches.start_epoch(epoch);
        bar.start(epoch + 1, o.epochs, steps_per_epoch);
        double loss_sum = 0;
        std::size_t step_in_epoch = 0;
        double lr = o.lr;
        while (batches.next(b)) {
            const std::size_t step = epoch * steps_per_epoch + step_in_epoch;
            lr = learning_rate(o, step, epoch, total_steps);
            opt->set_lr(lr);
            const tensor<float> x(b.x);
            const tensor<float> loss = classification_loss(o.loss, model->forward(x), b.y);
            const double value = loss.item();
            if (!std::isfinite(value)) {
                bar.finish();
                throw std::runtime_error("the training loss became " + std::to_string(value) + " at epoch " +
                                         std::to_string(epoch + 1) + ", step " + std::to_string(step_in_epoch + 1) +
                                         ": lower --lr or use --clip");
            }
            loss.backward();
            if (o.clip > 0) optim::clip_grad_norm(params, static_cast<float>(o.clip));
            opt->step();
            opt->zero_grad();
            reset_tape<float>();
            loss_sum += value;
            ++step_in_epoch;
            bar.update(step_in_epoch, loss_sum / static_cast<double>(step_in_epoch));
        }
        const double epoch_train_seconds = since(t0);
        train_seconds += epoch_train_seconds;
        trained_samples += d.train.size();
        const evaluation v = evaluate(*model, o.loss, d.val);
        bar.finish();
        epoch_record r{epoch + 1, loss_sum / static_cast<double>(step_in_epoch), v.loss, v.accuracy, since(t0), lr};
        history.push_back(r);
        if (!o.quiet) {
            std::cout << "epoch " << std::setw(3) << r.epoch << "/" << o.epochs << "  train_loss " << std::fixed
                      << std::setprecision(4) << r.train_loss << "  val_loss " << r.val_loss << "  val_acc "
                      << r.val_acc << "  lr " << std::scientific << std::setprecision(2) << lr << std::fixed << "  "
                      << std::setprecision(1) << r.seconds << " s  " << std::setprecision(0)
                      << static_cast<double>(d.train.size()) / epoch_train_seconds << " samples/s"
                      << std::defaultfloat << std::endl;
        }
        write_metrics_csv(csv_path, history);
        write_checkpoint(ckpt_path, *model, *opt, o, d.norm, epoch + 1);
    }

    // Curves: SVG always (no dependency), PNG too when gnuplot is installed.
    const std::string title = o.name + ": " + spec.describe() + ", " + o.optimizer;
    const std::string svg = (fs::path(o.out) / "curves.svg").string();
    const std::string png = (fs::path(o.out) / "curves.png").string();
    if (!history.empty()) {
        write_svg_plot(svg, history, title);
        const bool have_png = write_png_plot_gnuplot(png, csv_path, title);
        std::cout << "metrics: " << csv_path << "\ncurves: " << svg << (have_png ? " and " + png : std::string())
                  << "\ncheckpoint: " << ckpt_path << "\n";
    }
    if (trained_samples > 0) {
        std::cout << "training time " << std::fixed << std::setprecision(2) << train_seconds << " s for "
                  << last_epoch - start_epoch << " epoch(s), "
                  << std::setprecision(0) << static_cast<double>(trained_samples) / train_seconds
                  << " samples/s (wall time " << std::setprecision(2) << since(wall0) << " s)" << std::defaultfloat
                  << "\n";
    }
    if (last_epoch < o.epochs) {
        std::cout << "stopped after epoch " << last_epoch << " of " << o.epochs << "; continue with --resume "
                  << ckpt_path << "\n";
        return 0;
    }
    const evaluation t = evaluate(*model, o.loss, d.test);
    std::cout << "\n" << t.confusion.format(d.test.class_names);
    t.confusion.write_csv((fs::path(o.out) / "confusion.csv").string(), d.test.class_names);
    std::cout << "test_loss " << std::fixed << std::setprecision(4) << t.loss << "\n"
              << "test_accuracy " << t.accuracy << std::defaultfloat << "  (" << d.test.name << ", " << d.test.size()
              << " examples)\n";
    return 0;
}

// ------------------------------------------------------------------ eval

int run_eval(const eval_options& e) {
    flush_denormals_scope ftz;
    blas::set_num_threads(e.threads);
    loaded_checkpoint c = read_checkpoint(e.checkpoint);
    c.options.data_dir = e.data_dir;
    run_data d = load_run_data(c.options, false);
    c.norm.apply(d.test);
    const model_spec spec = spec_of(c.options, d.test.features, d.test.num_classes());
    std::shared_ptr<nn::module<float>> model = make_classifier(spec, c.options.seed);
    nn::load_npz(*model, c.files.model);
    const auto t0 = seconds_clock::now();
    const evaluation t = evaluate(*model, c.options.loss, d.test);
    std::cout << "tapegrad eval: " << e.checkpoint << ": " << spec.describe() << ", trained " << c.epochs_done
              << " epoch(s) on " << c.options.data << "\n\n"
              << t.confusion.format(d.test.class_names) << "test_loss " << std::fixed << std::setprecision(4)
              << t.loss << "\ntest_accuracy " << t.accuracy << "  (" << d.test.name << ", " << d.test.size()
              << " examples, " << std::setprecision(3) << since(t0) << " s)\n"
              << std::defaultfloat;
    return 0;
}

}  // namespace tapegrad::app

namespace tapegrad::app {

void check_checkpoint(const std::string& path) { (void)read_checkpoint(path); }

}  // namespace tapegrad::app
