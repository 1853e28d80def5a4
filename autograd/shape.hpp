#pragma once
// Shapes: the shape type, the error every op throws for a shape it cannot take,
// and how shapes are printed in error messages.

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace tapegrad {

/// Error for a shape an op cannot take; the message names the op and the shapes.
class shape_error : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

/// Shape of a tensor, outermost dimension first.
using shape_t = std::vector<std::size_t>;

/// "[2, 3]": how shapes appear in every error message.
std::string shape_str(const shape_t& shape);
/// Same for any xtensor shape type.
template <class S> std::string shape_str(const S& shape) {
    return shape_str(shape_t(shape.begin(), shape.end()));
}

}  // namespace tapegrad
