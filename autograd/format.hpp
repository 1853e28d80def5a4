#pragma once
// Formatting for error messages, shared by the layers.

#include <iomanip>
#include <sstream>
#include <string>

namespace tapegrad::detail {

/// `v` as operator<< prints it ("0.001", "784"), with `precision` significant
/// digits (the stream's default, 6, unless given).
template <class V> std::string num(V v, int precision = 6) {
    std::ostringstream os;
    os << std::setprecision(precision) << v;
    return os.str();
}

}  // namespace tapegrad::detail
