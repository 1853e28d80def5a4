#pragma once
// Loss modules: small objects that remember their options and call the core
// losses of autograd/ops.hpp. They take (prediction, target), so they are not
// nn::module (whose forward takes one input).

#include <cstddef>
#include <string>
#include <vector>

#include "autograd/ops.hpp"

namespace tapegrad::nn {

/// Mean squared error (torch.nn.MSELoss).
template <class T> class mse_loss {
  public:
    /// Loss with the given reduction.
    explicit mse_loss(reduction r = reduction::mean) : r_(r) {}
    /// (pred - target)^2 reduced; shapes must match.
    tensor<T> operator()(const tensor<T>& pred, const tensor<T>& target) const { return mse(pred, target, r_); }
    /// "MSELoss".
    std::string type_name() const { return "MSELoss"; }

  private:
    reduction r_;
};

/// Mean absolute error (torch.nn.L1Loss).
template <class T> class l1_loss {
  public:
    /// Loss with the given reduction.
    explicit l1_loss(reduction r = reduction::mean) : r_(r) {}
    /// |pred - target| reduced.
    tensor<T> operator()(const tensor<T>& pred, const tensor<T>& target) const { return l1(pred, target, r_); }
    /// "L1Loss".
    std::string type_name() const { return "L1Loss"; }

  private:
    reduction r_;
};

/// Huber loss (torch.nn.HuberLoss).
template <class T> class huber_loss {
  public:
    /// Loss with threshold `delta`.
    explicit huber_loss(T delta = T(1), reduction r = reduction::mean) : delta_(delta), r_(r) {}
    /// 0.5 d^2 where |d| < delta, else delta (|d| - delta/2), reduced.
    tensor<T> operator()(const tensor<T>& pred, const tensor<T>& target) const {
        return huber(pred, target, delta_, r_);
    }
    /// "HuberLoss".
    std::string type_name() const { return "HuberLoss"; }

  private:
    T delta_;
    reduction r_;
};

/// Cross-entropy from logits (torch.nn.CrossEntropyLoss), with class labels or
/// probability targets.
template <class T> class cross_entropy_loss {
  public:
    /// Loss with the given reduction.
    explicit cross_entropy_loss(reduction r = reduction::mean) : r_(r) {}
    /// logits [N, C], labels [N].
    tensor<T> operator()(const tensor<T>& logits, const std::vector<std::size_t>& labels) const {
        return cross_entropy(logits, labels, r_);
    }
    /// logits [N, C], probabilities [N, C].
    tensor<T> operator()(const tensor<T>& logits, const tensor<T>& probs) const {
        return cross_entropy(logits, probs, r_);
    }
    /// "CrossEntropyLoss".
    std::string type_name() const { return "CrossEntropyLoss"; }

  private:
    reduction r_;
};

/// Negative log-likelihood of log-probabilities (torch.nn.NLLLoss).
template <class T> class nll_loss {
  public:
    /// Loss with the given reduction.
    explicit nll_loss(reduction r = reduction::mean) : r_(r) {}
    /// log_probs [N, C], labels [N].
    tensor<T> operator()(const tensor<T>& log_probs, const std::vector<std::size_t>& labels) const {
        return nll(log_probs, labels, r_);
    }
    /// "NLLLoss".
    std::string type_name() const { return "NLLLoss"; }

  private:
    reduction r_;
};

/// Binary cross-entropy from logits (torch.nn.BCEWithLogitsLoss).
template <class T> class bce_with_logits_loss {
  public:
    /// Loss with the given reduction.
    explicit bce_with_logits_loss(reduction r = reduction::mean) : r_(r) {}
    /// logits and targets of the same shape, targets in [0, 1].
    tensor<T> operator()(const tensor<T>& logits, const tensor<T>& targets) const {
        return bce_with_logits(logits, targets, r_);
    }
    /// "BCEWithLogitsLoss".
    std::string type_name() const { return "BCEWithLogitsLoss"; }

  private:
    reduction r_;
};

}  // namespace tapegrad::nn
