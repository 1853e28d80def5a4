// The first-run check switch of custom ops (autograd/function.hpp).

#include "autograd/function.hpp"

#include <cstdlib>
#include <cstring>

namespace tapegrad {

namespace {
std::atomic<bool>& check_flag() {
    static std::atomic<bool> on{[] {
        const char* e = std::getenv("TAPEGRAD_CHECK_CUSTOM_OPS");
        return e != nullptr && std::strcmp(e, "1") == 0;
    }()};
    return on;
}
}  // namespace

void set_check_custom_ops(bool on) { check_flag().store(on, std::memory_order_relaxed); }
bool check_custom_ops() { return check_flag().load(std::memory_order_relaxed); }

}  // namespace tapegrad
