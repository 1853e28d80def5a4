#include "distributed/data_parallel.hpp"

#include "autograd/detail/trace.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

namespace tapegrad::distributed {

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

template <class T> std::vector<std::pair<std::string, tensor<T>>> all_tensors(const nn::module<T>& m) {
    auto v = m.named_parameters();
    for (auto& b : m.named_buffers()) v.push_back(std::move(b));
    return v;
}

// One line per tensor, "name [shape]": what every rank must agree on.
template <class T> std::vector<std::string> signature(const std::vector<std::pair<std::string, tensor<T>>>& ts) {
    std::vector<std::string> lines;
    for (const auto& [name, t] : ts) lines.push_back(name + " " + shape_str(t.shape()));
    return lines;
}

std::string join_lines(const std::vector<std::string>& lines) {
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
}

std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < s.size()) {
        const std::size_t nl = s.find('\n', at);
        out.push_back(s.substr(at, nl - at));
        at = nl + 1;
    }
    return out;
}

// Rank 0's string on every rank (length, then bytes).
std::string broadcast_string(const context& ctx, std::string s) {
    std::uint64_t n = s.size();
    ctx.broadcast(&n, 1);
    s.resize(n);
    if (n) ctx.check(MPI_Bcast(s.data(), static_cast<int>(n), MPI_CHAR, 0, ctx.comm()), "MPI_Bcast");
    return s;
}

// Empty when `mine` equals rank 0's signature, else what differs.
std::string first_difference(const std::vector<std::string>& mine, const std::vector<std::string>& root) {
    for (std::size_t i = 0; i < std::min(mine.size(), root.size()); ++i) {
        if (mine[i] != root[i])
            return "tensor " + std::to_string(i) + " is '" + mine[i] + "' here but '" + root[i] + "' on rank 0";
    }
    if (mine.size() != root.size())
        return std::to_string(mine.size()) + " parameters and buffers here but " + std::to_string(root.size()) +
               " on rank 0";
    return {};
}

}  // namespace

template <class T> void check_same_shapes(const context& ctx, const nn::module<T>& m) {
    const std::vector<std::string> mine = signature(all_tensors(m));
    const std::vector<std::string> root = split_lines(broadcast_string(ctx, join_lines(mine)));
    const std::string diff = first_difference(mine, root);
    std::vector<int> bad(static_cast<std::size_t>(ctx.size()), 0);
    bad[static_cast<std::size_t>(ctx.rank())] = diff.empty() ? 0 : 1;
    ctx.all_reduce_sum(bad.data(), bad.size());
    std::string ranks;
    for (std::size_t r = 0; r < bad.size(); ++r)
        if (bad[r]) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (ranks.empty()) return;
    const std::string what = "every rank must build the same model (same code, options and data shape)";
    if (!diff.empty()) ctx.fail("check_same_shapes", "parameters differ from rank 0's: " + diff + "; " + what);
    ctx.fail("check_same_shapes", "rank(s) " + ranks + " have parameters that differ from rank 0's in shape (see " +
                                      "their message); " + what);
}

template <class T> void broadcast_module(const context& ctx, nn::module<T>& m) {
    check_same_shapes(ctx, m);
    for (auto& [name, t] : all_tensors(m)) {
        auto& v = t.mutable_value();
        ctx.broadcast(v.data(), v.size());
    }
}

// ------------------------------------------------------------- reducer

template <class T>
gradient_reducer<T>::gradient_reducer(const context& ctx, std::vector<tensor<T>> params, reducer_options o)
    : ctx_(&ctx), params_(std::move(params)) {
    std::vector<std::string> sig;
    for (std::size_t i = 0; i < params_.size(); ++i) {
        const tensor<T>& p = params_[i];
        if (!p.defined() || !p.is_leaf() || !p.requires_grad())
            ctx.fail("gradient_reducer", "parameter " + std::to_string(i) + " is not a leaf that requires grad");
        sig.push_back(std::to_string(i) + " " + shape_str(p.shape()));
    }
    // Same check as check_same_shapes, over this list.
    const std::string diff = first_difference(sig, split_lines(broadcast_string(ctx, join_lines(sig))));
    if (ctx.all_reduce_sum(diff.empty() ? 0 : 1) != 0) {
        if (!diff.empty()) ctx.fail("gradient_reducer", "parameters differ from rank 0's: " + diff);
        ctx.fail("gradient_reducer", "another rank's parameters differ from rank 0's (see its message)");
    }
    const std::size_t cap = std::max<std::size_t>(1, o.bucket_bytes / sizeof(T));
    std::size_t fill = 0, largest = 0;
    for (std::size_t k = params_.size(); k-- > 0;) {
        const std::size_t n = params_[k].size();
        if (buckets_.empty() || fill + n > cap) {
            buckets_.emplace_back();
            fill = 0;
        }
        buckets_.back().push_back(k);
        fill += n;
        largest = std::max(largest, fill);
    }
    buffer_.resize(largest);
}

