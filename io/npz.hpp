#pragma once
// Reading and writing .npz files (a zip of .npy arrays) without NumPy, so that
// checkpoints and optimizer state can be inspected with numpy.load.
// Written files are uncompressed (stored) zips of NPY v1.0 arrays, '<f4' or
// '<f8', C order. Reading accepts stored or deflated entries (np.savez and
// np.savez_compressed), NPY v1/v2/v3, zip64 fields, '<f4'/'<f8' in C order.

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.hpp"

namespace tapegrad::npz {

/// A bad or unreadable file, or a state that does not fit; the message names
/// the file (and for corrupt files the byte offset).
class npz_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// One array: its name (without ".npy"), dtype and raw little-endian bytes.
struct entry {
    std::string name;            ///< key as numpy.load shows it
    std::string dtype;           ///< "<f4" or "<f8"
    shape_t shape;               ///< C-order shape (empty for a 0-d array)
    std::vector<unsigned char> data;  ///< element bytes, C order, little-endian
};

/// An entry holding a copy of `a` (float -> "<f4", double -> "<f8").
template <class T> entry make_entry(std::string name, const xt::xarray<T>& a);

/// The values of `e` as an array of T, bit for bit. Throws npz_error naming the
/// array and `path` when the dtype is not T's.
template <class T> xt::xarray<T> to_array(const entry& e, const std::string& path);

/// Write `entries` as an .npz at `path` (via a temporary file renamed into
/// place, so a failed write leaves an older file intact). Throws npz_error.
void write(const std::string& path, const std::vector<entry>& entries);

/// Read every array of the .npz at `path`. Throws npz_error naming the file and
/// the byte offset of what is corrupt or unsupported.
std::vector<entry> read(const std::string& path);

/// read on a file's bytes already in memory; `name` stands for the file in
/// error messages.
std::vector<entry> read(const unsigned char* data, std::size_t size, const std::string& name);

}  // namespace tapegrad::npz
