// Scaling of one data-parallel training step, for docs/distributed.md:
//
//     mpirun -np 1 tapegrad_distributed_bench      # 1 process
//     mpirun -np 2 --allow-run-as-root --oversubscribe tapegrad_distributed_bench
//
// The relu256 case of benchmarks/cases.hpp: 784-256-128-10 ReLU MLP, cross-
// entropy, Adam, global batch 256 split over the ranks, one BLAS thread per
// rank. Prints (rank 0) the median time per step, the time inside
// MPI_Allreduce and in packing per step, and an overlap probe: whether an
// MPI_Iallreduce progresses while the rank computes (Open MPI progresses
// non-blocking collectives only inside MPI calls unless it has a progress thread).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/float_env.hpp"
#include "autograd/ops.hpp"
#include "distributed/data_parallel.hpp"
#include "nn/layers.hpp"
#include "optim/optimizer.hpp"

using namespace tapegrad;
using clock_type = std::chrono::steady_clock;

namespace {

double since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

std::size_t arg(int argc, char** argv, const char* name, std::size_t dflt) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return std::stoul(argv[i + 1]);
    return dflt;
}

}  // namespace

int main(int argc, char** argv) {
    flush_denormals_scope ftz;
    blas::set_num_threads(1);
    distributed::context ctx;
    const std::size_t global = arg(argc, argv, "--global-batch", 256);
    const std::size_t steps = arg(argc, argv, "--steps", 40);
    const std::size_t repeats = arg(argc, argv, "--repeats", 7);
    const std::size_t bucket_kb = arg(argc, argv, "--bucket-kb", 4096);
    const auto [first, last] = distributed::shard_range(global, ctx.rank(), ctx.size());
    const std::size_t local = last - first;

    std::mt19937_64 rng(42);
    auto net = nn::mlp<float>({784, 256, 128, 10}, nn::activation::relu, rng);
    distributed::broadcast_module(ctx, *net);
    optim::adam<float> opt(net->parameters(), optim::adam_options{1e-3});
    distributed::gradient_reducer<float> avg(ctx, net->parameters(), {bucket_kb * 1024});

    std::mt19937_64 data_rng(1000 + static_cast<unsigned>(ctx.rank()));
    std::normal_distribution<float> nd;
    xt::xarray<float> x = xt::xarray<float>::from_shape({local, std::size_t(784)});
    for (auto& v : x) v = nd(data_rng);
    std::vector<std::size_t> y(local);
    for (auto& v : y) v = data_rng() % 10;
    const double share = static_cast<double>(local) / static_cast<double>(global);

    auto compute = [&] {
        const tensor<float> loss = cross_entropy(net->forward(tensor<float>(x)), y);
        loss.backward();
    };
    auto step = [&] {
        compute();
        avg.average(share);
        opt.step();
        opt.zero_grad();
        reset_tape<float>();
    };
    for (int i = 0; i < 10; ++i) step();

    std::vector<double> per_step, reduce, pack;
    for (std::size_t r = 0; r < repeats; ++r) {
        ctx.barrier();
        avg.reset_stats();
        const auto t0 = clock_type::now();
        for (std::size_t s = 0; s < steps; ++s) step();
        per_step.push_back(since(t0) / static_cast<double>(steps));
        reduce.push_back(avg.stats().reduce_seconds / static_cast<double>(steps));
        pack.push_back(avg.stats().pack_seconds / static_cast<double>(steps));
    }

    // Overlap probe on one flat buffer of all gradients (n floats).
    std::size_t n = 0;
    for (const auto& p : net->parameters()) n += p.size();
    std::vector<float> buf(n, 1.f);
    std::vector<double> t_compute, t_block, t_overlap, t_alone;
    for (std::size_t r = 0; r < repeats; ++r) {
        ctx.barrier();
        auto t0 = clock_type::now();
        for (std::size_t s = 0; s < steps; ++s) {
            compute();
            opt.zero_grad();
            reset_tape<float>();
        }
        t_compute.push_back(since(t0) / static_cast<double>(steps));
        ctx.barrier();
        t0 = clock_type::now();
        for (std::size_t s = 0; s < steps; ++s) {
            compute();
            ctx.all_reduce_sum(buf.data(), n);
            opt.zero_grad();
            reset_tape<float>();
        }
        t_block.push_back(since(t0) / static_cast<double>(steps));
        ctx.barrier();
        t0 = clock_type::now();
        for (std::size_t s = 0; s < steps; ++s) {
            MPI_Request req;
            ctx.check(MPI_Iallreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, ctx.comm(), &req),
                      "MPI_Iallreduce");
            compute();  // would hide the reduction if it progressed in the background
            ctx.check(MPI_Wait(&req, MPI_STATUS_IGNORE), "MPI_Wait");
            opt.zero_grad();
            reset_tape<float>();
        }
        t_overlap.push_back(since(t0) / static_cast<double>(steps));
        ctx.barrier();
        t0 = clock_type::now();
        for (std::size_t s = 0; s < steps; ++s) ctx.all_reduce_sum(buf.data(), n);  // back to back, no compute
        t_alone.push_back(since(t0) / static_cast<double>(steps));
        std::fill(buf.begin(), buf.end(), 1.f);
    }

    if (ctx.is_root()) {
        std::printf("tapegrad_distributed_bench: relu256 (784-256-128-10 ReLU, CE, Adam), global batch %zu, "
                    "%d rank(s) x %zu rows, 1 BLAS thread, %zu steps x %zu repeats, buckets %zu KiB (%zu bucket(s), "
                    "%zu floats)\n",
                    global, ctx.size(), local, steps, repeats, bucket_kb, avg.buckets().size(), n);
        std::printf("step            %8.3f ms (median)\n", 1e3 * median(per_step));
        std::printf("  all-reduce    %8.3f ms per step (inside MPI_Allreduce, incl. waiting)\n", 1e3 * median(reduce));
        std::printf("  pack/unpack   %8.3f ms per step\n", 1e3 * median(pack));
        std::printf("overlap probe: compute %.3f ms, compute + blocking all-reduce %.3f ms, "
                    "Iallreduce started before compute %.3f ms\n",
                    1e3 * median(t_compute), 1e3 * median(t_block), 1e3 * median(t_overlap));
        std::printf("all-reduce of the %zu floats alone, back to back: %.3f ms\n", n, 1e3 * median(t_alone));
    }
    return 0;
}
