# Proves that `cmake --install` + `find_package(tapegrad)` works from a separate
# consumer project: install into a scratch prefix, build tests/consumer, run it.
if(NOT TAPEGRAD_SANITIZE)
  add_test(NAME install_and_find_package
    COMMAND ${CMAKE_COMMAND}
      -DBUILD_DIR=${PROJECT_BINARY_DIR}
      -DCONSUMER_DIR=${CMAKE_CURRENT_SOURCE_DIR}/consumer
      -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/install_test
      -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run_install_test.cmake)
  set_tests_properties(install_and_find_package PROPERTIES TIMEOUT 600 PASS_REGULAR_EXPRESSION "consumer: d/dx sum\\(x\\^2\\) = \\[2, 4, 6\\]")
endif()
