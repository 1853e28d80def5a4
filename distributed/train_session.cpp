#include "distributed/train_session.hpp"

#include <cstdio>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace tapegrad::distributed {

train_session::train_session() {
    if (!ctx_.is_root()) muted_ = std::cout.rdbuf(nullptr);  // a null buffer: output is dropped
}

train_session::~train_session() {
    if (muted_) {
        std::cout.rdbuf(muted_);
        std::cout.clear();
    }
}

void train_session::start(nn::module<float>& model, const data::dataset& train, std::size_t global_batch,
                          std::uint64_t seed, std::size_t bucket_bytes) {
    global_batch_ = global_batch;
    bucket_bytes_ = bucket_bytes;
    const std::size_t world = static_cast<std::size_t>(ctx_.size());
    loader_ = std::make_unique<shard_loader>(ctx_, train, global_batch, seed);  // checks the divisibility
    const std::size_t tail = train.size() % global_batch;
    if (tail != 0 && tail < world) {
        throw std::invalid_argument("--distributed: the last batch of each epoch has " + std::to_string(tail) +
                                    " example(s) (" + std::to_string(train.size()) + " % " +
                                    std::to_string(global_batch) + ") for " + std::to_string(world) +
                                    " ranks, so some rank would get none: change --batch-size or --val-fraction");
    }
    broadcast_module(ctx_, model);
    reducer_ = std::make_unique<gradient_reducer<float>>(ctx_, model.parameters(), reducer_options{bucket_bytes});
}

double train_session::epoch_loss(std::size_t steps) {
    const double total = ctx_.all_reduce_sum(loss_sum_);
    loss_sum_ = 0;
    return steps ? total / static_cast<double>(steps) : 0.0;
}

std::string train_session::describe() const {
    std::ostringstream os;
    os << ctx_.size() << " ranks x " << global_batch_ / static_cast<std::size_t>(ctx_.size()) << " rows (global batch "
       << global_batch_ << "), " << (reducer_ ? reducer_->buckets().size() : 0) << " all-reduce bucket(s) of <= "
       << bucket_bytes_ / 1024 << " KiB";
    return os.str();
}

std::string train_session::timing() const {
    if (!reducer_ || reducer_->stats().steps == 0) return "no steps";
    const reducer_stats& s = reducer_->stats();
    const double n = static_cast<double>(s.steps);
    char line[160];
    std::snprintf(line, sizeof line, "all-reduce %.3f ms + packing %.3f ms per step over %zu steps (rank %d)",
                  1e3 * s.reduce_seconds / n, 1e3 * s.pack_seconds / n, s.steps, ctx_.rank());
    return line;
}

int run_or_abort(const std::function<int()>& body) {
    ensure_mpi();
    int size = 1, rank = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    try {
        return body();
    } catch (const std::exception& e) {
        if (size == 1) throw;
        std::fprintf(stderr, "tapegrad: error on rank %d of %d: %s\n", rank, size, e.what());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 2);
        throw;  // not reached
    }
}

}  // namespace tapegrad::distributed
