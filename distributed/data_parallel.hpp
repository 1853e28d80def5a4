#pragma once
// Data-parallel training over MPI: one process per rank, the same model on
// every rank, each rank a disjoint share of every global batch, gradients
// averaged after backward, the same optimizer step everywhere.
//
//     distributed::context ctx;
//     auto net = nn::mlp<double>({784, 256, 10}, nn::activation::relu, rng);
//     distributed::broadcast_module(ctx, *net);            // rank 0's weights everywhere
//     distributed::gradient_reducer<double> avg(ctx, net->parameters());
//     distributed::shard_loader batches(ctx, train, 256, seed);  // 128 rows per rank at -np 2
//     optim::adam<double> opt(net->parameters(), {1e-3});
//     batches.start_epoch(epoch);
//     while (batches.next(b)) {
//         if (!b.y.empty()) loss(b).backward();            // this rank's rows only
//         avg.average(batches.share());                    // grad = sum over ranks of share * local mean
//         opt.step(); opt.zero_grad(); reset_tape<double>();
//     }
//
// Dropout: the masks come from each layer's own engine. Seed it per rank
// (nn::dropout(p, rank_seed(seed, ctx.rank()))) so ranks drop different units,
// as DDP's per-process generators do; such a run equals a single-process run in
// distribution, not bit for bit. The equality test uses a model without dropout
// or BatchNorm (BatchNorm's batch statistics would be per rank).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"
#include "data/dataset.hpp"
#include "distributed/comm.hpp"
#include "nn/module.hpp"

namespace tapegrad::distributed {

/// Check, collectively, that every rank's module has the same parameters and
/// buffers (names, order, shapes) as rank 0's. On a mismatch every rank throws
/// mpi_error: the differing rank names the first tensor and both shapes, the
/// others name the differing ranks.
template <class T> void check_same_shapes(const context& ctx, const nn::module<T>& m);

/// check_same_shapes, then copy rank 0's parameter and buffer values to every rank.
template <class T> void broadcast_module(const context& ctx, nn::module<T>& m);

/// Settings of a gradient_reducer.
struct reducer_options {
    /// Gradients are packed into flat buffers of at most this many bytes, one
    /// MPI_Allreduce each (a larger tensor gets a bucket of its own). The
    /// default holds all of the 784-256-128-10 MLP (0.94 MB in float).
    std::size_t bucket_bytes = std::size_t(4) << 20;
};

/// Time spent by a gradient_reducer (since construction or reset_stats()).
struct reducer_stats {
    std::size_t steps = 0;       ///< average() calls
    std::size_t allreduces = 0;  ///< MPI_Allreduce calls
    double pack_seconds = 0;     ///< copying and scaling into and out of the buckets
    double reduce_seconds = 0;   ///< inside MPI_Allreduce (includes waiting for slower ranks)
};

/// Averages the gradients of a fixed parameter list across ranks in flat buckets.
/// Buckets follow the reverse parameter order, the order backward finishes
/// them in, so the last layer's bucket is the first that could be sent.
template <class T> class gradient_reducer {
  public:
    /// `params`: leaves that require grad, the same list on every rank (the
    /// shapes are checked collectively here). Inside a compiled step
    /// (autograd/compile.hpp) average() makes the step run eagerly on every call.
    gradient_reducer(const context& ctx, std::vector<tensor<T>> params, reducer_options o = {});

    /// grad = sum over ranks of weight_r * grad_r. With weight = this rank's
    /// share of the global batch (local rows / global rows) and each grad_r the
    /// mean over the rank's rows, the result is the mean over the global batch,
    /// as one process would compute it. A parameter without a gradient counts
    /// as zeros, and every parameter has a gradient afterwards on every rank.
    void average(double weight);
    /// Equal shares: weight 1 / size().
    void average() { average(1.0 / static_cast<double>(ctx_->size())); }

    /// Parameter indices of each bucket, in the order they are reduced.
    const std::vector<std::vector<std::size_t>>& buckets() const { return buckets_; }
    /// Timings.
    const reducer_stats& stats() const { return stats_; }
    /// Zero the timings.
    void reset_stats() { stats_ = {}; }

  private:
    const context* ctx_;
    std::vector<tensor<T>> params_;
    std::vector<std::vector<std::size_t>> buckets_;
    std::vector<T> buffer_;  // one bucket's worth, reused
    reducer_stats stats_;
};

/// Rows [first, last) of a global batch of `rows` that `rank` of `world` takes:
/// contiguous, in rank order, sizes differing by at most one (the first
/// rows % world ranks take one more).
std::pair<std::size_t, std::size_t> shard_range(std::size_t rows, int rank, int world);

/// A seed for rank `rank` derived from `seed` (rank 0 keeps `seed`), for
/// per-rank randomness such as dropout masks.
std::uint64_t rank_seed(std::uint64_t seed, int rank);

/// Each rank's share of the mini-batches of data::loader(d, global_batch, seed):
/// the same epoch order (a function of seed and epoch), each global batch cut
/// into shard_range parts. Concatenating the ranks' parts of a step gives the
/// single-process batch, so the union over ranks is the single-process epoch.
/// The global batch must be a multiple of the world size (else
/// std::invalid_argument saying which to use); only the epoch's last, partial
/// batch can be uneven, and a rank whose part is empty gets an empty batch
/// (train on nothing, still call average(share()) with share 0).
class shard_loader {
  public:
    /// `d` is kept by reference and must outlive the loader.
    shard_loader(const data::dataset& d, std::size_t global_batch, std::uint64_t seed, int rank, int world,
                 bool shuffle = true);
    /// Same, with the rank and size of `ctx`.
    shard_loader(const context& ctx, const data::dataset& d, std::size_t global_batch, std::uint64_t seed,
                 bool shuffle = true)
        : shard_loader(d, global_batch, seed, ctx.rank(), ctx.size(), shuffle) {}

    /// Begin epoch `epoch` (the order data::loader gives that epoch).
    void start_epoch(std::size_t epoch);
    /// This rank's part of the next global batch (possibly 0 rows); false at the end of the epoch.
    bool next(data::batch& out);
    /// Rows of the current global batch (all ranks together).
    std::size_t global_rows() const { return global_rows_; }
    /// This rank's rows / global rows of the current batch: the weight for gradient_reducer::average.
    double share() const;
    /// Global batches per epoch (the same on every rank).
    std::size_t batches_per_epoch() const { return order_.batches_per_epoch(); }

  private:
    const data::dataset* data_;
    data::loader order_;  // the single-process order; only order() and its batch count are used
    std::size_t global_batch_;
    int rank_, world_;
    std::size_t pos_ = 0, global_rows_ = 0, local_rows_ = 0;
};

/// Run `write` on rank 0 only (metrics, checkpoints), then make every rank
/// wait for it: afterwards the files exist for any rank that reads them, and
/// an exception on rank 0 is rethrown on every rank as mpi_error with its message.
void root_writes(const context& ctx, const std::function<void()>& write);

extern template class gradient_reducer<float>;
extern template class gradient_reducer<double>;

}  // namespace tapegrad::distributed
