// Data parallel over the ranks of mpirun (2 in the suite) against one process
// at the same global batch: parameters equal to 1e-12 in float64 after 5 steps
// (the PyTorch DDP test's method), and the sharding sampler's epoch.

#include <doctest/doctest.h>

#include <cstdio>

#include "tests/distributed/dist_common.hpp"

using namespace tapegrad;
using namespace tg_dist;

namespace {

template <class F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

double max_change(const nn::module<double>& m, const std::vector<xt::xarray<double>>& before) {
    double worst = 0;
    const auto ps = m.parameters();
    for (std::size_t i = 0; i < ps.size(); ++i)
        worst = std::max(worst, static_cast<double>(xt::amax(xt::abs(ps[i].value() - before[i]))()));
    return worst;
}

}  // namespace

TEST_CASE("data parallel training equals one process after 5 steps (float64, Adam and SGD)") {
    distributed::context ctx;
    const data::dataset d = make_data();
    for (const char* which : {"adam", "sgd"}) {
        CAPTURE(which);
        // Each rank starts from its own initialisation: broadcast_module must replace it with rank 0's.
        auto dist = make_model(100 + static_cast<std::uint64_t>(ctx.rank()));
        distributed::broadcast_module(ctx, *dist);
        auto single = make_model(100);
        CHECK(max_difference(*dist, *single) == 0.0);
        std::vector<xt::xarray<double>> before;
        for (const auto& p : single->parameters()) before.push_back(p.value());

        auto opt = [&](nn::module<double>& m) -> std::unique_ptr<optim::optimizer<double>> {
            if (std::string(which) == "adam") return std::make_unique<optim::adam<double>>(m.parameters(), optim::adam_options{0.05});
            optim::sgd_options o;
            o.lr = 0.2;
            o.momentum = 0.9;
            o.weight_decay = 1e-3;
            return std::make_unique<optim::sgd<double>>(m.parameters(), o);
        };
        auto opt_dist = opt(*dist), opt_single = opt(*single);
        // 5 steps of global batch 8 over 37 rows: the 5th is the partial batch of 5 (3 + 2 rows at 2 ranks).
        train_distributed(ctx, *dist, *opt_dist, d, 8, 0, 5, {64});
        train_single(*single, *opt_single, d, 8, 0, 5);
        const double diff = max_difference(*dist, *single);
        std::printf("rank %d/%d %s: largest |distributed - single| after 5 steps = %.3e (parameters moved by up to %.3f)\n",
                    ctx.rank(), ctx.size(), which, diff, max_change(*single, before));
        CHECK(diff <= 1e-12);
        CHECK(max_change(*single, before) > 1e-2);  // the steps did something
    }
}

TEST_CASE("shard_loader: the ranks' parts of each step are the single-process batch, in order") {
    const data::dataset d = make_data();
    for (int world = 1; world <= 4; ++world) {
        const std::size_t batch = 3 * static_cast<std::size_t>(world);  // 37 rows: a ragged last batch
        CAPTURE(world);
        for (std::size_t epoch : {0u, 1u, 5u}) {
            data::loader one(d, batch, 11);
            one.start_epoch(epoch);
            std::vector<distributed::shard_loader> parts;
            for (int r = 0; r < world; ++r) {
                parts.emplace_back(d, batch, 11, r, world);
                parts.back().start_epoch(epoch);
                CHECK(parts.back().batches_per_epoch() == one.batches_per_epoch());
            }
            data::batch whole, part;
            std::size_t seen = 0;
            while (one.next(whole)) {
                std::vector<std::size_t> labels;
                std::vector<float> xs;
                double shares = 0;
                for (auto& p : parts) {
                    REQUIRE(p.next(part));
                    CHECK(p.global_rows() == whole.y.size());
                    labels.insert(labels.end(), part.y.begin(), part.y.end());
                    xs.insert(xs.end(), part.x.begin(), part.x.end());
                    shares += p.share();
                }
                CHECK(labels == whole.y);
                CHECK(xs == std::vector<float>(whole.x.begin(), whole.x.end()));
                CHECK(shares == doctest::Approx(1.0).epsilon(1e-15));
                seen += whole.y.size();
            }
            CHECK(seen == d.size());
            for (auto& p : parts) CHECK_FALSE(p.next(part));
        }
    }
    // Fewer rows than ranks in the last batch: 37 = 4 * 9 + 1, so ranks 1..3 get an empty part.
    distributed::shard_loader last(d, 9 * 4, 2, 3, 4);
    data::batch b;
    REQUIRE(last.next(b));
    CHECK(b.y.size() == 9);
    REQUIRE(last.next(b));
    CHECK(b.y.empty());
    CHECK(last.share() == 0.0);
}

TEST_CASE("shard_range splits evenly, larger parts first") {
    CHECK(distributed::shard_range(8, 0, 2) == std::pair<std::size_t, std::size_t>{0, 4});
    CHECK(distributed::shard_range(8, 1, 2) == std::pair<std::size_t, std::size_t>{4, 8});
    CHECK(distributed::shard_range(5, 0, 2) == std::pair<std::size_t, std::size_t>{0, 3});
    CHECK(distributed::shard_range(5, 1, 2) == std::pair<std::size_t, std::size_t>{3, 5});
    CHECK(distributed::shard_range(1, 2, 3) == std::pair<std::size_t, std::size_t>{1, 1});
}

TEST_CASE("a global batch the world size does not divide is refused with what to use") {
    const data::dataset d = make_data();
    const std::string e = error_of([&] { distributed::shard_loader l(d, 10, 1, 0, 3); });
    CHECK(e == "shard_loader: the global batch 10 does not split evenly across 3 ranks: use a multiple of 3 "
               "(e.g. 12) or another number of ranks");
    CHECK(error_of([&] { distributed::shard_loader l(d, 8, 1, 2, 2); }).find("rank 2 of 2 ranks is out of range") !=
          std::string::npos);
}

TEST_CASE("rank_seed gives each rank its own dropout seed, rank 0 the run's") {
    CHECK(distributed::rank_seed(5, 0) == 5);
    CHECK(distributed::rank_seed(5, 1) != distributed::rank_seed(5, 0));
    CHECK(distributed::rank_seed(5, 1) != distributed::rank_seed(5, 2));
}
