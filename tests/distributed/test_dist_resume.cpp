// A checkpoint written by rank 0 of a data-parallel run resumes on every rank,
// with the same number of ranks (bit for bit) and with one rank (to 1e-12).

#include <doctest/doctest.h>

#include <cstdio>

#include "nn/checkpoint.hpp"
#include "tests/distributed/dist_common.hpp"

using namespace tapegrad;
using namespace tg_dist;

TEST_CASE("resume from a distributed checkpoint with the same ranks and with 1 rank") {
    distributed::context ctx;
    const data::dataset d = make_data();
    const std::string model_file = "dist_resume.npz", optim_file = "dist_resume.optim.npz";
    auto adam = [](nn::module<double>& m) { return optim::adam<double>(m.parameters(), optim::adam_options{0.05}); };

    // Uninterrupted: 7 steps (one epoch of 5, then 2 into the next).
    auto full = make_model(100);
    auto opt_full = adam(*full);
    distributed::broadcast_module(ctx, *full);
    train_distributed(ctx, *full, opt_full, d, 8, 0, 3);
    // Checkpoint after step 3, written by rank 0 only; every rank can read it afterwards.
    // Only rank 0 removes old files: a slower rank removing them would race with its write.
    distributed::root_writes(ctx, [&] {
        std::remove(model_file.c_str());
        std::remove(optim_file.c_str());
        nn::save_npz(*full, model_file);
        opt_full.save_state(optim_file);
    });
    train_distributed(ctx, *full, opt_full, d, 8, 3, 4);

    // Same ranks: a model built from another seed, loaded on every rank, continued for 4 steps.
    {
        auto resumed = make_model(555);
        auto opt = adam(*resumed);
        nn::load_npz(*resumed, model_file);
        opt.load_state(optim_file);
        distributed::broadcast_module(ctx, *resumed);
        train_distributed(ctx, *resumed, opt, d, 8, 3, 4);
        const double diff = max_difference(*resumed, *full);
        std::printf("rank %d/%d: resumed with %d ranks, largest difference %.3e\n", ctx.rank(), ctx.size(), ctx.size(),
                    diff);
        CHECK(diff == 0.0);
    }
    // One rank: every process resumes alone (a communicator of its own) at the same global batch.
    {
        MPI_Comm alone;
        ctx.check(MPI_Comm_split(ctx.comm(), ctx.rank(), 0, &alone), "MPI_Comm_split");
        {
            distributed::context solo(alone);
            CHECK(solo.size() == 1);
            auto resumed = make_model(777);
            auto opt = adam(*resumed);
            nn::load_npz(*resumed, model_file);
            opt.load_state(optim_file);
            train_distributed(solo, *resumed, opt, d, 8, 3, 4);
            const double diff = max_difference(*resumed, *full);
            std::printf("rank %d/%d: resumed with 1 rank, largest difference %.3e\n", ctx.rank(), ctx.size(), diff);
            CHECK(diff <= 1e-12);
            auto single = make_model(888);  // and one process without MPI at all
            auto opt_single = adam(*single);
            nn::load_npz(*single, model_file);
            opt_single.load_state(optim_file);
            train_single(*single, opt_single, d, 8, 3, 4);
            CHECK(max_difference(*single, *full) <= 1e-12);
        }
        MPI_Comm_free(&alone);
    }
    ctx.barrier();  // nobody deletes the files while another rank reads them
    if (ctx.is_root()) {
        std::remove(model_file.c_str());
        std::remove(optim_file.c_str());
    }
}
