#include "distributed/comm.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace tapegrad::distributed {

mpi_error::mpi_error(int rank, const std::string& call, const std::string& detail)
    : std::runtime_error("rank " + std::to_string(rank) + ": " + call + " " + detail), rank_(rank), call_(call) {}

template <> MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <> MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <> MPI_Datatype mpi_type<int>() { return MPI_INT; }
template <> MPI_Datatype mpi_type<std::uint64_t>() { return MPI_UINT64_T; }

namespace {

void finalize_at_exit() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

}  // namespace

void ensure_mpi() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    // FUNNELED: only the main thread calls MPI; the engine's own threads never do.
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        throw mpi_error(-1, "MPI_Init_thread", "failed: run the program under mpirun, or check the Open MPI install");
    // Errors during set-up of later communicators must return too.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    std::atexit(finalize_at_exit);
}

context::context(context_options o) : context(MPI_COMM_NULL, o) {}

context::context(MPI_Comm comm, context_options o) {
    ensure_mpi();
    comm_ = comm == MPI_COMM_NULL ? MPI_COMM_WORLD : comm;
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    barrier(o.first_collective_timeout);
}

void context::check(int rc, const char* call) const {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = std::snprintf(text, sizeof text, "error code %d", rc);
    fail(call, "failed: " + std::string(text, static_cast<std::size_t>(len)));
}

void context::fail(const std::string& call, const std::string& detail) const { throw mpi_error(rank_, call, detail); }

// MPI counts are int: larger buffers go in chunks.
constexpr std::size_t max_count = INT_MAX / 2;

template <class T> void context::all_reduce_sum(T* data, std::size_t n) const {
    for (std::size_t at = 0; at < n; at += max_count) {
        const int c = static_cast<int>(std::min(max_count, n - at));
        check(MPI_Allreduce(MPI_IN_PLACE, data + at, c, mpi_type<T>(), MPI_SUM, comm_), "MPI_Allreduce");
    }
}

template <class T> void context::broadcast(T* data, std::size_t n) const {
    for (std::size_t at = 0; at < n; at += max_count) {
        const int c = static_cast<int>(std::min(max_count, n - at));
        check(MPI_Bcast(data + at, c, mpi_type<T>(), 0, comm_), "MPI_Bcast");
    }
}

void context::barrier(double timeout_seconds) const {
    if (!(timeout_seconds > 0)) {
        check(MPI_Barrier(comm_), "MPI_Barrier");
        return;
    }
    MPI_Request req;
    check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
    for (;;) {
        int done = 0;
        check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        if (done) return;
        if (std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    std::fprintf(stderr,
                 "rank %d: MPI_Ibarrier (the first collective) did not complete within %g s: not all %d ranks "
                 "reached it. Start every rank with the same program and arguments (mpirun -np N ...); "
                 "aborting the job.\n",
                 rank_, timeout_seconds, size_);
    std::fflush(stderr);
    MPI_Abort(comm_, 3);
    std::abort();  // MPI_Abort does not return
}

#define TAPEGRAD_DIST_INSTANTIATE(T)                                        \
    template void context::all_reduce_sum<T>(T*, std::size_t) const;      \
    template void context::broadcast<T>(T*, std::size_t) const;
TAPEGRAD_DIST_INSTANTIATE(float)
TAPEGRAD_DIST_INSTANTIATE(double)
TAPEGRAD_DIST_INSTANTIATE(int)
TAPEGRAD_DIST_INSTANTIATE(std::uint64_t)
#undef TAPEGRAD_DIST_INSTANTIATE

}  // namespace tapegrad::distributed
