#pragma once
// The benchmark cases, defined once, and the engine interface every engine
// (tapegrad, hand-written xtensor + BLAS, LibTorch) implements. Nothing here
// includes xtensor or LibTorch, so the LibTorch translation unit stays apart.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tapegrad::bench {

/// Hidden-layer activation of an MLP case.
enum class act_kind { tanh, relu };
/// Loss of an MLP case: softmax then MSE against one-hot targets (the article's
/// network), or cross-entropy from logits with class labels.
enum class loss_kind { softmax_mse, cross_entropy };
/// Parameter update.
enum class opt_kind { sgd, adam };

/// One training-step case: an MLP, a batch, an optimizer, thread and FTZ settings.
struct mlp_case {
    std::string name;
    std::vector<std::size_t> sizes;  ///< layer widths, input first
    act_kind act;
    loss_kind loss;
    std::size_t batch;
    opt_kind opt;
    int threads = 1;   ///< BLAS (and LibTorch intra-op) threads
    bool ftz = true;   ///< flush-to-zero / denormals-are-zero on the timing thread
};

/// The opchain case: 100 chained elementwise ops on a 1x16 float tensor.
struct opchain_case {
    std::string name;
    std::size_t ops = 100;
    std::size_t width = 16;
    /// Forward only (still recorded: the input requires grad, as in training), or
    /// forward + backward of sum(y).
    bool backward = false;
};

/// Hyper-parameters shared by all engines.
constexpr float sgd_lr = 0.01f;
constexpr float adam_lr = 1e-3f, adam_beta1 = 0.9f, adam_beta2 = 0.999f, adam_eps = 1e-8f;

/// Every training case of the comparison (issue 5, section 3).
inline std::vector<mlp_case> mlp_cases() {
    const std::vector<std::size_t> tiny{4, 16, 3}, seed{784, 64, 10}, relu{784, 256, 128, 10};
    using A = act_kind;
    using L = loss_kind;
    using O = opt_kind;
    return {
        {"tiny/sgd", tiny, A::tanh, L::softmax_mse, 1, O::sgd},
        {"tiny/adam", tiny, A::tanh, L::softmax_mse, 1, O::adam},
        {"seed/sgd", seed, A::tanh, L::softmax_mse, 64, O::sgd},
        {"relu64/sgd", relu, A::relu, L::cross_entropy, 64, O::sgd},
        {"relu64/adam", relu, A::relu, L::cross_entropy, 64, O::adam},
        {"relu256/sgd", relu, A::relu, L::cross_entropy, 256, O::sgd},
        {"relu256/adam", relu, A::relu, L::cross_entropy, 256, O::adam},
        {"relu256/sgd 2thr", relu, A::relu, L::cross_entropy, 256, O::sgd, 2},
        {"relu256/adam 2thr", relu, A::relu, L::cross_entropy, 256, O::adam, 2},
        {"relu64/adam noFTZ", relu, A::relu, L::cross_entropy, 64, O::adam, 1, false},
    };
}

/// The opchain cases.
inline std::vector<opchain_case> opchain_cases() {
    return {{"opchain/fwd", 100, 16, false}, {"opchain/fwd+bwd", 100, 16, true}};
}

/// The op applied at chain position i (same in every engine): a cycle of
/// y*a, y+b, tanh(y), y-c, sigmoid(y)... chosen so values stay bounded.
enum class chain_op { mul, add, tanh, sub, sigmoid };
inline chain_op chain_op_at(std::size_t i) {
    static const chain_op cycle[] = {chain_op::mul, chain_op::add, chain_op::tanh, chain_op::sub, chain_op::sigmoid};
    return cycle[i % 5];
}

/// The data of one MLP case, identical for all engines: weights [out, in]
/// row-major, biases [out], one input batch reused every step, labels, one-hot.
struct mlp_problem {
    mlp_case spec;
    std::vector<std::vector<float>> w, b;
    std::vector<float> x;            ///< [batch, sizes[0]]
    std::vector<std::size_t> labels; ///< [batch]
    std::vector<float> onehot;       ///< [batch, classes]
};

