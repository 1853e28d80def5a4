#pragma once
// An MPI communicator for data-parallel training: initialisation, errors that
// name the rank and the call, and a first collective with a timeout.
//
//     distributed::context ctx;                 // MPI_Init if needed, handshake
//     if (ctx.is_root()) std::cout << "rank 0 of " << ctx.size() << "\n";
//
// Every MPI call of this layer goes through context::check: the communicator's
// error handler is MPI_ERRORS_RETURN, so a failed call becomes an mpi_error
// ("rank 1: MPI_Allreduce failed: ...") instead of Open MPI's default abort.

#include <mpi.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace tapegrad::distributed {

/// A failed MPI call, or a set-up that cannot train (shapes differ, timeout):
/// the message starts with "rank <r>: " and names the call.
class mpi_error : public std::runtime_error {
  public:
    /// `call` is the MPI function or the check that failed ("MPI_Allreduce").
    mpi_error(int rank, const std::string& call, const std::string& detail);
    /// The rank that raised it.
    int rank() const { return rank_; }
    /// The MPI function or check that failed.
    const std::string& call() const { return call_; }

  private:
    int rank_;
    std::string call_;
};

/// The MPI datatype of a scalar type (float, double, int, std::uint64_t).
template <class T> MPI_Datatype mpi_type();

/// Settings of a context.
struct context_options {
    /// Seconds the first collective (the handshake in the constructor) may take
    /// before the run is aborted with a message. MPI collectives have no
    /// timeout of their own, so only this one is bounded; later collectives rely
    /// on mpirun killing the job when a rank dies. 0 waits forever.
    double first_collective_timeout = 60;
};

/// One communicator (MPI_COMM_WORLD by default) with its rank and size.
/// Initialises MPI on first use (MPI_THREAD_FUNNELED) and finalises it at
/// program exit; cheap to construct more than once.
class context {
  public:
    /// The world communicator. Runs a barrier with a timeout so that a rank
    /// that never arrives (a different program, a crashed rank) stops the job
    /// with a message instead of a silent hang.
    explicit context(context_options o = {});
    /// A communicator made elsewhere (e.g. MPI_Comm_split); not freed here.
    explicit context(MPI_Comm comm, context_options o = {});

    /// This process's rank, 0..size()-1.
    int rank() const { return rank_; }
    /// Number of ranks.
    int size() const { return size_; }
    /// Whether this is rank 0, the one that writes metrics and checkpoints.
    bool is_root() const { return rank_ == 0; }
    /// The communicator.
    MPI_Comm comm() const { return comm_; }

    /// Throw mpi_error("rank r: <call> failed: <MPI's error string>") unless rc is MPI_SUCCESS.
    void check(int rc, const char* call) const;
    /// Throw mpi_error for a check of ours (not an MPI return code).
    [[noreturn]] void fail(const std::string& call, const std::string& detail) const;

    /// In-place sum over ranks of n values.
    template <class T> void all_reduce_sum(T* data, std::size_t n) const;
    /// Sum over ranks of one value.
    template <class T> T all_reduce_sum(T v) const {
        all_reduce_sum(&v, 1);
        return v;
    }
    /// Rank 0's n values to every rank.
    template <class T> void broadcast(T* data, std::size_t n) const;
    /// A barrier; with timeout > 0 it polls MPI_Ibarrier and, past the deadline,
    /// prints which rank waited for what and calls MPI_Abort (a pending
    /// collective cannot be cancelled, so the job cannot continue).
    void barrier(double timeout_seconds = 0) const;

  private:
    MPI_Comm comm_;
    int rank_ = 0;
    int size_ = 1;
};

/// MPI_Init_thread if MPI is not initialised yet (MPI_Finalize runs at exit).
void ensure_mpi();

}  // namespace tapegrad::distributed
