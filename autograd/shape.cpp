// shape_str: how every error message prints a shape.

#include "autograd/shape.hpp"

#include <sstream>

namespace tapegrad {

std::string shape_str(const shape_t& shape) {
    std::ostringstream os;
    os << '[';
    for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    os << ']';
    return os.str();
}

}  // namespace tapegrad