template <class T> void gradient_reducer<T>::average(double weight) {
    if (detail::tracer<T>* t = detail::active_tracer<T>())  // its weight and exchange change per step
        t->not_replayable("gradient_reducer::average ran inside the compiled function; distributed steps run eagerly");
    const T w = static_cast<T>(weight);
    if (ctx_->size() == 1) {  // nothing to exchange: scale in place, skip the copies
        for (tensor<T>& p : params_) {
            node<T>* nd = p.node_ptr();
            if (!p.has_grad()) {
                nd->grad.resize(nd->value.shape());
                std::fill(nd->grad.begin(), nd->grad.end(), T(0));
                nd->grad_defined = true;
            } else if (w != T(1)) {
                for (T& g : nd->grad) g *= w;
            }
        }
        ++stats_.steps;
        return;
    }
    for (const auto& bucket : buckets_) {
        auto t0 = clock_type::now();
        std::size_t at = 0;
        for (std::size_t k : bucket) {
            tensor<T>& p = params_[k];
            const std::size_t n = p.size();
            if (p.has_grad()) {
                const T* g = p.grad().data();
                for (std::size_t i = 0; i < n; ++i) buffer_[at + i] = w * g[i];
            } else {
                std::fill_n(buffer_.begin() + static_cast<std::ptrdiff_t>(at), n, T(0));
            }
            at += n;
        }
        stats_.pack_seconds += since(t0);
        t0 = clock_type::now();
        ctx_->all_reduce_sum(buffer_.data(), at);
        stats_.reduce_seconds += since(t0);
        ++stats_.allreduces;
        t0 = clock_type::now();
        at = 0;
        for (std::size_t k : bucket) {
            tensor<T>& p = params_[k];
            node<T>* nd = p.node_ptr();
            if (!p.has_grad()) {  // a rank with no rows this step: the average still arrives
                nd->grad.resize(nd->value.shape());
                nd->grad_defined = true;
            }
            std::copy_n(buffer_.begin() + static_cast<std::ptrdiff_t>(at), p.size(), nd->grad.data());
            at += p.size();
        }
        stats_.pack_seconds += since(t0);
    }
    ++stats_.steps;
}

// -------------------------------------------------------------- sampler

std::pair<std::size_t, std::size_t> shard_range(std::size_t rows, int rank, int world) {
    const std::size_t w = static_cast<std::size_t>(world), r = static_cast<std::size_t>(rank);
    const std::size_t base = rows / w, extra = rows % w;
    const std::size_t first = r * base + std::min(r, extra);
    return {first, first + base + (r < extra ? 1 : 0)};
}

std::uint64_t rank_seed(std::uint64_t seed, int rank) {
    return seed + 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(rank);
}

namespace {
std::size_t checked_batch(std::size_t global_batch, int rank, int world) {
    if (world < 1 || rank < 0 || rank >= world)
        throw std::invalid_argument("shard_loader: rank " + std::to_string(rank) + " of " + std::to_string(world) +
                                    " ranks is out of range");
    if (global_batch == 0 || global_batch % static_cast<std::size_t>(world) != 0) {
        const std::size_t w = static_cast<std::size_t>(world);
        const std::size_t up = std::max<std::size_t>(w, (global_batch + w - 1) / w * w);
        throw std::invalid_argument("shard_loader: the global batch " + std::to_string(global_batch) +
                                    " does not split evenly across " + std::to_string(world) +
                                    " ranks: use a multiple of " + std::to_string(world) + " (e.g. " +
                                    std::to_string(up) + ") or another number of ranks");
    }
    return global_batch;
}
}  // namespace

shard_loader::shard_loader(const data::dataset& d, std::size_t global_batch, std::uint64_t seed, int rank, int world,
                           bool shuffle)
    : data_(&d),
      order_(d, checked_batch(global_batch, rank, world), seed, shuffle),
      global_batch_(global_batch),
      rank_(rank),
      world_(world) {}

void shard_loader::start_epoch(std::size_t epoch) {
    order_.start_epoch(epoch);
    pos_ = 0;
    global_rows_ = local_rows_ = 0;
}

bool shard_loader::next(data::batch& out) {
    const std::vector<std::size_t>& order = order_.order();
    const std::size_t n = order.size();
    if (pos_ >= n) return false;
    global_rows_ = std::min(global_batch_, n - pos_);
    const auto [first, last] = shard_range(global_rows_, rank_, world_);
    local_rows_ = last - first;
    const std::size_t f = data_->features;
    if (out.x.dimension() != 2 || out.x.shape()[0] != local_rows_ || out.x.shape()[1] != f)
        out.x.resize({local_rows_, f});
    out.y.resize(local_rows_);
    for (std::size_t i = 0; i < local_rows_; ++i) {
        const std::size_t row = order[pos_ + first + i];
        std::copy_n(data_->x.data() + row * f, f, out.x.data() + i * f);
        out.y[i] = data_->y[row];
    }
    pos_ += global_rows_;
    return true;
}

double shard_loader::share() const {
    return global_rows_ ? static_cast<double>(local_rows_) / static_cast<double>(global_rows_) : 0.0;
}

// ---------------------------------------------------------------- output

void root_writes(const context& ctx, const std::function<void()>& write) {
    std::string error;
    if (ctx.is_root()) {
        try {
            write();
        } catch (const std::exception& e) {
            error = e.what();
            if (error.empty()) error = "unknown error";
        }
    }
    error = broadcast_string(ctx, error);
    if (!error.empty()) throw mpi_error(0, "root_writes", "failed to write: " + error);
}

template void check_same_shapes<float>(const context&, const nn::module<float>&);
template void check_same_shapes<double>(const context&, const nn::module<double>&);
template void broadcast_module<float>(const context&, nn::module<float>&);
template void broadcast_module<double>(const context&, nn::module<double>&);
template class gradient_reducer<float>;
template class gradient_reducer<double>;

}  // namespace tapegrad::distributed