/// Deterministic problem for `c` (PyTorch-style uniform init, seeded).
mlp_problem make_problem(const mlp_case& c, std::uint64_t seed = 42);

/// Data of the opchain: the input [1, width] and the constant operands a, b, c.
struct opchain_problem {
    opchain_case spec;
    std::vector<float> x, a, b, c;
};
opchain_problem make_opchain(const opchain_case& c, std::uint64_t seed = 7);

/// One conv layer's forward + backward (issue 12, section 3): x [batch, in, size, size]
/// (requires grad), 3x3 kernel, padding 1, stride 1, with bias; loss = sum(y);
/// gradients for the input, the weight and the bias.
struct conv_case {
    std::string name;
    std::size_t batch = 64, in = 32, out = 64, size = 14;
};

/// One training step of the default CNN on [batch, 1, 28, 28], 10 classes:
/// conv(1->c1, 3x3, pad 1) -> batch_norm2d -> relu -> max_pool 2x2 -> conv(c1->c2,
/// 3x3, pad 1) -> batch_norm2d -> relu -> max_pool 2x2 -> flatten -> linear(->hidden)
/// -> relu -> linear(->10), cross-entropy.
struct cnn_case {
    std::string name;
    opt_kind opt = opt_kind::adam;
    std::size_t batch = 64, size = 28, c1 = 32, c2 = 64, hidden = 128, classes = 10;
    std::size_t flat() const { return c2 * (size / 4) * (size / 4); }
};

/// Batch-norm epsilon of the CNN case (PyTorch's default).
constexpr float bn_eps = 1e-5f;

/// The conv cases.
inline std::vector<conv_case> conv_cases() { return {{"conv/layer"}}; }
/// The CNN cases.
inline std::vector<cnn_case> cnn_cases() { return {{"cnn/adam", opt_kind::adam}, {"cnn/sgd", opt_kind::sgd}}; }

/// Data of a conv case: input, weight [out, in, 3, 3], bias, identical for all engines.
struct conv_problem {
    conv_case spec;
    std::vector<float> x, w, b;
};
conv_problem make_conv(const conv_case& c, std::uint64_t seed = 11);

/// Data of a CNN case, PyTorch's default init (conv and linear: U(-1/sqrt(fan_in),
/// 1/sqrt(fan_in)) for weight and bias; batch norm gamma 1, beta 0); weights row-major
/// as PyTorch stores them (OIHW, [out, in]).
struct cnn_problem {
    cnn_case spec;
    std::vector<float> w1, b1, w2, b2, w3, b3, w4, b4;
    std::vector<float> x;            ///< [batch, 1, size, size] in [0, 1)
    std::vector<std::size_t> labels; ///< [batch]
};
cnn_problem make_cnn(const cnn_case& c, std::uint64_t seed = 13);

/// Per-step memory counters an engine can report (tapegrad's tape only).
struct step_memory {
    std::size_t tape_nodes = 0;
    std::size_t tape_bytes = 0;  ///< value + gradient buffers + arena held by the tape
    /// Bytes of the engine's own preallocated buffers (hand-written engines), -1 if not known.
    double buffer_bytes = -1;
    /// Peak heap bytes live during the step above those live before it (all engines;
    /// only when the binary counts allocations, see alloc_count.hpp), -1 if not measured.
    double heap_peak_bytes = -1;
};

/// One engine running one case: `step()` does one full training step (or one
/// opchain evaluation) and returns the loss (or a checksum).
class runner {
  public:
    virtual ~runner() = default;
    /// One training step (or opchain evaluation); returns the loss (or a checksum).
    virtual float step() = 0;
    /// One step that also reads the tape counters before the tape is reset
    /// (kept out of step(): reading them walks every node slot).
    virtual step_memory memory_step() {
        step();
        return {};
    }
    /// Use these `spec.batch` rows of inputs and labels from now on (end-to-end runs).
    virtual void set_batch(const float* /*x*/, const std::size_t* /*labels*/) {}
    /// How many of the `n` rows of `x` the network classifies as `labels` (no gradients).
    virtual std::size_t correct(const float* /*x*/, const std::size_t* /*labels*/, std::size_t /*n*/) { return 0; }
    /// A few parameter or gradient values after the last step, in the same order in
    /// every engine of a case, for the agreement check (empty: not offered).
    virtual std::vector<float> probe() { return {}; }
};

