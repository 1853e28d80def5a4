// tapegrad: train, evaluate, gradcheck and benchmark from the command line.
// Argument parsing only; each subcommand lives in apps/*_cmd.cpp / trainer.cpp.

#include <exception>
#include <iostream>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/commands.hpp"

namespace {

/// "256,128" -> {256, 128}; CLI11 validates each piece as a positive integer.
std::vector<std::size_t> parse_sizes(const std::string& s) {
    std::vector<std::size_t> out;
    std::stringstream ss(s);
    std::string part;
    while (std::getline(ss, part, ',')) {
        std::size_t used = 0;
        unsigned long v = 0;
        try {
            v = std::stoul(part, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != part.size() || v == 0) {
            throw CLI::ValidationError("--layers", "'" + s + "' is not a comma-separated list of positive sizes");
        }
        out.push_back(v);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace tapegrad::app;
    CLI::App app{"tapegrad: a tape-based autodiff engine on xtensor; train and check small networks"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("tapegrad 0.1.0"));

    // ------------------------------------------------------------ train
    train_options t;
    std::string layers = "256,128";
    auto* train = app.add_subcommand("train", "train a model; writes metrics.csv, curves.svg/png, checkpoint.npz");
    train->add_option("--model", t.model, "seed: softmax(W2 tanh(W1 x + b1) + b2) (the article's network); mlp: "
                                          "any layer sizes")
        ->check(CLI::IsMember({"seed", "mlp"}))
        ->capture_default_str();
    train->add_option("--hidden", t.hidden, "seed: hidden units")->check(CLI::PositiveNumber)->capture_default_str();
    train->add_option("--loss", t.loss, "ce: cross-entropy on the logits; mse: mean squared error of the softmax "
                                        "output against one-hot targets (the article)")
        ->check(CLI::IsMember({"ce", "mse"}))
        ->capture_default_str();
    train->add_option("--layers", layers, "mlp: hidden layer sizes, comma-separated")->capture_default_str();
    train->add_option("--activation", t.activation, "mlp: hidden activation")
        ->check(CLI::IsMember({"relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus"}))
        ->capture_default_str();
    train->add_option("--optimizer", t.optimizer, "optimizer")
        ->check(CLI::IsMember({"sgd", "adam", "adamw", "rmsprop", "adagrad"}))
        ->capture_default_str();
    train->add_option("--lr", t.lr, "base learning rate")->check(CLI::PositiveNumber)->capture_default_str();
    train->add_option("--momentum", t.momentum, "sgd momentum")->check(CLI::Range(0.0, 1.0))->capture_default_str();
    train->add_option("--weight-decay", t.weight_decay, "weight decay (decoupled for adamw)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    train->add_option("--schedule", t.schedule, "learning-rate schedule, stepped once per epoch")
        ->check(CLI::IsMember({"none", "step", "cosine", "exp"}))
        ->capture_default_str();
    train->add_option("--warmup", t.warmup, "linear warm-up over this many steps (batches)")->capture_default_str();
    train->add_option("--step-size", t.step_size, "step schedule: epochs between decays")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    train->add_option("--gamma", t.gamma, "step/exp schedule: decay factor")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    train->add_option("--clip", t.clip, "clip the global gradient norm (0: off)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    train->add_option("--epochs", t.epochs, "total epochs (a resumed run continues up to this)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    train->add_option("--batch-size", t.batch_size, "mini-batch size (default 128 for fashion, 32 for the small digits set)")
        ->check(CLI::PositiveNumber);
    train->add_option("--seed", t.seed, "seed of initialisation, split and shuffling")->capture_default_str();
    train->add_option("--threads", t.threads, "BLAS threads")->check(CLI::Range(1, 256))->capture_default_str();
    train->add_option("--data", t.data, "data set: fashion (Fashion-MNIST) or digits (embedded UCI 8x8 digits)")
        ->check(CLI::IsMember({"fashion", "digits"}))
        ->capture_default_str();
    train->add_option("--data-dir", t.data_dir, "Fashion-MNIST directory (default $TAPEGRAD_FASHION_DIR or "
                                                "/usr/share/datasets/fashion-mnist)");
    train->add_option("--val-fraction", t.val_fraction, "part of the training data held out for validation")
        ->check(CLI::Range(0.001, 0.9))
        ->capture_default_str();
    train->add_option("--normalize", t.normalization, "input normalisation fitted on the training split: none, "
                                                      "scale ([0,1]), global or feature (mean/std per input)")
        ->check(CLI::IsMember({"none", "scale", "global", "feature"}))
        ->capture_default_str();
    train->add_option("--out", t.out, "output directory (default ./runs/<name>)");
    train->add_option("--name", t.name, "run name (default <model>-<data>)");
    train->add_option("--resume", t.resume, "continue from this checkpoint (weights, optimizer state, epoch)")
        ->check(CLI::ExistingFile);
    train->add_option("--stop-after", t.stop_after, "stop after this epoch as if interrupted (the schedule still "
                                                     "spans --epochs); --resume continues")
        ->capture_default_str();
    train->add_option("--progress", t.progress, "auto: a live bar on a terminal, plain lines otherwise")
        ->check(CLI::IsMember({"auto", "bar", "lines"}))
        ->capture_default_str();
    train->add_flag("--quiet", t.quiet, "only the final summary");
    train->add_flag("--distributed", t.distributed, "data parallel over the ranks of mpirun -np N: the batch is "
                    "split across them, rank 0 writes the outputs (docs/distributed.md)");
    train->add_option("--bucket-kb", t.bucket_kb, "--distributed: gradients are all-reduced in buckets of this many KiB")
        ->check(CLI::PositiveNumber)->capture_default_str();

    // ------------------------------------------------------------- eval
    eval_options e;
    auto* eval = app.add_subcommand("eval", "test accuracy and confusion matrix of a checkpoint");
    eval->add_option("--checkpoint,checkpoint", e.checkpoint, "checkpoint.npz written by train")
        ->required()
        ->check(CLI::ExistingFile);
    eval->add_option("--data-dir", e.data_dir, "Fashion-MNIST directory");
    eval->add_option("--threads", e.threads, "BLAS threads")->check(CLI::Range(1, 256))->capture_default_str();

    // -------------------------------------------------------- gradcheck
    gradcheck_options_cli g;
    bool no_audit = false;
    auto* gc = app.add_subcommand("gradcheck", "gradcheck every op and layer; audit the article's formulas");
    gc->add_option("--seed", g.seed, "seed of the random inputs")->capture_default_str();
    gc->add_flag("--verbose,-v", g.verbose, "print every report table, not only failures");
    gc->add_flag("--no-audit", no_audit, "skip the audit of the article's formulas");

    // ------------------------------------------------------------ bench
    bench_options b;
    std::string bench_layers = "256,128";
    bool no_ftz = false;
    auto* bench = app.add_subcommand("bench", "time one training step: tapegrad vs hand-written xtensor + BLAS");
    bench->add_option("--layers", bench_layers, "hidden sizes of the 784-...-10 MLP")->capture_default_str();
    bench->add_option("--batch-size", b.batch_size, "batch")->check(CLI::PositiveNumber)->capture_default_str();
    bench->add_option("--steps", b.steps, "steps per timed repeat")->check(CLI::PositiveNumber)->capture_default_str();
    bench->add_option("--repeats", b.repeats, "timed repeats")->check(CLI::PositiveNumber)->capture_default_str();
    bench->add_option("--warmup", b.warmup, "untimed steps first")->capture_default_str();
    bench->add_option("--threads", b.threads, "BLAS threads")->check(CLI::Range(1, 256))->capture_default_str();
    bench->add_flag("--no-ftz", no_ftz, "leave flush-to-zero off");

    CLI11_PARSE(app, argc, argv);

    try {
        if (*train) {
            t.layers = parse_sizes(layers);
            return run_train(t);
        }
        if (*eval) return run_eval(e);
        if (*gc) {
            g.audit = !no_audit;
            return run_gradcheck(g);
        }
        if (*bench) {
            b.layers = parse_sizes(bench_layers);
            b.flush_denormals = !no_ftz;
            return run_bench(b);
        }
    } catch (const CLI::Error& err) {
        return app.exit(err);
    } catch (const std::exception& err) {
        std::cerr << "tapegrad: error: " << err.what() << "\n";
        return 2;
    }
    return 0;
}
