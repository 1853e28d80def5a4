# MPI tests (tests/distributed/): each doctest executable runs under
# mpirun -np 2 on this machine only (shared memory, loopback for mpirun itself).
if(NOT TARGET tapegrad_distributed)
  return()
endif()
set(_tg_mpirun ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 --allow-run-as-root --oversubscribe)
# No network needed: ranks talk through shared memory (vader, without the
# single-copy mechanism that containers often forbid), mpirun through lo.
set(_tg_mpi_env OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
                OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_btl_tcp_if_include=lo)
# Open MPI keeps its own allocations (and unloads its plugins) at MPI_Finalize, which
# LeakSanitizer reports as thousands of leaks outside our code; under the sanitizers the
# MPI tests keep ASan and UBSan but run without the leak check.
if(TAPEGRAD_SANITIZE)
  list(APPEND _tg_mpi_env "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
endif()
file(GLOB _tg_mpi_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/distributed/test_*.cpp)
foreach(src ${_tg_mpi_tests})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src} $<TARGET_OBJECTS:tapegrad_test_main>)
  target_link_libraries(${name} PRIVATE tapegrad_distributed doctest::doctest)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE -Wno-maybe-uninitialized -Wno-array-bounds)
  add_test(NAME ${name} COMMAND ${_tg_mpirun} $<TARGET_FILE:${name}> --no-intro=true)
  set_tests_properties(${name} PROPERTIES WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR} TIMEOUT 120
                       PROCESSORS 2 ENVIRONMENT "${_tg_mpi_env}")
endforeach()

add_executable(dist_timeout_check ${CMAKE_CURRENT_SOURCE_DIR}/distributed/timeout_check.cpp)
target_link_libraries(dist_timeout_check PRIVATE tapegrad_distributed)
add_test(NAME dist_first_collective_timeout COMMAND ${_tg_mpirun} $<TARGET_FILE:dist_timeout_check>)
set_tests_properties(dist_first_collective_timeout PROPERTIES TIMEOUT 60 PROCESSORS 2 ENVIRONMENT "${_tg_mpi_env}"
  PASS_REGULAR_EXPRESSION "rank 0: MPI_Ibarrier \\(the first collective\\) did not complete within 1 s"
  FAIL_REGULAR_EXPRESSION "handshake done")

# The trainer: tapegrad train --distributed under mpirun -np 2, resume with 2 ranks and with 1.
if(TARGET tapegrad_cli)
  add_test(NAME cli_distributed
           COMMAND ${CMAKE_COMMAND} -DTAPEGRAD=$<TARGET_FILE:tapegrad_cli> "-DMPIRUN=${_tg_mpirun}"
                   -DWORK=${CMAKE_CURRENT_BINARY_DIR}/cli_distributed
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/distributed/check_distributed_run.cmake)
  # The digits' path is given explicitly: a ccache base_dir makes __FILE__ (data/dataset.cpp's fallback) relative.
  set_tests_properties(cli_distributed PROPERTIES TIMEOUT 300 PROCESSORS 2
                       ENVIRONMENT "${_tg_mpi_env};TAPEGRAD_DIGITS=${PROJECT_SOURCE_DIR}/data/digits.csv.gz")
endif()

# Installed as its own target: cmake --install, then find_package(tapegrad) and tapegrad::distributed.
if(NOT TAPEGRAD_SANITIZE)
  add_test(NAME dist_install_find_package
    COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${PROJECT_BINARY_DIR} -DCONSUMER_DIR=${CMAKE_CURRENT_SOURCE_DIR}/distributed/consumer
            -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/dist_install_test
            -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run_install_test.cmake)
  set_tests_properties(dist_install_find_package PROPERTIES TIMEOUT 600
    PASS_REGULAR_EXPRESSION "distributed consumer: rank 0 of 1, shard of 8 rows: \\[0, 8\\)")
endif()
