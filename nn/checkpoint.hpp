#pragma once
// Model checkpoints as .npz: one array per parameter and buffer, named by its
// dotted name ("0.weight"), readable with numpy.load.

#include <string>

#include "nn/module.hpp"
#include "io/npz.hpp"

namespace tapegrad::nn {

/// Write every parameter and buffer of `m` to `path` (.npz).
template <class T> void save_npz(const module<T>& m, const std::string& path);

/// Load parameters and buffers saved by save_npz (or numpy.savez). All or
/// nothing: every name, shape and dtype is checked before anything is
/// assigned; a missing, unexpected or wrong-shaped array throws npz::npz_error
/// naming the parameter and the file. Values are loaded bit-identically.
template <class T> void load_npz(module<T>& m, const std::string& path);

/// The arrays save_npz writes, as entries (parameters, then buffers, by name),
/// for a caller that stores them beside other arrays in one file.
template <class T> std::vector<npz::entry> state_entries(const module<T>& m);

/// load_npz from entries already read (e.g. the model's part of a larger
/// .npz); `path` names the file in errors. The same all-or-nothing checks.
template <class T> void load_state(module<T>& m, std::vector<npz::entry> entries, const std::string& path);

}  // namespace tapegrad::nn
