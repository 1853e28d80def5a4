# The README's "Use it in your project" section, built exactly as written, as a
# consumer would: its CMakeLists.txt and main.cpp against an install of the `lib`
# component alone and against the build tree, and its plain compiler line. The
# same install (with the `apps` component) runs `tapegrad train --data digits`
# with no path to the source tree. Configure-only: the library configures without
# the apps and without CLI11. Preprocess-only: a build without the xsimd define
# stops with an #error that says so.
if(NOT TAPEGRAD_SANITIZE)
  add_test(NAME readme_use_it_in_your_project
    COMMAND ${CMAKE_COMMAND}
      -DBUILD_DIR=${PROJECT_BINARY_DIR} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
      -DREADME=${PROJECT_SOURCE_DIR}/README.md -DCXX=${CMAKE_CXX_COMPILER}
      -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/readme_consumer
      -DHAVE_APPS=$<TARGET_EXISTS:tapegrad_cli>
      -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run_readme_test.cmake)
  set_tests_properties(readme_use_it_in_your_project PROPERTIES TIMEOUT 900 RUN_SERIAL TRUE)
endif()
add_test(NAME configure_library_without_apps
  COMMAND ${CMAKE_COMMAND} -S ${PROJECT_SOURCE_DIR} -B ${CMAKE_CURRENT_BINARY_DIR}/library_only
          -DTAPEGRAD_BUILD_APPS=OFF -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_EXAMPLES=OFF
          -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/no_xsimd_define.cpp "#include \"autograd/ops.hpp\"\n")
add_test(NAME missing_xsimd_define_is_a_compile_error
  COMMAND ${CMAKE_CXX_COMPILER} -std=c++17 -E -o /dev/null -I${PROJECT_SOURCE_DIR}
          ${CMAKE_CURRENT_BINARY_DIR}/no_xsimd_define.cpp)
set_tests_properties(missing_xsimd_define_is_a_compile_error PROPERTIES
  WILL_FAIL FALSE PASS_REGULAR_EXPRESSION "tapegrad: compile with -DXTENSOR_USE_XSIMD")
