// `tapegrad train` and `tapegrad eval`.

#include "apps/commands.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "apps/cnn_arch.hpp"
#include "apps/durable_io.hpp"
#include "apps/model.hpp"
#include "apps/options.hpp"
#include "apps/report.hpp"
#include "apps/train_checkpoint.hpp"
#include "autograd/compile.hpp"
#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/float_env.hpp"
#include "autograd/one_hot.hpp"
#include "autograd/ops.hpp"
#include "data/dataset.hpp"
#include "formulas/hand_backward.hpp"
#include "nn/checkpoint.hpp"
#include "optim/clip.hpp"
#include "optim/lr_schedule.hpp"

#include <unistd.h>
#ifdef TAPEGRAD_WITH_MPI
#include "distributed/train_session.hpp"
#endif

namespace fs = std::filesystem;

namespace tapegrad::app {

namespace {

using seconds_clock = std::chrono::steady_clock;

double since(seconds_clock::time_point t0) {
    return std::chrono::duration<double>(seconds_clock::now() - t0).count();
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
        data::split s = data::split_train_validation(data::load_digits(), digits_test_fraction,
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
        // Checked before any training: a mismatch would otherwise surface only at the final test.
        if (train_all.features != d.test.features || train_all.num_classes() != d.test.num_classes()) {
            throw std::runtime_error("data: the test set " + d.test.name + " has " + std::to_string(d.test.features) +
                                     " values per example and " + std::to_string(d.test.num_classes()) +
                                     " classes, the training set " + std::to_string(train_all.features) + " and " +
                                     std::to_string(train_all.num_classes()) +
                                     ": use test images of the same size and classes");
        }
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
    s.arch = o.arch;
    s.loss = o.loss;
    return s;
}

std::string fmt_seconds(double s) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(3) << s << " s";
    return os.str();
}

std::string default_name(const train_options& o) { return o.model + "-" + o.data; }

double l2_norm(const xt::xarray<float>& g) {
    double s = 0;
    for (std::size_t k = 0, n = g.size(); k < n; ++k) s += double(g.data()[k]) * double(g.data()[k]);
    return std::sqrt(s);
}

std::string csv_header(const std::vector<std::string>& extra) {
    std::string h = "epoch,train_loss,val_loss,val_acc,seconds,lr";
    for (const auto& c : extra) h += "," + c;
    return h;
}

/// The gradient-norm columns of the first `rows` rows of a resumed run's metrics;
/// refuses a CSV whose extra columns are not `names` (--log-grad-norms changed, or
/// another model's parameters), since one file cannot hold both.
std::vector<std::vector<double>> resumed_grad_norms(const std::string& csv, const std::vector<std::string>& names,
                                                    std::size_t rows) {
    metric_columns old;
    read_metrics_csv(csv, &old);
    if (old.names != names)
        throw std::runtime_error(
            csv + ": its columns are '" + csv_header(old.names) + "' but this run writes '" + csv_header(names) +
            "' (" + (names.empty() ? "--log-grad-norms is off now, it was on" : "--log-grad-norms is on now") +
            (old.names.empty() || names.empty() ? std::string()
                                                : std::string(", for parameters of another name")) +
            "); resume with the --log-grad-norms setting of the run that wrote it, or move " + csv +
            " away to resume without the earlier epochs' metrics");
    old.rows.resize(rows);
    return old.rows;
}

// ------------------------------------------------------------- interrupts
// The first SIGINT or SIGTERM asks the training loop to stop after the current
// step and commit a checkpoint; a second ends the process at once. That is
// safe at any moment: every file is committed by a rename, so the last
// committed checkpoint and metrics stay intact; a checkpoint's temporaries
// are removed on the way out.

volatile std::sig_atomic_t interrupt_requests = 0;

extern "C" void on_interrupt(int) {
    if (interrupt_requests) {
        remove_scratch_files();  // a checkpoint being written: its temporaries go too
        ::_exit(130);
    }
    interrupt_requests = 1;
    static const char msg[] =
        "\ntapegrad: interrupted: finishing this step and saving a checkpoint (interrupt again to quit at once)\n";
    const ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
}

/// Installs the handler for one training run and restores the previous ones.
class interrupt_scope {
  public:
    interrupt_scope() {
        interrupt_requests = 0;
        struct sigaction sa {};
        sa.sa_handler = on_interrupt;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int_);
        sigaction(SIGTERM, &sa, &old_term_);
    }
    ~interrupt_scope() {
        sigaction(SIGINT, &old_int_, nullptr);
        sigaction(SIGTERM, &old_term_, nullptr);
        interrupt_requests = 0;
    }
    interrupt_scope(const interrupt_scope&) = delete;
    interrupt_scope& operator=(const interrupt_scope&) = delete;
    bool requested() const { return interrupt_requests != 0; }

