#include "autograd/check_core.hpp"

#include <sstream>
#include <vector>

namespace tapegrad {
namespace check {

std::string multi_index(const shape_t& shape, std::size_t flat) {
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

}  // namespace check
}  // namespace tapegrad
