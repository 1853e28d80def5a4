#pragma once
// Files that are never half-written. A file is written aside, every write and
// the close are checked, its data is fsync'ed, it is renamed over the old one
// (the commit point) and the directory is fsync'ed. A crash or a full disk at
// any moment leaves either the old file or the new one, never a mix.
//
// The commit sequence calls fault_point() at each step, so tests can stop the
// program at exactly that point (a crash, a signal, a full disk) without
// timing: set_fault_hook() in-process, or TAPEGRAD_TEST_FAULT in the test
// build of the program (tests/cli).

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>

namespace tapegrad::app {

/// A write that failed (disk full, I/O error, read-only file system); the
/// message names the file and the system's reason.
class write_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// A write_error after the new file was renamed into place: the file there is
/// the new one, but syncing its directory failed, so a power loss may undo it.
class not_durable_error : public write_error {
  public:
    using write_error::write_error;
};

/// Called with the name of each point reached ("checkpoint:synced", "step")
/// and a count (the epoch being committed, or the global step just taken).
using fault_hook = std::function<void(const std::string& point, std::size_t count)>;

/// Install `hook` (an empty function removes it). For tests.
void set_fault_hook(fault_hook hook);

/// Report reaching `point`; calls the hook when one is installed.
void fault_point(const std::string& point, std::size_t count);

/// Install a hook from "point@count:action[,point@count:action...]"; `@count`
/// may be left out (every count). Actions: `kill` (SIGKILL: the process dies
/// on the spot), `sigint` (raise SIGINT: what Ctrl-C does), `enospc` (throw
/// write_error as a full disk would). Throws std::invalid_argument on a bad spec.
void install_test_faults(const std::string& spec);

/// Write `bytes` to `path` through `path`.tmp: written and closed with every
/// call checked, fsync'ed, renamed into place, directory fsync'ed. Fault points
/// are "<what>:writing" (half the bytes written), ":written", ":synced",
/// ":renamed", ":dir-synced". On failure throws write_error naming `path` and
/// leaves any older `path` untouched (not_durable_error after the rename).
void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what,
                           std::size_t count);

/// Make the already written file `tmp` durable and move it to `path`: fsync,
/// rename, fsync of the directory, with the fault points ":synced",
/// ":renamed", ":dir-synced". Throws write_error naming `path`, or
/// not_durable_error when the failure comes after the rename.
void commit_file(const std::string& tmp, const std::string& path, const std::string& what, std::size_t count);

/// While alive, registers the temporaries of a commit in progress, so that a
/// process ending at once (a second Ctrl-C) can remove them first with
/// remove_scratch_files(). Paths longer than the space kept for them are not
/// registered. One scope at a time; scopes do not nest.
class scratch_files_scope {
  public:
    explicit scratch_files_scope(const std::string& a, const std::string& b = std::string());
    ~scratch_files_scope();
    scratch_files_scope(const scratch_files_scope&) = delete;
    scratch_files_scope& operator=(const scratch_files_scope&) = delete;
};

/// Unlink the files of the live scratch_files_scope, if any. Async-signal-safe:
/// for a signal handler that is about to _exit.
void remove_scratch_files() noexcept;

/// Write `bytes` to `path` in place (derived files such as plots), checking
/// every write and the close. Throws write_error naming `path`.
void write_file_checked(const std::string& path, const std::string& bytes);

}  // namespace tapegrad::app