  private:
    struct sigaction old_int_ {}, old_term_ {};
};

std::string resume_command(const std::string& ckpt, const train_options& o) {
    std::string cmd = "tapegrad train --resume " + ckpt + " --epochs " + std::to_string(o.epochs);
    if (!o.data_dir.empty()) cmd += " --data-dir " + o.data_dir;
    return cmd;
}

}  // namespace

// -------------------------------------------------------------- schedule

// Learning rate of global step `step` (0-based) in epoch `epoch`: closed forms
// (optim/lr_schedule.hpp) of the batch count (warm-up, cosine) and the epoch
// (step, exp), so a resumed run continues the exact same curve. The schedules
// give factors (base 1) and the rate is lr times them, as it always was.
double learning_rate(const train_options& o, std::size_t step, std::size_t epoch, std::size_t total_steps) {
    if (o.schedule == "cosine") {  // per batch, after the warm-up, to 0 at the end of the run
        const std::size_t span = total_steps > o.warmup ? total_steps - o.warmup : 1;
        return o.lr * optim::warmup(std::make_shared<optim::cosine_decay>(1.0, span), o.warmup).lr_at(step);
    }
    double f = 1;  // per epoch
    if (o.schedule == "step") {
        if (o.step_size == 0) throw std::invalid_argument("learning_rate: --step-size must be at least 1, got 0");
        f = optim::step_decay(1.0, o.gamma, o.step_size).lr_at(epoch);
    } else if (o.schedule == "exp") {
        f = optim::exponential_decay(1.0, o.gamma).lr_at(epoch);
    } else if (o.schedule != "none") {
        throw std::invalid_argument("unknown schedule '" + o.schedule + "': use none, step, cosine or exp");
    }
    return o.lr * (f * optim::linear_warmup_factor(step, o.warmup));
}

// ----------------------------------------------------------------- train

namespace {
int train_loop(const train_options& cli);
}

int run_train(const train_options& cli) {
#ifdef TAPEGRAD_WITH_MPI
    if (cli.distributed) return distributed::run_or_abort([&] { return train_loop(cli); });
#else
    if (cli.distributed)
        throw std::invalid_argument("--distributed: this tapegrad was built without MPI: install libopenmpi-dev "
                                    "(bash scripts/setup.sh) and rebuild with -DTAPEGRAD_WITH_MPI=ON");
#endif
    return train_loop(cli);
}

