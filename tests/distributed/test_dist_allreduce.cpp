// The bucketed all-reduce: rank-filled gradients sum to the known total for
// several bucket sizes and odd tensor sizes; buckets cover each tensor once;
// errors name the rank and the call.

#include <doctest/doctest.h>

#include <numeric>

#include "distributed/data_parallel.hpp"
#include "tests/distributed/dist_common.hpp"

using namespace tapegrad;

namespace {

template <class F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

// Element j of tensor k on rank r: (r + 1) * (1000 k + j + 1). Sum over N ranks: N(N+1)/2 * (1000 k + j + 1).
template <class T> T filled(int rank, std::size_t k, std::size_t j) {
    return static_cast<T>((rank + 1) * static_cast<double>(1000 * k + j + 1));
}

template <class T> void check_sums(const distributed::context& ctx, std::size_t bucket_bytes) {
    const std::vector<shape_t> shapes{{1}, {7}, {3, 5}, {13}, {2, 3, 11}, {999}, {1, 1}};
    std::vector<tensor<T>> ps;
    for (std::size_t k = 0; k < shapes.size(); ++k) {
        tensor<T> p = tensor<T>::zeros(shapes[k], true);
        // A gradient through the tape: d sum(p * g) / dp = g.
        xt::xarray<T> g = xt::xarray<T>::from_shape(shapes[k]);
        for (std::size_t j = 0; j < g.size(); ++j) g.data()[j] = filled<T>(ctx.rank(), k, j);
        sum(p * tensor<T>(g)).backward();
        reset_tape<T>();
        ps.push_back(p);
    }
    // Tensor 3 has no gradient on rank 1: it must count as zeros there and exist everywhere afterwards.
    if (ctx.rank() == 1) ps[3].zero_grad();
    distributed::gradient_reducer<T> avg(ctx, ps, {bucket_bytes});
    avg.average(1.0);  // weight 1: a plain sum

    // Every tensor in exactly one bucket, buckets in reverse parameter order, none over the cap unless single.
    std::vector<std::size_t> seen;
    for (const auto& b : avg.buckets()) {
        std::size_t n = 0;
        for (std::size_t k : b) n += ps[k].size();
        CHECK((b.size() == 1 || n * sizeof(T) <= bucket_bytes));
        seen.insert(seen.end(), b.begin(), b.end());
    }
    std::vector<std::size_t> reversed(ps.size());
    std::iota(reversed.rbegin(), reversed.rend(), 0);
    CHECK(seen == reversed);
    CHECK(avg.stats().allreduces == avg.buckets().size());

    const double n = ctx.size();
    for (std::size_t k = 0; k < ps.size(); ++k) {
        REQUIRE(ps[k].has_grad());
        const auto& g = ps[k].grad();
        std::size_t wrong = 0;
        for (std::size_t j = 0; j < g.size(); ++j) {
            double want = n * (n + 1) / 2 * static_cast<double>(1000 * k + j + 1);
            if (k == 3 && ctx.size() > 1) want -= 2 * static_cast<double>(1000 * k + j + 1);  // rank 1 sent zeros
            if (static_cast<double>(g.data()[j]) != want) ++wrong;
        }
        CAPTURE(k);
        CHECK(wrong == 0);
    }
}

}  // namespace

TEST_CASE("rank-filled gradients sum to the known total, for several bucket sizes") {
    distributed::context ctx;
    for (std::size_t bytes : {std::size_t(1), std::size_t(40), std::size_t(500), std::size_t(4096),
                              std::size_t(1) << 20}) {
        CAPTURE(bytes);
        check_sums<double>(ctx, bytes);
        check_sums<float>(ctx, bytes);
    }
}

TEST_CASE("average() with equal shares divides by the number of ranks") {
    distributed::context ctx;
    tensor<double> p = tensor<double>::zeros({3}, true);
    sum(p * tensor<double>(xt::xarray<double>{1.0, 2.0, 3.0}) * static_cast<double>(ctx.rank() + 1)).backward();
    reset_tape<double>();
    distributed::gradient_reducer<double> avg(ctx, {p});
    avg.average();
    const double mean = (ctx.size() + 1) / 2.0;
    CHECK(p.grad()(0) == doctest::Approx(mean));
    CHECK(p.grad()(2) == doctest::Approx(3 * mean));
}

TEST_CASE("an MPI error names the rank and the call") {
    distributed::context ctx;
    double v = 1;
    // Root 99 does not exist: with MPI_ERRORS_RETURN the call returns an error instead of aborting.
    const std::string e = error_of([&] { ctx.check(MPI_Bcast(&v, 1, MPI_DOUBLE, 99, ctx.comm()), "MPI_Bcast"); });
    CHECK(e.find("rank " + std::to_string(ctx.rank()) + ": MPI_Bcast failed: ") == 0);
    CHECK(e.find("MPI_ERR_ROOT") != std::string::npos);
    int bad = 0;
    try {
        ctx.check(MPI_Bcast(&v, 1, MPI_DOUBLE, 99, ctx.comm()), "MPI_Bcast");
    } catch (const distributed::mpi_error& err) {
        bad = 1;
        CHECK(err.rank() == ctx.rank());
        CHECK(err.call() == "MPI_Bcast");
    }
    CHECK(bad == 1);
}

TEST_CASE("a rank whose parameters differ in shape is found before training, on every rank") {
    distributed::context ctx;
    if (ctx.size() < 2) return;
    // Rank 1 builds a wider hidden layer: 0.weight is [9, 5] there, [8, 5] on rank 0.
    auto m = tg_dist::make_model(1, ctx.rank() == 1 ? 9 : 8);
    const std::string e = error_of([&] { distributed::broadcast_module(ctx, *m); });
    if (ctx.rank() == 1) {
        CHECK(e == "rank 1: check_same_shapes parameters differ from rank 0's: tensor 0 is '0.weight [9, 5]' here "
                   "but '0.weight [8, 5]' on rank 0; every rank must build the same model (same code, options and "
                   "data shape)");
    } else {
        CHECK(e.find("rank " + std::to_string(ctx.rank()) + ": check_same_shapes rank(s) 1 have parameters that "
                     "differ") == 0);
    }
    const std::string e2 = error_of([&] { distributed::gradient_reducer<double> avg(ctx, m->parameters()); });
    CHECK(e2.find("rank " + std::to_string(ctx.rank()) + ": gradient_reducer") == 0);
    // The same model everywhere passes.
    auto ok = tg_dist::make_model(1);
    CHECK(error_of([&] { distributed::broadcast_module(ctx, *ok); }).empty());
}

TEST_CASE("root_writes runs on rank 0 only and rethrows its failure on every rank") {
    distributed::context ctx;
    int calls = 0;
    distributed::root_writes(ctx, [&] { ++calls; });
    CHECK(calls == (ctx.is_root() ? 1 : 0));
    const std::string e = error_of([&] { distributed::root_writes(ctx, [] { throw std::runtime_error("disk full"); }); });
    CHECK(e == "rank 0: root_writes failed to write: disk full");
}
