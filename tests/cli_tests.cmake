# Tests of the `tapegrad` program (apps/): unit tests of apps/ code link
# tapegrad_app; integration tests run the real binary on the embedded digits
# (seconds, also under the sanitizers) through tests/cli/check_run.cmake.
if(NOT TARGET tapegrad_app)
  return()
endif()
foreach(t test_trainer_report test_trainer test_cli_options test_checkpoint_atomic test_trainer_grad_norms
        test_trainer_cnn test_trainer_cnn_resume)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE tapegrad_app)
  endif()
endforeach()

set(_tg_check ${CMAKE_CURRENT_SOURCE_DIR}/cli/check_run.cmake)
foreach(mode accuracy determinism resume bad_input hand_backward)
  add_test(NAME cli_${mode}
           COMMAND ${CMAKE_COMMAND} -DTAPEGRAD=$<TARGET_FILE:tapegrad_cli> -DWORK=${CMAKE_CURRENT_BINARY_DIR}/cli_${mode}
                   -DMODE=${mode} -DMIN_ACC=0.9 -P ${_tg_check})
endforeach()
# --model cnn on digits (docs/trainer.md, "Convolutional networks"); 2 epochs of a tiny --arch.
add_test(NAME cli_cnn
         COMMAND ${CMAKE_COMMAND} -DTAPEGRAD=$<TARGET_FILE:tapegrad_cli> -DWORK=${CMAKE_CURRENT_BINARY_DIR}/cli_cnn
                 -DMODE=cnn -DMIN_ACC=0.7 -P ${_tg_check})
add_test(NAME cli_gradcheck COMMAND tapegrad_cli gradcheck)
set_tests_properties(cli_gradcheck PROPERTIES PASS_REGULAR_EXPRESSION "gradcheck: all cases passed")
add_test(NAME cli_bench COMMAND tapegrad_cli bench --layers 32 --batch-size 8 --steps 2 --repeats 1 --warmup 1)
set_tests_properties(cli_bench PROPERTIES PASS_REGULAR_EXPRESSION "hand-written xtensor\\+BLAS")
# `tapegrad graph` passes with or without Graphviz (without it: a note, no SVG).
add_test(NAME cli_graph COMMAND tapegrad_cli graph --model seed --out ${CMAKE_CURRENT_BINARY_DIR}/cli_graph/graph.dot)
set_tests_properties(cli_graph PROPERTIES PASS_REGULAR_EXPRESSION "wrote [^\n]*cli_graph/graph\\.dot\n(wrote [^\n]*graph\\.svg|note: Graphviz's dot is not on PATH)")
add_test(NAME cli_help COMMAND tapegrad_cli train --help)
set_tests_properties(cli_help PROPERTIES PASS_REGULAR_EXPRESSION "--optimizer.*--schedule.*--resume")

# Bad options, crashes, Ctrl-C and a full disk (tests/cli/check_faults.cmake). The
# faults are injected by a build of the same program with TAPEGRAD_TEST_FAULTS,
# which reads TAPEGRAD_TEST_FAULT (apps/durable_io.hpp); the real program has no such hook.
find_package(CLI11 REQUIRED)
add_executable(tapegrad_fault ${PROJECT_SOURCE_DIR}/apps/main.cpp)
target_link_libraries(tapegrad_fault PRIVATE tapegrad_app CLI11::CLI11)
target_compile_definitions(tapegrad_fault PRIVATE TAPEGRAD_TEST_FAULTS)
foreach(mode bad_options crash_points interrupt full_disk)
  add_test(NAME cli_${mode}
           COMMAND ${CMAKE_COMMAND} -DTAPEGRAD=$<TARGET_FILE:tapegrad_cli> -DFAULTY=$<TARGET_FILE:tapegrad_fault>
                   -DWORK=${CMAKE_CURRENT_BINARY_DIR}/cli_${mode} -DMODE=${mode} -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/check_faults.cmake)
endforeach()
