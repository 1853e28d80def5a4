// tapegrad: train, evaluate, gradcheck, benchmark and draw the tape from the command line.
// Argument parsing only; each subcommand lives in apps/*_cmd.cpp / trainer.cpp.
// Every value is taken as text and read by apps/options (strict, with messages
// that name the option and its allowed values), not by CLI11's converters.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/commands.hpp"
#include "apps/options.hpp"
#ifdef TAPEGRAD_TEST_FAULTS
#include <cstdlib>

#include "apps/durable_io.hpp"
#endif

namespace {

/// A default as --help shows it: 0.9, not 0.90000000000000002 (the exact
/// digits are for checkpoints).
std::string for_help(const std::string& value) {
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.size() <= 8 || end != value.c_str() + value.size()) return value;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace tapegrad::app;
#ifdef TAPEGRAD_TEST_FAULTS
    // The test build (tests/cli) injects a crash, a signal or a full disk at a named point.
    if (const char* spec = std::getenv("TAPEGRAD_TEST_FAULT")) install_test_faults(spec);
#endif
    CLI::App app{"tapegrad: a tape-based autodiff engine on xtensor; train and check small networks"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("tapegrad 0.1.0"));

    // ------------------------------------------------------------ train
    train_options t;
    const train_options defaults;
    std::map<std::string, std::string> raw;  // setting key -> text as given
    std::map<std::string, CLI::Option*> given;
    auto* train = app.add_subcommand("train", "train a model; writes metrics.csv, curves.svg/png, checkpoint.npz");
    for (const auto& s : train_settings()) {
        CLI::Option* opt = train->add_option(s.flag, raw[s.key], s.help);
        if (s.key != "batch_size") opt->default_str(for_help(s.get(defaults)));
        given[s.key] = opt;
    }
    // A flag: `--log-grad-norms` alone means on (no default text, which CLI11 would take as its value).
    given["log_grad_norms"]->expected(0, 1)->default_str("");
    train->add_option("--data-dir", t.data_dir, "Fashion-MNIST directory (default $TAPEGRAD_FASHION_DIR or "
                                                "/usr/share/datasets/fashion-mnist)");
    train->add_option("--out", t.out, "output directory (default ./runs/<name>)");
    train->add_option("--resume", t.resume, "continue from this checkpoint (weights, optimizer state, epoch)")
        ->check(CLI::ExistingFile);
    train->add_flag("--quiet", t.quiet, "only the final summary");
    train->add_flag("--eager", t.eager,
                    "run each training step on the eager tape instead of replaying a compiled step (the results "
                    "are the same; the hand-written backward, --distributed and --log-grad-norms always run eagerly)");
    train->add_flag("--distributed", t.distributed, "data parallel over the ranks of mpirun -np N: the batch is "
                    "split across them, rank 0 writes the outputs (docs/distributed.md)");

    // ------------------------------------------------------------- eval
    eval_options e;
    std::string eval_threads = "1";
    auto* eval = app.add_subcommand("eval", "test accuracy and confusion matrix of a checkpoint");
    eval->add_option("--checkpoint,checkpoint", e.checkpoint, "checkpoint.npz written by train")
        ->required()
        ->check(CLI::ExistingFile);
    eval->add_option("--data-dir", e.data_dir, "Fashion-MNIST directory");
    eval->add_option("--threads", eval_threads, "BLAS threads (1 to 256)")->capture_default_str();

    // -------------------------------------------------------- gradcheck
    gradcheck_options_cli g;
    std::string gc_seed = "1";
    bool no_audit = false;
    auto* gc = app.add_subcommand("gradcheck", "gradcheck every op and layer; audit the article's formulas");
    gc->add_option("--seed", gc_seed, "seed of the random inputs (0 to 4294967295)")->capture_default_str();
    gc->add_flag("--verbose,-v", g.verbose, "print every report table, not only failures");
    gc->add_flag("--no-audit", no_audit, "skip the audit of the article's formulas");

