// Stand-ins when LibTorch is not found: the runner prints "-" for its column.

#include "benchmarks/cases.hpp"

namespace tapegrad::bench {

std::unique_ptr<runner> make_torch(const mlp_problem&) { return nullptr; }
std::unique_ptr<runner> make_torch_opchain(const opchain_problem&) { return nullptr; }
std::unique_ptr<runner> make_torch_conv(const conv_problem&) { return nullptr; }
std::unique_ptr<runner> make_torch_cnn(const cnn_problem&) { return nullptr; }
bool have_torch() { return false; }
void torch_set_threads(int) {}
std::string torch_info() { return "not built (LibTorch not found)"; }

}  // namespace tapegrad::bench
