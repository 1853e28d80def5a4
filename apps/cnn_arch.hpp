#pragma once
// `tapegrad train --model cnn --arch SPEC`: a convolutional network from a short
// comma-separated layer list (docs/trainer.md, "Convolutional networks"):
//   c<N>[k<K>][s<S>][p<P>]  Conv2d, N filters, KxK kernel (3), stride S (1), zero padding P (K/2)
//   bn                      BatchNorm2d on images, BatchNorm1d after the flatten
//   relu tanh sigmoid gelu elu leaky_relu softplus   activations
//   mp<K> / ap<K>           MaxPool2d / AvgPool2d, KxK windows at stride K
//   gap                     global average pool, [N, C, H, W] -> [N, C]
//   d<P>                    Dropout with probability P (0 <= P < 1)
//   fc<N>                   Linear to N features (a Flatten goes before the first one)
// The network starts with Unflatten(1, H, W) and ends with a Linear to the classes.
// Syntax is checked when the option is read; shapes when the network is planned
// for an image size, before anything is built or trained.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace tapegrad::app {

/// The default --arch: two conv blocks and a hidden Linear; fits 28x28 and 8x8 images.
inline const char* const default_cnn_arch = "c32,bn,relu,mp2,c64,bn,relu,mp2,fc128,relu";

/// One token of an --arch list, as written.
struct arch_token {
    /// What the token is.
    enum class kind { conv, batch_norm, activation, max_pool, avg_pool, global_avg_pool, dropout, linear };
    kind k = kind::conv;       ///< the layer
    std::string text;          ///< "c32k5"
    std::size_t position = 0;  ///< 1-based place in the list
    std::size_t size = 0;      ///< conv filters or fc features
    std::size_t kernel = 3;    ///< conv kernel, pool window
    std::size_t stride = 1;    ///< conv stride
    std::size_t padding = 1;   ///< conv zero padding (default kernel / 2)
    double p = 0;              ///< dropout probability
    std::string activation;    ///< nn::parse_activation name
};

/// The grammar, for messages and --help.
std::string arch_grammar();

/// Read an --arch list (syntax and ranges only). Throws option_error starting
/// with `label`, naming the token and its position and listing the grammar.
std::vector<arch_token> parse_arch(const std::string& text, const std::string& label = "--arch");

/// One layer of a planned network with the shapes it sees (per example).
struct planned_layer {
    /// The nn module to build.
    enum class op { unflatten, conv, batch_norm2d, batch_norm1d, activation, max_pool, avg_pool, global_avg_pool,
                    dropout, flatten, linear };
    op o = op::unflatten;             ///< the module
    arch_token token;                 ///< the token it comes from (position 0: inserted by the trainer)
    std::string what;                 ///< "c32 (token 1): Conv2d 1 -> 32, 3x3, stride 1, padding 1"
    std::vector<std::size_t> input;   ///< [C, H, W] or [F]
    std::vector<std::size_t> output;  ///< [C, H, W] or [F]
    double parameters = 0;            ///< trainable elements
    double workspace = 0;             ///< extra elements per example (conv's im2col columns)
};

/// The network of `arch` on 1 x `height` x `width` images with `classes`
/// outputs, layer by layer with shapes, including the Unflatten, the inserted
/// Flatten and the final Linear. A layer that does not fit (a pool or kernel
/// larger than its input, an image layer after fc or gap, a non-square input)
/// throws option_error naming the token, its position and the shape it got,
/// and what to do.
std::vector<planned_layer> plan_cnn(const std::vector<arch_token>& arch, std::size_t height, std::size_t width,
                                    std::size_t classes);

/// The side of a square image of `inputs` pixels; throws naming `inputs` when
/// it is not a square.
std::size_t square_side(std::size_t inputs);

/// The planned network as an nn::sequential (parameters "1.weight", ...),
/// initialised with PyTorch's defaults from an engine seeded with `seed`.
std::shared_ptr<nn::module<float>> make_cnn(const std::string& arch, std::size_t inputs, std::size_t classes,
                                            std::uint64_t seed);

/// Reseed every Dropout of `model` from (seed, step, its place), so the masks of
/// a step depend on nothing else: a resumed run draws the masks of an
/// uninterrupted one.
void reseed_dropout(nn::module<float>& model, std::uint64_t seed, std::uint64_t step);

}  // namespace tapegrad::app
