// Atomic, checked file writes and the fault-injection points (durable_io.hpp).

#include "apps/durable_io.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace tapegrad::app {

namespace {

fault_hook& hook_slot() {
    static fault_hook h;
    return h;
}

[[noreturn]] void fail(const std::string& path, const std::string& doing, int err) {
    std::string msg = path + ": " + doing + " failed: " + std::strerror(err);
    if (err == ENOSPC || err == EDQUOT || err == EFBIG) msg += " (the disk or the file size limit is full: free space or use another --out)";
    throw write_error(msg);
}

/// Write all of `data`, retrying short writes and EINTR.
void write_all(int fd, const char* data, std::size_t n, const std::string& path) {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail(path, "writing", errno);
        }
        data += w;
        n -= static_cast<std::size_t>(w);
    }
}

void fsync_path(const std::string& path, bool directory) {
    const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) fail(path, directory ? "opening the directory to sync" : "opening to sync", errno);
    int rc;
    do rc = ::fsync(fd);
    while (rc != 0 && errno == EINTR);
    const int err = errno;
    ::close(fd);
    // Some file systems cannot sync a directory; the rename is then as durable as they allow.
    if (rc != 0 && !(directory && (err == EINVAL || err == ENOTSUP))) fail(path, "fsync", err);
}

std::string parent_dir(const std::string& path) {
    const std::string p = std::filesystem::path(path).parent_path().string();
    return p.empty() ? "." : p;
}

}  // namespace

void set_fault_hook(fault_hook hook) { hook_slot() = std::move(hook); }

void fault_point(const std::string& point, std::size_t count) {
    if (hook_slot()) hook_slot()(point, count);
}

void install_test_faults(const std::string& spec) {
    struct rule {
        std::string point, action;
        bool any_count = true;
        std::size_t count = 0;
    };
    std::vector<rule> rules;
    std::size_t start = 0;
    while (start <= spec.size()) {
        std::size_t end = spec.find(',', start);
        if (end == std::string::npos) end = spec.size();
        const std::string item = spec.substr(start, end - start);
        start = end + 1;
        if (item.empty()) continue;
        const auto colon = item.rfind(':');
        if (colon == std::string::npos) throw std::invalid_argument("TAPEGRAD_TEST_FAULT: '" + item + "' has no :action");
        rule r;
        r.action = item.substr(colon + 1);
        r.point = item.substr(0, colon);
        if (r.action != "kill" && r.action != "sigint" && r.action != "enospc")
            throw std::invalid_argument("TAPEGRAD_TEST_FAULT: action '" + r.action + "' is not kill, sigint or enospc");
        const auto at = r.point.find('@');
        if (at != std::string::npos) {
            r.count = std::stoul(r.point.substr(at + 1));
            r.any_count = false;
            r.point.resize(at);
        }
        rules.push_back(r);
    }
    set_fault_hook([rules](const std::string& point, std::size_t count) {
        for (const auto& r : rules) {
            if (r.point != point || (!r.any_count && r.count != count)) continue;
            if (r.action == "kill") ::kill(::getpid(), SIGKILL);
            if (r.action == "sigint") std::raise(SIGINT);
            if (r.action == "enospc")
                throw write_error(point + ": No space left on device (injected by TAPEGRAD_TEST_FAULT)");
        }
    });
}

void commit_file(const std::string& tmp, const std::string& path, const std::string& what, std::size_t count) {
    fsync_path(tmp, false);
    fault_point(what + ":synced", count);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(path, "renaming " + tmp + " into place", errno);
    try {
        fault_point(what + ":renamed", count);
        fsync_path(parent_dir(path), true);
        fault_point(what + ":dir-synced", count);
    } catch (const std::exception& e) {
        throw not_durable_error(std::string(e.what()) + " (after " + path + " was renamed into place)");
    }
}

namespace {
// Fixed storage, so the signal handler reads no heap memory; `scratch_count` is
// published after the paths are written and cleared before they are dropped.
constexpr std::size_t scratch_path_bytes = 4096;
char scratch_paths[2][scratch_path_bytes];
std::atomic<int> scratch_count{0};
static_assert(std::atomic<int>::is_always_lock_free, "read from a signal handler");
}  // namespace

scratch_files_scope::scratch_files_scope(const std::string& a, const std::string& b) {
    scratch_count.store(0);
    int n = 0;
    for (const std::string* p : {&a, &b})
        if (!p->empty() && p->size() < scratch_path_bytes) {
            std::memcpy(scratch_paths[n], p->c_str(), p->size() + 1);
            ++n;
        }
    scratch_count.store(n);
}

scratch_files_scope::~scratch_files_scope() { scratch_count.store(0); }

void remove_scratch_files() noexcept {
    const int n = scratch_count.load();
    for (int i = 0; i < n; ++i) ::unlink(scratch_paths[i]);
}

void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what,
                           std::size_t count) {
    const std::string tmp = path + ".tmp";
    const scratch_files_scope scratch(tmp);
    try {
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) fail(path, "creating " + tmp, errno);
        try {
            const std::size_t half = bytes.size() / 2;
            write_all(fd, bytes.data(), half, path);
            fault_point(what + ":writing", count);
            write_all(fd, bytes.data() + half, bytes.size() - half, path);
        } catch (...) {
            ::close(fd);
            throw;
        }
        if (::close(fd) != 0) fail(path, "closing", errno);
        fault_point(what + ":written", count);
        commit_file(tmp, path, what, count);
    } catch (...) {
        std::remove(tmp.c_str());
        throw;
    }
}

void write_file_checked(const std::string& path, const std::string& bytes) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail(path, "creating", errno);
    try {
        write_all(fd, bytes.data(), bytes.size(), path);
    } catch (...) {
        ::close(fd);
        throw;
    }
    if (::close(fd) != 0) fail(path, "closing", errno);
}

}  // namespace tapegrad::app
