#pragma once
// Formatting for error messages, shared by the layers.

#include <sstream>
#include <string>

namespace tapegrad::detail {

/// `v` as operator<< prints it ("0.001", "784").
template <class V> std::string num(V v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

}  // namespace tapegrad::detail