namespace {
int train_loop(const train_options& cli) {
#ifdef TAPEGRAD_WITH_MPI
    // Data parallel: joins the job first, so ranks other than 0 print nothing.
    std::unique_ptr<distributed::train_session> dp;
    if (cli.distributed) dp = std::make_unique<distributed::train_session>();
    const bool writer = !dp || dp->is_root();  // only rank 0 writes metrics, plots and checkpoints
#else
    const bool writer = true;
#endif
    flush_denormals_scope ftz;
    const auto wall0 = seconds_clock::now();

    train_options o = cli;
    loaded_checkpoint resumed;
    const bool resuming = !cli.resume.empty();
    if (resuming) {
        resumed = read_checkpoint(cli.resume);
        if (!cli.arch.empty() && cli.arch != resumed.options.arch)
            throw option_error("--arch " + cli.arch + ": the checkpoint " + cli.resume + " is of " +
                               (resumed.options.arch.empty() ? "--model " + resumed.options.model
                                                             : "--arch " + resumed.options.arch) +
                               ", and a resume continues the same network: leave --arch out, or start a new run "
                               "without --resume");
        // A saved setting given again must match: the run's own settings win, and
        // replacing a different --lr (say) without a word would mislead.
        for (const auto& s : train_settings()) {
            if (!s.saved || s.key == "arch" ||
                std::find(cli.given.begin(), cli.given.end(), s.key) == cli.given.end())
                continue;
            const std::string mine = s.get(cli), theirs = s.get(resumed.options);
            if (mine != theirs)
                throw option_error(s.flag + " " + mine + ": the checkpoint " + cli.resume + " was trained with " +
                                   s.flag + " " + theirs + ", and a resume continues that run with its settings: "
                                   "leave " + s.flag + " out, or start a new run without --resume");
        }
        o = resumed.options;
        o.epochs = cli.epochs;
        o.threads = cli.threads;
        o.out = cli.out.empty() ? fs::path(cli.resume).parent_path().string() : cli.out;
        o.stop_after = cli.stop_after;
        o.progress = cli.progress;
        o.backward = cli.backward;  // the same loss, its gradient from the tape or by hand
        o.quiet = cli.quiet;
        o.distributed = cli.distributed;  // a checkpoint resumes with any number of ranks
        o.bucket_kb = cli.bucket_kb;
        o.data_dir = cli.data_dir;
        o.resume = cli.resume;
        o.log_grad_norms = cli.log_grad_norms;  // checked against the metrics' columns below
        if (o.out.empty()) o.out = ".";
    }
    // Digits has 1318 training images: 128-image batches give too few steps in 10 epochs.
    if (o.batch_size == 0) o.batch_size = o.data == "digits" ? 32 : 128;
    if (o.model == "cnn" && o.arch.empty()) o.arch = default_cnn_arch;  // saved as written, so a resume rebuilds it
    validate_train_options(o);  // the command line's rules, for callers that fill train_options directly
    if (o.name.empty()) o.name = default_name(o);
    if (o.out.empty()) o.out = (fs::path("runs") / o.name).string();
    blas::set_num_threads(o.threads);
    interrupt_scope interrupts;
    if (o.backward != "tape") {  // a hand backward is trusted only once it passes its gradcheck
        if (o.model == "cnn")
            throw option_error("--backward " + o.backward + " needs --model seed or mlp: the hand-derived backward is "
                               "the article's output layer; train the cnn with --backward tape");
        if (o.loss != "mse")
            throw option_error("--backward " + o.backward + " needs --loss mse: the hand-derived backward is the "
                               "article's output layer, softmax followed by MSE");
        const auto check = formulas::require_hand_backward(
            o.backward == "article" ? formulas::delta3_form::article : formulas::delta3_form::corrected, 1);
        if (writer) std::cout << check.verdict() << "\n";
    }

    run_data d = load_run_data(o, true);
    if (resuming) {
        if (d.train.features != resumed.state.features || d.train.num_classes() != resumed.state.classes) {
            throw std::runtime_error(cli.resume + ": the checkpoint's model takes " +
                                     std::to_string(resumed.state.features) + " inputs and " +
                                     std::to_string(resumed.state.classes) + " classes, the data " + d.train.name +
                                     " has " + std::to_string(d.train.features) + " and " +
                                     std::to_string(d.train.num_classes()));
        }
        d.norm = resumed.norm;
    } else {
        d.norm = data::normalizer(data::parse_normalization(o.normalization));
        d.norm.fit(d.train);
    }
    d.norm.apply(d.train);
    d.norm.apply(d.val);
    d.norm.apply(d.test);

    const model_spec spec = spec_of(o, d.train.features, d.train.num_classes());
    check_memory(spec, o.batch_size, o.optimizer, o.momentum);
    std::shared_ptr<nn::module<float>> model = make_classifier(spec, o.seed);
    optimizer_spec os{o.optimizer, o.lr, o.momentum, o.weight_decay};
    std::unique_ptr<optim::optimizer<float>> opt = make_optimizer(os, model->parameters());
    model->train();
    fs::create_directories(o.out);  // only once the run is known to be possible
    data::loader batches(d.train, o.batch_size, o.seed);
    const std::size_t steps_per_epoch = batches.batches_per_epoch();

    std::size_t start_epoch = 0;
    train_state position;  // where the run stands: what a checkpoint commits
    position.features = d.train.features;
    position.classes = d.train.num_classes();
    std::vector<epoch_record> history;
    const std::string csv_path = (fs::path(o.out) / "metrics.csv").string();
    // --log-grad-norms: one column per parameter, the mean over an epoch's steps of
    // the L2 norm of its gradient (before --clip), after the all-reduce when distributed.
    const std::vector<tensor<float>> params = model->parameters();
    metric_columns grad_norms;
    if (o.log_grad_norms)
        for (const auto& [name, p] : model->named_parameters()) grad_norms.names.push_back("grad_norm_" + name);
    if (resuming) {
        restore(resumed, *model, *opt, steps_per_epoch);
        position = resumed.state;
        start_epoch = position.epochs_done;
        std::string warning;
        const std::string old_csv = (fs::path(cli.resume).parent_path() / "metrics.csv").string();
        history = metrics_up_to(resumed, old_csv, warning);
        if (!warning.empty()) std::cerr << "tapegrad: warning: " << warning << "\n";
        if (!history.empty()) grad_norms.rows = resumed_grad_norms(old_csv, grad_norms.names, history.size());
    }

#ifdef TAPEGRAD_WITH_MPI
    if (dp) dp->start(*model, d.train, o.batch_size, o.seed, o.bucket_kb * 1024);
#endif

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
#ifdef TAPEGRAD_WITH_MPI
    if (dp) std::cout << "distributed: " << dp->describe() << "\n";
#endif
    if (resuming && (start_epoch > 0 || position.step_in_epoch > 0)) {
        std::cout << "resuming from " << cli.resume << " after epoch " << start_epoch;
        if (position.step_in_epoch > 0)
            std::cout << " and " << position.step_in_epoch << " of the " << steps_per_epoch << " steps of epoch "
                      << start_epoch + 1;
        std::cout << "\n";
    }
    if (start_epoch >= o.epochs) std::cout << "nothing to train: the checkpoint already has " << start_epoch << " epochs\n";

    const std::size_t total_steps = steps_per_epoch * o.epochs;
    const std::size_t last_epoch = o.stop_after ? std::min(o.stop_after, o.epochs) : o.epochs;
    progress_bar bar(std::cout, live);
    const std::string ckpt_path = (fs::path(o.out) / "checkpoint.npz").string();
    // Metrics first, then the checkpoint: after a crash between the two, the
    // metrics are ahead and a resume drops their extra rows.
    auto commit = [&](const train_state& st) {
        if (!writer) return;  // rank 0 alone writes; every rank holds the same state
        write_metrics_csv(csv_path, history, o.log_grad_norms ? &grad_norms : nullptr);
        write_checkpoint(ckpt_path, *model, *opt, o, d.norm, st);
    };
    double train_seconds = 0;
    std::size_t trained_samples = 0;
    data::batch b;
    // This rank's part of each batch when distributed, the whole batch otherwise.
    auto next_batch = [&](data::batch& out) {
#ifdef TAPEGRAD_WITH_MPI
        if (dp) return dp->loader().next(out);
#endif
        return batches.next(out);
    };
    // A signal stops the run after the current step. Distributed, the ranks agree
    // on it (one small all-reduce a step), so they all leave at the same step.
    auto stop_requested = [&] {
        bool stop = interrupts.requested();
#ifdef TAPEGRAD_WITH_MPI
        if (dp) stop = dp->any(stop);
#endif
        return stop;
    };
    // The step as a compiled step (autograd/compile.hpp): traced on the first batch of
    // each shape, replayed after. Bit-identical to the eager step (fused SGD, which
    // rounds differently, is off), so results and resumes do not depend on --eager. The
    // hand-written backward, distributed runs and --log-grad-norms (which reads every
    // step's gradients) run eagerly; so does a CNN with dropout (compile's own fall-back).
    std::unique_ptr<compiled<float, tensor<float>, tensor<float>, std::vector<std::size_t>>> compiled_step;
    tensor<float> target = tensor<float>::zeros({1});  // mse: the batch's one-hot labels (an argument of the step)
    bool distributed_run = false;
#ifdef TAPEGRAD_WITH_MPI
    distributed_run = dp != nullptr;
#endif
    if (!o.eager && o.backward == "tape" && !distributed_run && !o.log_grad_norms) {
        compile_options co;
        co.fuse_sgd = false;
        compiled_step = std::make_unique<compiled<float, tensor<float>, tensor<float>, std::vector<std::size_t>>>(
            [&](const tensor<float>& x, const tensor<float>& t, const std::vector<std::size_t>& y) {
                const tensor<float> logits = model->forward(x);
                const tensor<float> loss = o.loss == "mse" ? mse(softmax(logits, 1), t) : cross_entropy(logits, y);
                loss.backward();
                if (o.clip > 0) replayed<float>([&] { optim::clip_grad_norm(params, static_cast<float>(o.clip)); });
                opt->step();
                opt->zero_grad();
                return loss;
            },
            co);
    }
    for (std::size_t epoch = start_epoch; epoch < last_epoch; ++epoch) {
        const auto t0 = seconds_clock::now();
        batches.start_epoch(epoch);
#ifdef TAPEGRAD_WITH_MPI
        if (dp) dp->loader().start_epoch(epoch);
#endif
        bar.start(epoch + 1, o.epochs, steps_per_epoch);
        double loss_sum = 0;
        std::size_t step_in_epoch = 0;
        if (epoch == start_epoch && position.step_in_epoch > 0) {  // an interrupted epoch continues
            step_in_epoch = position.step_in_epoch;
            loss_sum = position.loss_sum;
#ifdef TAPEGRAD_WITH_MPI
            if (dp) {
                for (std::size_t k = 0; k < step_in_epoch; ++k) dp->loader().next(b);
                dp->resume_epoch_loss(loss_sum);
            }
#endif
            batches.skip(step_in_epoch);
        }
        double lr = o.lr;
        std::vector<double> norm_sums(o.log_grad_norms ? params.size() : 0, 0.0);
        std::size_t norm_steps = 0;  // steps of this epoch run by this process (not those before a resume)
        while (next_batch(b)) {
            const std::size_t step = epoch * steps_per_epoch + step_in_epoch;
            lr = learning_rate(o, step, epoch, total_steps);
            opt->set_lr(lr);
            if (o.model == "cnn") reseed_dropout(*model, o.seed, step);  // masks of (seed, step): resumes are exact
            const tensor<float> x(b.x);
            if (compiled_step) {  // forward, backward, clip and update in one replayed program
                if (o.loss == "mse") {  // the one-hot target, written in place after the first batch of a size
                    const std::size_t c = d.train.num_classes();
                    if (!target.defined() || target.shape() != shape_t{b.y.size(), c})
                        target = tensor<float>(one_hot<float>(b.y, b.y.size(), c));
                    else
                        target.mutable_value() = one_hot<float>(b.y, b.y.size(), c);
                }
                const double value = (*compiled_step)(x, target, b.y).item();
                if (!std::isfinite(value)) {
                    bar.finish();
                    throw std::runtime_error("the training loss became " + std::to_string(value) + " at epoch " +
                                             std::to_string(epoch + 1) + ", step " +
                                             std::to_string(step_in_epoch + 1) + ": lower --lr or use --clip");
                }
                loss_sum += value;
                ++step_in_epoch;
                bar.update(step_in_epoch, loss_sum / static_cast<double>(step_in_epoch));
                fault_point("step", step + 1);
                if (stop_requested() && step_in_epoch < steps_per_epoch) {
                    bar.finish();
                    position.epochs_done = epoch;
                    position.step_in_epoch = step_in_epoch;
                    position.loss_sum = loss_sum;
                    commit(position);
                    std::cout << "interrupted in epoch " << epoch + 1 << " after step " << step_in_epoch << " of "
                              << steps_per_epoch << "; checkpoint: " << ckpt_path << "\ncontinue with: "
                              << resume_command(ckpt_path, o) << std::endl;
                    return 130;
                }
                continue;
            }
            const tensor<float> loss = classification_loss(o.loss, model->forward(x), b.y, o.backward);
            const double value = loss.item();
            if (!std::isfinite(value)) {
                bar.finish();
                throw std::runtime_error("the training loss became " + std::to_string(value) + " at epoch " +
                                         std::to_string(epoch + 1) + ", step " + std::to_string(step_in_epoch + 1) +
                                         ": lower --lr or use --clip");
            }
            loss.backward();
#ifdef TAPEGRAD_WITH_MPI
            if (dp) {
                dp->reduce_gradients();  // the global batch's mean gradient, on every rank
                dp->add_loss(value);
            }
#endif
            if (o.log_grad_norms) {
                for (std::size_t i = 0; i < params.size(); ++i)
                    if (params[i].has_grad()) norm_sums[i] += l2_norm(params[i].grad());
                ++norm_steps;
            }
            if (o.clip > 0) optim::clip_grad_norm(params, static_cast<float>(o.clip));
            opt->step();
            opt->zero_grad();
            reset_tape<float>();
            loss_sum += value;
            ++step_in_epoch;
            bar.update(step_in_epoch, loss_sum / static_cast<double>(step_in_epoch));
            fault_point("step", step + 1);
            if (stop_requested() && step_in_epoch < steps_per_epoch) {
                bar.finish();
                position.epochs_done = epoch;
                position.step_in_epoch = step_in_epoch;
                position.loss_sum = loss_sum;
#ifdef TAPEGRAD_WITH_MPI
                if (dp) position.loss_sum = dp->epoch_loss_sum();  // over all ranks' rows
#endif
                commit(position);
                std::cout << "interrupted in epoch " << epoch + 1 << " after step " << step_in_epoch << " of "
                          << steps_per_epoch << "; checkpoint: " << ckpt_path << "\ncontinue with: "
                          << resume_command(ckpt_path, o) << std::endl;
                return 130;
            }
        }
        const double epoch_train_seconds = since(t0);
        train_seconds += epoch_train_seconds;
        trained_samples += d.train.size();
        const evaluation v = evaluate(*model, o.loss, d.val);
        bar.finish();
        double train_loss = loss_sum / static_cast<double>(step_in_epoch);
#ifdef TAPEGRAD_WITH_MPI
        if (dp) train_loss = dp->epoch_loss(step_in_epoch);  // over all ranks' rows
#endif
        epoch_record r{epoch + 1, train_loss, v.loss, v.accuracy, since(t0), lr};
        history.push_back(r);
        if (o.log_grad_norms) {
            for (double& v : norm_sums) v /= static_cast<double>(std::max<std::size_t>(norm_steps, 1));
            grad_norms.rows.push_back(norm_sums);
        }
        if (!o.quiet) {
            std::cout << "epoch " << std::setw(3) << r.epoch << "/" << o.epochs << "  train_loss " << std::fixed
                      << std::setprecision(4) << r.train_loss << "  val_loss " << r.val_loss << "  val_acc "
                      << r.val_acc << "  lr " << std::scientific << std::setprecision(2) << lr << std::fixed << "  "
                      << std::setprecision(1) << r.seconds << " s  " << std::setprecision(0)
                      << static_cast<double>(d.train.size()) / epoch_train_seconds << " samples/s"
                      << std::defaultfloat << std::endl;
        }
        position.epochs_done = epoch + 1;
        position.step_in_epoch = 0;
        position.loss_sum = 0;
        position.last = r;
        commit(position);
        if (stop_requested()) {
            std::cout << "interrupted after epoch " << epoch + 1 << " of " << o.epochs << "; checkpoint: " << ckpt_path
                      << "\ncontinue with: " << resume_command(ckpt_path, o) << std::endl;
            return 130;
        }
    }

    // Curves: SVG always (no dependency), PNG too when gnuplot is installed.
    const std::string title = o.name + ": " + spec.describe() + ", " + o.optimizer;
    const std::string svg = (fs::path(o.out) / "curves.svg").string();
    const std::string png = (fs::path(o.out) / "curves.png").string();
    if (!history.empty() && writer) {
        write_svg_plot(svg, history, title, o.log_grad_norms ? &grad_norms : nullptr);
        std::string why;
        const bool have_png = write_png_plot_gnuplot(png, csv_path, title, 30, &why);
        if (!have_png && why != "not installed") std::cerr << "tapegrad: warning: no " << png << ": " << why << "\n";
        std::cout << "metrics: " << csv_path << "\ncurves: " << svg << (have_png ? " and " + png : std::string())
                  << "\ncheckpoint: " << ckpt_path << "\n";
    }
    if (trained_samples > 0) {
        std::cout << "training time " << std::fixed << std::setprecision(2) << train_seconds << " s for "
                  << last_epoch - start_epoch << " epoch(s), "
                  << std::setprecision(0) << static_cast<double>(trained_samples) / train_seconds
                  << " samples/s (wall time " << std::setprecision(2) << since(wall0) << " s)" << std::defaultfloat
                  << "\n";
        if (compiled_step) {  // which engine ran the steps, and why not the compiled one
            const compile_stats cs = compiled_step->stats();
            if (cs.eager_reason.empty())
                std::cout << "steps: compiled (" << cs.traces << " trace(s), " << cs.replays << " replays)\n";
            else
                std::cout << "steps: eager, because " << cs.eager_reason << "\n";
        } else {
            std::cout << "steps: eager\n";
        }
#ifdef TAPEGRAD_WITH_MPI
        if (dp) std::cout << "distributed: " << dp->timing() << "\n";
#endif
    }
    if (last_epoch < o.epochs) {
        std::cout << "stopped after epoch " << last_epoch << " of " << o.epochs << "; continue with "
                  << resume_command(ckpt_path, o) << "\n";
        return 0;
    }
    const evaluation t = evaluate(*model, o.loss, d.test);
    std::cout << "\n" << t.confusion.format(d.test.class_names);
    if (writer) t.confusion.write_csv((fs::path(o.out) / "confusion.csv").string(), d.test.class_names);
    std::cout << "test_loss " << std::fixed << std::setprecision(4) << t.loss << "\n"
              << "test_accuracy " << t.accuracy << std::defaultfloat << "  (" << d.test.name << ", " << d.test.size()
              << " examples)\n";
    // Interrupted after the last commit: everything is written, but say so in the status.
    return interrupts.requested() ? 130 : 0;
}

}  // namespace

