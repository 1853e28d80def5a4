#pragma once
// The practical limit: the same networks' forward, backward and SGD/Adam updates
// written out by hand with preallocated xtensor buffers, xt::noalias and
// tapegrad::blas::gemm (transpose flags, beta-accumulation). No tape, no
// allocation after construction.

#include <cstddef>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "benchmarks/cases.hpp"

namespace tapegrad::bench {

/// Hand-written backprop of one MLP case; step() is one full training step.
class handwritten_mlp : public runner {
  public:
    /// `fuse_sgd` folds the SGD update into the weight-gradient gemm (beta = 1);
    /// without it SGD writes dW (beta = 0) and updates in a second pass, as an
    /// engine that materialises gradients must.
    explicit handwritten_mlp(const mlp_problem& p, bool fuse_sgd = true);
    float step() override;
    void set_batch(const float* x, const std::size_t* labels) override;
    std::size_t correct(const float* x, const std::size_t* labels, std::size_t n) override;

  private:
    using mat = xt::xtensor<float, 2>;
    using vec = xt::xtensor<float, 1>;
    /// h[l] = act(h[l-1] W^T + b) for `rows` rows of `in`; h[l] must be [rows, sizes[l+1]].
    void forward(const float* in, std::size_t rows, std::vector<mat>& h) const;
    float loss_and_grad();  // writes dz_.back() from the logits
    void adam_update(float* w, float* m, float* v, const float* g, std::size_t n) const;

    mlp_case c_;
    std::size_t layers_;
    mat x_, onehot_;
    std::vector<std::size_t> labels_;
    std::vector<mat> w_, h_, dz_, gw_, mw_, vw_;  // h_[l]: layer l's output (activation or logits)
    std::vector<vec> b_, gb_, mb_, vb_;
    std::int64_t t_ = 0;
    float step_size_ = 0, inv_sqrt_bc2_ = 0;
    bool fuse_sgd_ = true;
};

/// Hand-written opchain: forward values kept in preallocated [1, width] buffers,
/// backward by the chain rule in reverse.
class handwritten_opchain : public runner {
  public:
    explicit handwritten_opchain(const opchain_problem& p);
    float step() override;

  private:
    using mat = xt::xtensor<float, 2>;
    opchain_case spec_;
    mat x_, a_, b_, c_, g_;
    std::vector<mat> y_;
};

}  // namespace tapegrad::bench