    // ------------------------------------------------------------ bench
    bench_options b;
    std::string bench_layers = "256,128", bench_batch = "64", bench_steps = "50", bench_repeats = "7",
                bench_warmup = "20", bench_threads = "1";
    bool no_ftz = false;
    auto* bench = app.add_subcommand("bench", "time one training step: tapegrad vs hand-written xtensor + BLAS");
    bench->add_option("--layers", bench_layers, "hidden sizes of the 784-...-10 MLP")->capture_default_str();
    bench->add_option("--batch-size", bench_batch, "batch (1 to 100000)")->capture_default_str();
    bench->add_option("--steps", bench_steps, "steps per timed repeat (1 to 1000000)")->capture_default_str();
    bench->add_option("--repeats", bench_repeats, "timed repeats (1 to 10000)")->capture_default_str();
    bench->add_option("--warmup", bench_warmup, "untimed steps first (0 to 1000000)")->capture_default_str();
    bench->add_option("--threads", bench_threads, "BLAS threads (1 to 256)")->capture_default_str();
    bench->add_flag("--no-ftz", no_ftz, "leave flush-to-zero off");

    // ------------------------------------------------------------ graph
    graph_options gr;
    std::string graph_model = "seed", graph_batch = "8", graph_seed = "1";
    auto* graph = app.add_subcommand("graph", "draw the tape of one training step (Graphviz DOT, and SVG when dot "
                                              "is installed)");
    graph->add_option("--model", graph_model, "seed (the article's network) or mlp")->capture_default_str();
    graph->add_option("--out,-o", gr.out, "DOT file to write; the SVG goes beside it")->capture_default_str();
    graph->add_option("--batch-size", graph_batch, "digits images in the batch (1 to 1000)")->capture_default_str();
    graph->add_option("--seed", graph_seed, "seed of the initialisation (0 to 2^64-1)")->capture_default_str();

    CLI11_PARSE(app, argc, argv);

    try {
        if (*train) {
            // In table order, so --model is known before --layers is read.
            for (const auto& s : train_settings())
                if (given[s.key]->count() > 0) {
                    s.set(t, raw[s.key], s.flag);
                    t.given.push_back(s.key);
                }
            return run_train(t);
        }
        if (*eval) {
            e.threads = static_cast<int>(parse_whole("--threads", eval_threads, 1, 256));
            return run_eval(e);
        }
        if (*gc) {
            g.seed = static_cast<unsigned>(parse_whole("--seed", gc_seed, 0, 4294967295u));
            g.audit = !no_audit;
            return run_gradcheck(g);
        }
        if (*bench) {
            b.layers = parse_sizes("--layers", bench_layers, 1, 100000, 100);
            b.batch_size = parse_whole("--batch-size", bench_batch, 1, 100000);
            b.steps = parse_whole("--steps", bench_steps, 1, 1000000);
            b.repeats = parse_whole("--repeats", bench_repeats, 1, 10000);
            b.warmup = parse_whole("--warmup", bench_warmup, 0, 1000000);
            b.threads = static_cast<int>(parse_whole("--threads", bench_threads, 1, 256));
            b.flush_denormals = !no_ftz;
            return run_bench(b);
        }
        if (*graph) {
            gr.model = parse_choice("--model", graph_model, {"seed", "mlp"});
            gr.batch_size = parse_whole("--batch-size", graph_batch, 1, 1000);
            gr.seed = parse_whole("--seed", graph_seed, 0, UINT64_MAX);
            return run_graph(gr);
        }
    } catch (const option_error& err) {
        std::cerr << "tapegrad: error: " << err.what() << "\n";
        return 2;
    } catch (const CLI::Error& err) {
        return app.exit(err);
    } catch (const std::exception& err) {
        std::cerr << "tapegrad: error: " << err.what() << "\n";
        return 2;
    }
    return 0;
}
