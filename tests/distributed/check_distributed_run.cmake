# `mpirun -np 2 tapegrad train --distributed` on the embedded digits (seconds).
# Called by tests/distributed.cmake as
#   cmake -DTAPEGRAD=<exe> -DMPIRUN="<mpiexec;-np;2;...>" -DWORK=<dir> -P check_distributed_run.cmake
# Checks: one set of outputs from rank 0; a 2-rank run stopped after epoch 2 and
# resumed with 2 ranks equals the uninterrupted 2-rank run (curves and checkpoint
# bytes); the same checkpoint resumes in 1 process; a batch 2 ranks cannot split
# fails with a message saying what to use.

cmake_minimum_required(VERSION 3.18)
set(common train --data digits --layers 32 --batch-size 32 --lr 0.01 --threads 1 --progress lines --seed 3
           --epochs 3)

function(run out_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

function(loss_curve csv out_var)  # the CSV without its wall-time column
  file(STRINGS ${csv} lines)
  set(rows "")
  foreach(line IN LISTS lines)
    string(REPLACE "," ";" f "${line}")
    list(REMOVE_AT f 4)
    list(JOIN f "," row)
    string(APPEND rows "${row}\n")
  endforeach()
  set(${out_var} "${rows}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

run(full ${MPIRUN} ${TAPEGRAD} ${common} --distributed --out ${WORK}/full)
message("${full}")
string(REGEX MATCHALL "epoch +1/3" first_lines "${full}")
list(LENGTH first_lines n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "expected one 'epoch 1/3' line (rank 0 only), got ${n}")
endif()
if(NOT full MATCHES "distributed: 2 ranks x 16 rows \\(global batch 32\\)")
  message(FATAL_ERROR "no 'distributed: 2 ranks x 16 rows' line")
endif()
foreach(f metrics.csv curves.svg checkpoint.npz confusion.csv)
  if(NOT EXISTS ${WORK}/full/${f})
    message(FATAL_ERROR "rank 0 did not write ${f}")
  endif()
endforeach()

run(part ${MPIRUN} ${TAPEGRAD} ${common} --distributed --stop-after 2 --out ${WORK}/part)
file(COPY ${WORK}/part/ DESTINATION ${WORK}/solo)
run(rest ${MPIRUN} ${TAPEGRAD} train --distributed --resume ${WORK}/part/checkpoint.npz --epochs 3 --threads 1
    --progress lines)
if(NOT rest MATCHES "resuming from .* after epoch 2")
  message(FATAL_ERROR "the 2-rank resume did not continue from epoch 2:\n${rest}")
endif()
loss_curve(${WORK}/full/metrics.csv cf)
loss_curve(${WORK}/part/metrics.csv cr)
if(NOT cf STREQUAL cr)
  message(FATAL_ERROR "2-rank resume differs from the uninterrupted 2-rank run:\n${cf}\nvs\n${cr}")
endif()
foreach(f checkpoint.npz)
  file(SHA256 ${WORK}/full/${f} hf)
  file(SHA256 ${WORK}/part/${f} hr)
  if(NOT hf STREQUAL hr)
    message(FATAL_ERROR "2-rank resume and uninterrupted run end with different ${f}")
  endif()
endforeach()

# One process, no mpirun, from the same distributed checkpoint.
run(solo ${TAPEGRAD} train --resume ${WORK}/solo/checkpoint.npz --epochs 3 --threads 1 --progress lines)
message("${solo}")
if(NOT solo MATCHES "resuming from .* after epoch 2" OR NOT solo MATCHES "test_accuracy 0\\.9")
  message(FATAL_ERROR "the 1-process resume of a 2-rank checkpoint did not finish well:\n${solo}")
endif()
file(STRINGS ${WORK}/solo/metrics.csv solo_rows)
list(LENGTH solo_rows n)
if(NOT n EQUAL 4)
  message(FATAL_ERROR "1-process resume: metrics.csv has ${n} lines, expected a header and 3 epochs")
endif()

execute_process(COMMAND ${MPIRUN} ${TAPEGRAD} train --data digits --layers 32 --epochs 1 --distributed --batch-size 33
                        --out ${WORK}/bad
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "global batch 33 does not split evenly across 2 ranks: use a multiple of 2")
  message(FATAL_ERROR "batch 33 on 2 ranks: exit ${rc}, expected a clear error:\n${out}\n${err}")
endif()
message("batch 33 on 2 ranks: ${err}")