/// The engines. make_torch_* return nullptr when built without LibTorch.
std::unique_ptr<runner> make_tapegrad(const mlp_problem& p);
std::unique_ptr<runner> make_tapegrad_nn(const mlp_problem& p);  ///< nn::mlp + optim::sgd/adam
/// The compiled step's passes (tapegrad::compile_options, named here so this header needs no xtensor).
struct compiled_passes {
    bool elementwise = true, bias_activation = true, sgd = true, backward_elementwise = true, plan_backward = true,
         alias_bias_grad = true;
};
/// The same as a compiled step (compile()), with the given passes.
std::unique_ptr<runner> make_tapegrad_compiled(const mlp_problem& p, compiled_passes passes = {});
std::unique_ptr<runner> make_handwritten(const mlp_problem& p);
/// Hand-written with SGD not fused into the gemm (dW materialised), to separate the
/// engine's overhead from the fusion only hand-written code gets.
std::unique_ptr<runner> make_handwritten_unfused(const mlp_problem& p);
std::unique_ptr<runner> make_torch(const mlp_problem& p);
std::unique_ptr<runner> make_tapegrad_opchain(const opchain_problem& p, bool compiled = false,
                                              compiled_passes passes = {});
std::unique_ptr<runner> make_handwritten_opchain(const opchain_problem& p);
std::unique_ptr<runner> make_torch_opchain(const opchain_problem& p);

std::unique_ptr<runner> make_tapegrad_conv(const conv_problem& p);
/// `wide`: one gemm for the whole batch (cols [K, batch*pixels]) instead of one per sample.
std::unique_ptr<runner> make_handwritten_conv(const conv_problem& p, bool wide = false);
std::unique_ptr<runner> make_torch_conv(const conv_problem& p);
std::unique_ptr<runner> make_tapegrad_cnn(const cnn_problem& p);
/// nn::conv2d/batch_norm2d/... + optim; `compiled`: the step through tapegrad::compile
std::unique_ptr<runner> make_tapegrad_nn_cnn(const cnn_problem& p, bool compiled = false);
std::unique_ptr<runner> make_handwritten_cnn(const cnn_problem& p, bool wide = false);
std::unique_ptr<runner> make_torch_cnn(const cnn_problem& p);

/// One stage of the tapegrad CNN step and its time (seconds).
struct op_time {
    std::string op;
    double forward = 0, backward = 0;
    double forward_allocs = -1;  ///< heap allocations in the forward stage, -1 if not counted
};
/// The stages of the CNN step, in forward order, as the breakdowns name them.
inline std::vector<std::string> cnn_stage_names() {
    return {"conv1", "batch_norm 1", "relu 1", "max_pool 1", "conv2", "batch_norm 2", "relu 2", "max_pool 2",
            "flatten + linear 1", "relu 3", "linear 2", "cross_entropy", "optimizer step", "reset_tape"};
}
/// Runs one CNN step with each stage timed (see cnn_stage_names()) per call.
using stage_timer = std::function<std::vector<op_time>()>;
/// tapegrad's CNN step, stage by stage: forward by a clock around each stage, backward
/// from a hook on the stage's output to one on its input; `allocations` (the process's
/// allocation counter, or null) counts each forward stage's allocations.
stage_timer tapegrad_cnn_timer(const cnn_problem& p, std::size_t (*allocations)() = nullptr);
/// The hand-written step, timed between its calls (relu is fused into the batch norm
/// and linear before it, so its stages are empty).
stage_timer handwritten_cnn_timer(const cnn_problem& p);

/// Whether the LibTorch engine was compiled in.
bool have_torch();
/// Set LibTorch's intra-op threads (no-op without LibTorch).
void torch_set_threads(int n);
/// LibTorch's version and parallel backend, or "not built".
std::string torch_info();

}  // namespace tapegrad::bench
