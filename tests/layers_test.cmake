# The layers are enforced: a source of optim/ (which links autograd and io) cannot
# even find nn/'s headers, so an upward include fails to compile. Preprocess-only.
set(_tg_layers ${PROJECT_BINARY_DIR}/layer_include)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/upward_include.cpp "#include \"autograd/ops.hpp\"\n#include \"io/npz.hpp\"\n#include \"nn/module.hpp\"\n")
add_test(NAME upward_include_fails
  COMMAND ${CMAKE_CXX_COMPILER} -std=c++17 -E -o /dev/null -DXTENSOR_USE_XSIMD -DXTENSOR_DEFAULT_ALIGNMENT=64
          "-DXTENSOR_DEFAULT_ALLOCATOR(T)=xsimd::aligned_allocator<T,64>"
          -I${_tg_layers}/optim -I${_tg_layers}/autograd -I${_tg_layers}/io
          ${CMAKE_CURRENT_BINARY_DIR}/upward_include.cpp)
set_tests_properties(upward_include_fails PROPERTIES PASS_REGULAR_EXPRESSION "nn/module.hpp: No such file")