// ------------------------------------------------------------------ eval

int run_eval(const eval_options& e) {
    flush_denormals_scope ftz;
    blas::set_num_threads(e.threads);
    loaded_checkpoint c = read_checkpoint(e.checkpoint);
    c.options.data_dir = e.data_dir;
    run_data d = load_run_data(c.options, false);
    if (d.test.features != c.state.features || d.test.num_classes() != c.state.classes) {
        throw std::runtime_error(e.checkpoint + ": the checkpoint's model takes " + std::to_string(c.state.features) +
                                 " inputs and " + std::to_string(c.state.classes) + " classes, the test set " +
                                 d.test.name + " has " + std::to_string(d.test.features) + " and " +
                                 std::to_string(d.test.num_classes()));
    }
    c.norm.apply(d.test);
    const model_spec spec = spec_of(c.options, d.test.features, d.test.num_classes());
    std::shared_ptr<nn::module<float>> model = make_classifier(spec, c.options.seed);
    nn::load_state(*model, c.model, c.path);
    const auto t0 = seconds_clock::now();
    const evaluation t = evaluate(*model, c.options.loss, d.test);
    std::cout << "tapegrad eval: " << e.checkpoint << ": " << spec.describe() << ", trained " << c.state.epochs_done
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
void check_checkpoint(const unsigned char* data, std::size_t size, const std::string& name) {
    (void)read_checkpoint(data, size, name);
}

}  // namespace tapegrad::app
