// Model checkpoints: parameters and buffers <-> .npz arrays named by dotted name.

#include "nn/checkpoint.hpp"

#include <map>

namespace tapegrad::nn {

namespace {

template <class T> std::vector<std::pair<std::string, tensor<T>>> state_of(const module<T>& m) {
    auto all = m.named_parameters();
    for (auto& b : m.named_buffers()) all.push_back(b);
    return all;
}

}  // namespace

template <class T> std::vector<npz::entry> state_entries(const module<T>& m) {
    std::vector<npz::entry> entries;
    for (const auto& [name, t] : state_of(m)) entries.push_back(npz::make_entry(name, t.value()));
    return entries;
}

template <class T> void save_npz(const module<T>& m, const std::string& path) { npz::write(path, state_entries(m)); }

template <class T> void load_npz(module<T>& m, const std::string& path) { load_state(m, npz::read(path), path); }

template <class T> void load_state(module<T>& m, std::vector<npz::entry> entries, const std::string& path) {
    std::map<std::string, npz::entry> file;
    for (auto& e : entries) file.emplace(e.name, std::move(e));
    const auto wanted = state_of(m);
    // Validate everything first, then assign: nothing is half-loaded.
    std::vector<xt::xarray<T>> values;
    values.reserve(wanted.size());
    for (const auto& [name, t] : wanted) {
        auto it = file.find(name);
        if (it == file.end())
            throw npz::npz_error(path + ": missing parameter '" + name + "' of shape " + shape_str(t.shape()) +
                                 " (the file was saved from a different model?)");
        if (it->second.shape != t.shape())
            throw npz::npz_error(path + ": parameter '" + name + "' has shape " + shape_str(it->second.shape) +
                                 " in the file but " + shape_str(t.shape()) + " in the model");
        values.push_back(npz::to_array<T>(it->second, path));
        file.erase(it);
    }
    if (!file.empty()) {
        std::string extra;
        for (const auto& [name, e] : file) extra += (extra.empty() ? "'" : ", '") + name + "'";
        throw npz::npz_error(path + ": unexpected parameter " + extra + " not in the model (" + m.type_name() + ")");
    }
    for (std::size_t i = 0; i < wanted.size(); ++i) {
        tensor<T> t = wanted[i].second;
        t.mutable_value() = std::move(values[i]);
    }
}

template void save_npz<float>(const module<float>&, const std::string&);
template void save_npz<double>(const module<double>&, const std::string&);
template void load_npz<float>(module<float>&, const std::string&);
template void load_npz<double>(module<double>&, const std::string&);
template std::vector<npz::entry> state_entries<float>(const module<float>&);
template std::vector<npz::entry> state_entries<double>(const module<double>&);
template void load_state<float>(module<float>&, std::vector<npz::entry>, const std::string&);
template void load_state<double>(module<double>&, std::vector<npz::entry>, const std::string&);

}  // namespace tapegrad::nn
