// Not a doctest: rank 1 reaches the first collective 3 s late while the
// timeout is 1 s, so rank 0 must stop the job with a message (tests/distributed.cmake
// matches it) instead of waiting silently.

#include <chrono>
#include <cstdio>
#include <thread>

#include <mpi.h>

#include "distributed/comm.hpp"

int main() {
    tapegrad::distributed::ensure_mpi();
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 1) std::this_thread::sleep_for(std::chrono::seconds(3));
    tapegrad::distributed::context ctx(tapegrad::distributed::context_options{1.0});
    std::printf("rank %d: handshake done (unexpected)\n", ctx.rank());
    return 0;
}
