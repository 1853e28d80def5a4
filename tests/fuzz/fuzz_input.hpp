#pragma once
// Shared by the libFuzzer harnesses: the loaders take a path, so each input is
// handed to them as a file. An anonymous in-memory file (memfd) reached through
// /proc/self/fd/N costs no disk I/O and cannot leave files behind.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

namespace tapegrad::fuzz {

/// An in-memory file holding given bytes, closed (and freed) at scope exit.
class memory_file {
  public:
    memory_file(const std::uint8_t* data, std::size_t size) {
        fd_ = ::memfd_create("tapegrad_fuzz", 0);
        if (fd_ < 0) {
            std::perror("memfd_create");
            std::abort();
        }
        std::size_t done = 0;
        while (done < size) {
            const ssize_t w = ::write(fd_, data + done, size - done);
            if (w <= 0) {
                std::perror("write");
                std::abort();
            }
            done += static_cast<std::size_t>(w);
        }
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    ~memory_file() { ::close(fd_); }
    memory_file(const memory_file&) = delete;
    memory_file& operator=(const memory_file&) = delete;
    /// A path the loaders can open (each open starts at byte 0).
    const std::string& path() const { return path_; }

  private:
    int fd_ = -1;
    std::string path_;
};

}  // namespace tapegrad::fuzz
