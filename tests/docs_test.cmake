# The API reference builds, with a page per layer (scripts/docs.sh checks them).
find_program(TAPEGRAD_DOXYGEN doxygen)
if(TAPEGRAD_DOXYGEN)
  add_test(NAME api_docs COMMAND ${CMAKE_COMMAND} -E env TAPEGRAD_DOCS_OUT=${CMAKE_CURRENT_BINARY_DIR}/docs
                                 bash ${PROJECT_SOURCE_DIR}/scripts/docs.sh)
  set_tests_properties(api_docs PROPERTIES PASS_REGULAR_EXPRESSION "docs: .*index.html")
endif()
