#pragma once
// IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or plain.
//
// Layout: a big-endian header, magic 0x0000TTNN (TT = element type, 0x08 for
// uint8; NN = number of dimensions), one big-endian uint32 per dimension, then
// the elements row-major. A file is read into memory and parsed there (plain
// as it is, gzip inflated by zlib as it is read), so one code path serves both,
// and the in-memory entry points (used by tests/fuzz) run the same code.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tapegrad::data {

/// Error for a data file that cannot be used: the message names the file, what
/// is wrong, and the byte offset (in the uncompressed stream) where it applies.
class data_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// The contents of a uint8 IDX file.
struct idx_array {
    std::vector<std::uint32_t> dims;  ///< dimensions, outermost first
    std::vector<std::uint8_t> data;   ///< product(dims) elements, row-major
};

/// Read an IDX file of uint8 elements with `expected_dims` dimensions (magic
/// 0x000008NN). Throws data_error for a missing or unreadable file, a wrong
/// magic number, a truncated header or body ("file X says N items ... but
/// holds M bytes"), or data after the last element. The header's counts are
/// never trusted for allocation: memory follows the bytes actually present
/// (after decompression), read in chunks.
idx_array read_idx(const std::string& path, std::size_t expected_dims);

/// read_idx on a file's bytes (gzip or plain) already in memory; `name`
/// stands for the file in error messages.
idx_array read_idx(const unsigned char* data, std::size_t size, const std::string& name, std::size_t expected_dims);

/// Read a whole file through zlib (gzip or plain) into memory; throws
/// data_error naming the file if it cannot be opened or decompressed, or if it
/// holds (after decompression) more than `max_bytes` bytes.
std::vector<unsigned char> read_gz_file(const std::string& path, std::size_t max_bytes = std::size_t(1) << 30);

/// read_gz_file on a file's bytes (gzip or plain) already in memory; `name`
/// stands for the file in error messages.
std::vector<unsigned char> read_gz_bytes(const unsigned char* data, std::size_t size, const std::string& name,
                                         std::size_t max_bytes = std::size_t(1) << 30);

/// A file's bytes as they are. Throws data_error naming the file if it cannot
/// be opened or read, or holds more than `max_bytes` bytes.
std::vector<unsigned char> read_file_bytes(const std::string& path, std::size_t max_bytes);

}  // namespace tapegrad::data
