#pragma once
// What `tapegrad train --distributed` adds to the trainer's loop (apps/trainer.cpp
// keeps only a few guarded calls): the MPI context, rank 0's weights on every
// rank, this rank's share of each global batch, gradient averaging, the
// epoch's loss over all ranks, and output from rank 0 only.

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>

#include "distributed/data_parallel.hpp"

namespace tapegrad::distributed {

/// One data-parallel training run in float (the trainer's type).
class train_session {
  public:
    /// Join the job (MPI_Init, the first collective with its timeout). On every
    /// rank but 0, std::cout is muted until destruction: progress, per-epoch
    /// lines and summaries come from rank 0 alone.
    train_session();
    ~train_session();
    train_session(const train_session&) = delete;
    train_session& operator=(const train_session&) = delete;

    /// The communicator.
    const context& ctx() const { return ctx_; }
    /// Rank 0: the only rank that writes metrics, plots and checkpoints.
    bool is_root() const { return ctx_.is_root(); }

    /// Once the model exists (and a checkpoint, if any, is loaded on every
    /// rank): check shapes and copy rank 0's parameters and buffers everywhere,
    /// and shard data::loader(train, global_batch, seed) across the ranks.
    /// Throws std::invalid_argument when the world size does not divide the
    /// global batch, or when the epoch's last batch would leave a rank empty.
    void start(nn::module<float>& model, const data::dataset& train, std::size_t global_batch, std::uint64_t seed,
               std::size_t bucket_bytes);
    /// This rank's batches (the single-process order, cut per rank).
    shard_loader& loader() { return *loader_; }
    /// After backward: grad = mean over the global batch, on every rank.
    void reduce_gradients() { reducer_->average(loader_->share()); }
    /// Count this step's loss (the mean over this rank's rows) for the epoch.
    void add_loss(double local_mean) { loss_sum_ += local_mean * loader_->share(); }
    /// The sum so far of this epoch's global batch losses (one all-reduce; the sum goes on).
    double epoch_loss_sum() const { return ctx_.all_reduce_sum(loss_sum_); }
    /// Count the losses of the steps an interrupted epoch already took (a mid-epoch resume), once.
    void resume_epoch_loss(double sum) {
        if (is_root()) loss_sum_ += sum;
    }
    /// Whether any rank was asked to stop (one all-reduce), so that every rank leaves at the same step.
    bool any(bool flag) const { return ctx_.all_reduce_sum(flag ? 1.0 : 0.0) > 0; }
    /// Mean over the epoch's `steps` of the global batches' losses (one all-reduce); restarts the sum.
    double epoch_loss(std::size_t steps);
    /// "2 ranks x 64 rows (global batch 128), 1 all-reduce bucket(s) of <= 4096 KiB"
    std::string describe() const;
    /// "all-reduce 0.41 ms + packing 0.05 ms per step over 430 steps" (this rank's timings).
    std::string timing() const;

  private:
    context ctx_;
    std::size_t global_batch_ = 0, bucket_bytes_ = 0;
    std::unique_ptr<shard_loader> loader_;
    std::unique_ptr<gradient_reducer<float>> reducer_;
    double loss_sum_ = 0;
    std::streambuf* muted_ = nullptr;  // std::cout's buffer while muted
};

/// Run `body` under MPI. If it throws and the job has more than one rank, print
/// "tapegrad: error on rank r: ..." and MPI_Abort the job: the other ranks may
/// be waiting for this one in a collective and would otherwise hang. With one
/// rank the exception propagates as usual.
int run_or_abort(const std::function<int()>& body);

}  // namespace tapegrad::distributed
