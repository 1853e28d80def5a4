#pragma once
// Formatting for error messages, shared by the layers.

#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

namespace tapegrad::detail {

/// `v` as operator<< prints it ("0.001", "784").
template <class V> std::string num(V v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

/// The multi-index "(i, j, k)" of element `flat` of a row-major array of `shape`.
template <class Shape> std::string multi_index(const Shape& shape, std::size_t flat) {
    std::vector<std::size_t> idx(shape.size());
    for (std::size_t a = shape.size(); a-- > 0;) {
        idx[a] = shape[a] ? flat % shape[a] : 0;
        flat = shape[a] ? flat / shape[a] : 0;
    }
    std::ostringstream os;
    os << '(';
    for (std::size_t i = 0; i < idx.size(); ++i) os << (i ? ", " : "") << idx[i];
    os << ')';
    return os.str();
}

}  // namespace tapegrad::detail
