# Documented snippets are the code of examples that compile and run (the example's
# own test checks its output): tests/docs/check_snippet.cmake compares the text.
foreach(doc README.md docs/higher_order.md)
  string(MAKE_C_IDENTIFIER ${doc} id)
  add_test(NAME docs_snippet_hessian_${id}
           COMMAND ${CMAKE_COMMAND} -DSOURCE=${PROJECT_SOURCE_DIR}/examples/hessian.cpp
                   -DDOC=${PROJECT_SOURCE_DIR}/${doc} -P ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_snippet.cmake)
endforeach()
