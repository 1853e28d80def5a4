# Documented snippets are the code of examples that compile and run (the example's
# own test checks its output): tests/docs/check_snippet.cmake compares the text.
# Each entry: example name, then the documents quoting it.
set(_tg_snippets "hessian:README.md,docs/higher_order.md" "custom_swish:docs/custom_ops.md"
                 "custom_huber:docs/custom_ops.md")
foreach(entry ${_tg_snippets})
  string(REPLACE ":" ";" parts "${entry}")
  list(GET parts 0 example)
  list(GET parts 1 docs)
  string(REPLACE "," ";" docs "${docs}")
  foreach(doc ${docs})
    string(MAKE_C_IDENTIFIER ${doc} id)
    add_test(NAME docs_snippet_${example}_${id}
             COMMAND ${CMAKE_COMMAND} -DSOURCE=${PROJECT_SOURCE_DIR}/examples/${example}.cpp
                     -DDOC=${PROJECT_SOURCE_DIR}/${doc} -P ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_snippet.cmake)
  endforeach()
endforeach()
