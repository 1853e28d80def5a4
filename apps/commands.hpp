#pragma once
// The `tapegrad` program's subcommands as functions, so tests can call them
// without a process; apps/main.cpp only parses arguments into these structs.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tapegrad::app {

/// Everything `tapegrad train` can be told. Defaults are the measured recipe
/// for Fashion-MNIST (see docs/trainer.md).
struct train_options {
    std::string model = "mlp";                  ///< "seed" (the article's network), "mlp" or "cnn"
    std::size_t hidden = 100;                   ///< seed: hidden units (tanh)
    std::string loss = "ce";                    ///< "ce" or "mse" (mse on softmax probabilities, as the article)
    std::string backward = "tape";              ///< mse output layer's backward: "tape", "hand" (corrected delta3) or "article"
    std::vector<std::size_t> layers{256, 128};  ///< mlp: hidden layer sizes
    std::string activation = "relu";            ///< mlp: hidden activation
    std::string arch;                           ///< cnn: layer list (apps/cnn_arch.hpp); empty: the default
    std::string optimizer = "adam";             ///< sgd | adam | adamw | rmsprop | adagrad
    double lr = 2e-3;                           ///< base learning rate
    double momentum = 0.9;                      ///< sgd momentum
    double weight_decay = 0;                    ///< L2 (sgd/adam/...) or decoupled (adamw) weight decay
    std::string schedule = "cosine";            ///< none | step | cosine | exp
    std::size_t warmup = 0;                     ///< linear warm-up steps (batches) before the schedule
    std::size_t step_size = 3;                  ///< step schedule: epochs between decays
    double gamma = 0.5;                         ///< step/exp schedule: decay factor (per epoch for exp)
    double clip = 0;                            ///< clip the global gradient norm to this (0 = off)
    std::size_t epochs = 10;                    ///< total epochs (including those of a resumed run)
    std::size_t batch_size = 0;                 ///< mini-batch size; 0: 128 for fashion, 32 for digits
    std::uint64_t seed = 1;                     ///< seeds init, split and shuffling
    int threads = 1;                            ///< BLAS threads
    std::string data = "fashion";               ///< fashion | digits
    std::string data_dir;                       ///< Fashion-MNIST directory (default: Debian's)
    double val_fraction = 1.0 / 12;             ///< part of the training set held out for validation
    std::string normalization = "feature";      ///< none | scale | global | feature
    std::string out;                            ///< output directory (default runs/<name>)
    std::string name;                           ///< run name (default from model and data)
    std::string resume;                         ///< checkpoint to continue from
    std::size_t stop_after = 0;                 ///< stop after this epoch, as if interrupted (0 = run all)
    std::string progress = "auto";              ///< auto | bar | lines
    bool quiet = false;                         ///< no per-epoch lines (tests)
    bool eager = false;                         ///< run the eager tape, not the compiled step
    bool distributed = false;                   ///< data parallel over the ranks of mpirun (needs MPI)
    std::size_t bucket_kb = 4096;               ///< distributed: all-reduce bucket size in KiB
    bool log_grad_norms = false;                ///< add per-parameter gradient-norm columns to metrics.csv
    std::vector<std::string> given;             ///< keys of the settings given on the command line (checked on resume)
};

/// Learning rate at global step `step` (0-based) of epoch `epoch` for a run of
/// `total_steps` steps: linear warm-up over `warmup` steps times the schedule
/// (step: gamma^(epoch / step_size); exp: gamma^epoch; cosine: per step from lr
/// to 0 over the steps after warm-up), from optim/lr_schedule.hpp. A closed form, so resuming continues the
/// same curve.
double learning_rate(const train_options& o, std::size_t step, std::size_t epoch, std::size_t total_steps);

/// `tapegrad train`; returns the process exit code.
int run_train(const train_options& o);

/// What `tapegrad eval` needs.
struct eval_options {
    std::string checkpoint;  ///< .npz written by train
    std::string data_dir;    ///< override the Fashion-MNIST directory
    int threads = 1;         ///< BLAS threads
};

/// `tapegrad eval`: test accuracy and confusion matrix of a checkpoint.
int run_eval(const eval_options& o);

/// Read and check the checkpoint at `path` exactly as `train --resume` and
/// `eval` do, without loading data or training; throws an exception naming the
/// file and what is wrong. For tests and tests/fuzz/fuzz_checkpoint.cpp.
void check_checkpoint(const std::string& path);
/// check_checkpoint on the file's bytes already in memory; `name` stands for
/// the file in error messages.
void check_checkpoint(const unsigned char* data, std::size_t size, const std::string& name);

/// What `tapegrad gradcheck` needs.
struct gradcheck_options_cli {
    unsigned seed = 1;     ///< seed of the random inputs and of the audit
    bool verbose = false;  ///< print every full report table, not only failures
    bool audit = true;     ///< also print the audit of the article's formulas
};

/// `tapegrad gradcheck`: every op and layer, then the article's formulas.
int run_gradcheck(const gradcheck_options_cli& o);

/// What `tapegrad bench` needs.
struct bench_options {
    std::vector<std::size_t> layers{256, 128};  ///< hidden sizes of the 784-...-10 MLP
    std::size_t batch_size = 64;                ///< batch
    std::size_t steps = 50;                     ///< steps per timed repeat
    std::size_t repeats = 7;                    ///< timed repeats (median reported)
    std::size_t warmup = 20;                    ///< untimed steps first
    int threads = 1;                            ///< BLAS threads
    bool flush_denormals = true;                ///< flush-to-zero on
};

/// `tapegrad bench`: tapegrad vs a hand-written xtensor + BLAS step.
int run_bench(const bench_options& o);

/// What `tapegrad graph` needs.
struct graph_options {
    std::string model = "seed";     ///< "seed" (the article's network, MSE on softmax) or "mlp" (cross-entropy)
    std::string out = "graph.dot";  ///< DOT file; the SVG goes beside it with the extension .svg
    std::size_t batch_size = 8;     ///< digits images in the batch
    std::uint64_t seed = 1;         ///< seeds the initialisation
    double timeout = 30;            ///< seconds Graphviz's dot may take
};

/// `tapegrad graph`: the trainer's model on a batch of the embedded digits, forward,
/// loss and backward, then the recorded graph with gradient norms as DOT (autograd/dot.hpp)
/// and as SVG when Graphviz's `dot` is on PATH.
int run_graph(const graph_options& o);

}  // namespace tapegrad::app
