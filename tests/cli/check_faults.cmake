# The `tapegrad` program under bad options, crashes, Ctrl-C and a full disk.
# Called by tests/cli_tests.cmake as
#   cmake -DTAPEGRAD=<exe> -DFAULTY=<exe built with TAPEGRAD_TEST_FAULTS> -DWORK=<dir> -DMODE=<mode> -P check_faults.cmake
# Modes:
#   bad_options   every bad option value: exit 2 and a message naming the option and its allowed values
#   crash_points  the process killed (SIGKILL) at every point of epoch 2's commit; resume == uninterrupted run
#   interrupt     SIGINT mid-epoch: exit 130, how to resume; a second SIGINT during the checkpoint write exits
#                 at once leaving the last committed checkpoint and no temporaries; resume == uninterrupted run
#   full_disk     a 48 KiB tmpfs (or, where it cannot be mounted, an injected ENOSPC) fills up in epoch 2:
#                 a clear error; resume == uninterrupted run. metrics.csv linked to /dev/full: an error, no hang

cmake_minimum_required(VERSION 3.18)
set(common --data digits --layers 32 --batch-size 32 --lr 0.01 --threads 1 --progress lines --quiet)
set(run ${common} --epochs 3 --seed 3 --warmup 10)

function(expect_fail code args_var regex)
  execute_process(COMMAND ${TAPEGRAD} ${${args_var}} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc STREQUAL "${code}" OR NOT "${err}" MATCHES "${regex}")
    message(FATAL_ERROR "tapegrad ${${args_var}}: exit ${rc} (expected ${code}), stderr:\n${err}\nexpected to match: ${regex}")
  endif()
  string(STRIP "${err}" err)
  message("ok: ${${args_var}}  ->  ${err}")
endfunction()

function(run_ok out_var)
  execute_process(COMMAND ${TAPEGRAD} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "tapegrad ${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

# Run the fault-injecting build with TAPEGRAD_TEST_FAULT=spec; sets rc, out, err.
function(run_faulty spec)
  set(ENV{TAPEGRAD_TEST_FAULT} "${spec}")
  execute_process(COMMAND ${FAULTY} ${ARGN} RESULT_VARIABLE r OUTPUT_VARIABLE o ERROR_VARIABLE e)
  unset(ENV{TAPEGRAD_TEST_FAULT})
  set(rc "${r}" PARENT_SCOPE)
  set(out "${o}" PARENT_SCOPE)
  set(err "${e}" PARENT_SCOPE)
endfunction()

# The CSV without its wall-time column.
function(loss_curve csv out_var)
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

# Resume the run in `dir` to the end; its metrics and checkpoint must be the uninterrupted run's.
function(resume_equals_full dir what)
  run_ok(rest train --resume ${dir}/checkpoint.npz --epochs 3 --threads 1 --progress lines --quiet)
  loss_curve(${WORK}/full/metrics.csv cf)
  loss_curve(${dir}/metrics.csv cr)
  if(NOT cf STREQUAL cr)
    message(FATAL_ERROR "${what}: the resumed run differs from the uninterrupted one:\n${cf}\nvs\n${cr}")
  endif()
  file(SHA256 ${WORK}/full/checkpoint.npz hf)
  file(SHA256 ${dir}/checkpoint.npz hr)
  if(NOT hf STREQUAL hr)
    message(FATAL_ERROR "${what}: resumed and uninterrupted runs end with different checkpoints")
  endif()
  message("ok: ${what}: resumed to the uninterrupted run's metrics and checkpoint")
endfunction()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

if(MODE STREQUAL "bad_options")
  # option value | what the message must say
  set(cases
    "--epochs|abc|--epochs must be a whole number from 1 to 100000, got 'abc'"
    "--epochs|99999999999999999999|--epochs must be a whole number from 1 to 100000, got '99999999999999999999'"
    "--epochs|0|--epochs must be a whole number from 1 to 100000, got '0'"
    "--warmup|-1|--warmup must be a whole number from 0 to 1000000000, got '-1'"
    "--batch-size|18446744073709551615|--batch-size must be a whole number from 1 to 1000000, got '18446744073709551615'"
    "--batch-size|0|--batch-size must be a whole number from 1 to 1000000, got '0'"
    "--gamma|nan|--gamma must be a number greater than 0 and at most 1 \\(not NaN or infinity\\), got 'nan'"
    "--clip|nan|--clip must be a number from 0 to 1000000 \\(not NaN or infinity\\), got 'nan'"
    "--lr|inf|--lr must be a number greater than 0 and at most 10 \\(not NaN or infinity\\), got 'inf'"
    "--lr|0|--lr must be a number greater than 0 and at most 10, got '0'"
    "--momentum|1.5|--momentum must be a number from 0 to 1, got '1.5'"
    "--weight-decay|-1|--weight-decay must be a number from 0 to 10, got '-1'"
    "--step-size|0|--step-size must be a whole number from 1 to 100000, got '0'"
    "--seed|-1|--seed must be a whole number from 0 to 18446744073709551615, got '-1'"
    "--threads|0|--threads must be a whole number from 1 to 256, got '0'"
    "--val-fraction|1|--val-fraction must be a number from 0.001 to 0.9, got '1'"
    "--hidden|1e3|--hidden must be a whole number from 1 to 1000000000, got '1e3'"
    "--layers|256,x|--layers must be a comma-separated list .*, got '256,x'"
    "--optimizer|lbfgs|--optimizer must be one of sgd, adam, adamw, rmsprop, adagrad, got 'lbfgs'"
    "--stop-after|-2|--stop-after must be a whole number from 0 to 100000, got '-2'")
  foreach(c IN LISTS cases)
    string(REPLACE "|" ";" parts "${c}")
    list(GET parts 0 opt)
    list(GET parts 1 value)
    list(GET parts 2 regex)
    set(args train --data digits "${opt}=${value}" --out ${WORK}/never)
    expect_fail(2 args "tapegrad: error: ${regex}")
  endforeach()
  # An empty argument cannot travel in a CMake list: through the shell.
  execute_process(COMMAND sh -c "'${TAPEGRAD}' train --data digits --layers '' --out '${WORK}/never'"
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 2 OR NOT err MATCHES "tapegrad: error: --layers must be a comma-separated list of 1 to 100 whole numbers from 1 to 1000000000, got '' \\(an empty list would train a linear model\\)")
    message(FATAL_ERROR "--layers '': exit ${rc}, stderr:\n${err}")
  endif()
  message("ok: --layers ''  ->  ${err}")
  set(args train --data digits --layers 100000000 --out ${WORK}/never)
  expect_fail(2 args "the model mlp 64-100000000-10 relu, ce has 7.5e\\+09 parameters and needs about .* GB to train")
  set(args bench --batch-size 0)
  expect_fail(2 args "--batch-size must be a whole number from 1 to 100000, got '0'")
  set(args eval --threads nan ${CMAKE_CURRENT_LIST_FILE})
  expect_fail(2 args "--threads must be a whole number from 1 to 256, got 'nan'")
  set(args gradcheck --seed 4294967296)
  expect_fail(2 args "--seed must be a whole number from 0 to 4294967295, got '4294967296'")
  if(EXISTS ${WORK}/never)
    message(FATAL_ERROR "a refused option still created the output directory")
  endif()

elseif(MODE STREQUAL "crash_points")
  run_ok(full train ${run} --out ${WORK}/full)
  foreach(point metrics:writing metrics:written metrics:synced metrics:renamed metrics:dir-synced
                checkpoint:begin checkpoint:written checkpoint:synced checkpoint:renamed checkpoint:dir-synced)
    string(REPLACE ":" "_" name ${point})
    run_faulty(${point}@2:kill train ${run} --out ${WORK}/${name})
    if(NOT rc MATCHES "[Kk]illed|9")
      message(FATAL_ERROR "${point}: the run was not killed (exit ${rc}):\n${out}\n${err}")
    endif()
    message("killed at ${point} of epoch 2 (${rc})")
    resume_equals_full(${WORK}/${name} "killed at ${point}")
  endforeach()

elseif(MODE STREQUAL "interrupt")
  run_ok(full train ${run} --out ${WORK}/full)
  # One SIGINT at step 50 (42 steps per epoch: step 8 of epoch 2): the step finishes, a checkpoint commits, exit 130.
  run_faulty(step@50:sigint train ${run} --out ${WORK}/once)
  if(NOT rc EQUAL 130 OR NOT out MATCHES "interrupted in epoch 2 after step 8 of 42.*continue with: tapegrad train --resume .*once/checkpoint.npz --epochs 3")
    message(FATAL_ERROR "SIGINT: exit ${rc}, stdout:\n${out}\nstderr:\n${err}")
  endif()
  if(NOT err MATCHES "interrupted: finishing this step and saving a checkpoint")
    message(FATAL_ERROR "SIGINT: no notice on stderr:\n${err}")
  endif()
  message("ok: one SIGINT: exit 130 and:\n${out}")
  resume_equals_full(${WORK}/once "one SIGINT at step 50")
  # A second SIGINT while that checkpoint is being written exits at once; epoch 1's checkpoint stays.
  run_ok(part train ${run} --stop-after 1 --out ${WORK}/twice)
  file(SHA256 ${WORK}/twice/checkpoint.npz before)
  run_faulty(step@50:sigint,checkpoint:written@1:sigint train --resume ${WORK}/twice/checkpoint.npz --epochs 3
             --threads 1 --progress lines --quiet)
  file(SHA256 ${WORK}/twice/checkpoint.npz after)
  if(NOT rc EQUAL 130 OR out MATCHES "continue with" OR NOT before STREQUAL after)
    message(FATAL_ERROR "second SIGINT: exit ${rc}, checkpoint changed: ${before} -> ${after}, stdout:\n${out}")
  endif()
  file(GLOB debris ${WORK}/twice/*.partial ${WORK}/twice/*.partial.tmp)
  if(debris)
    message(FATAL_ERROR "second SIGINT: the unfinished checkpoint was left behind: ${debris}")
  endif()
  message("ok: a second SIGINT during the write: exit 130 at once, epoch 1's checkpoint intact, no temporaries left")
  resume_equals_full(${WORK}/twice "a second SIGINT during the checkpoint write")

elseif(MODE STREQUAL "full_disk")
  run_ok(full train ${run} --out ${WORK}/full)
  file(MAKE_DIRECTORY ${WORK}/disk)
  # A private mount namespace (root, or unprivileged user namespaces) gives a real, small tmpfs.
  list(JOIN run " " run_words)
  execute_process(COMMAND unshare -rm sh -c "mount -t tmpfs -o size=48k tmpfs '${WORK}/disk' && '${TAPEGRAD}' train ${run_words} --out '${WORK}/disk/run'; echo \$? > '${WORK}/rc'; cp -a '${WORK}/disk/run' '${WORK}/after'"
                  RESULT_VARIABLE urc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(EXISTS ${WORK}/after/checkpoint.npz)
    file(READ ${WORK}/rc rc)
    string(STRIP "${rc}" rc)
    set(how "a 48 KiB tmpfs")
  else()
    message("no tmpfs (${urc}: ${err}); injecting ENOSPC instead")
    run_faulty(checkpoint:written@2:enospc train ${run} --out ${WORK}/after)
    set(how "an injected ENOSPC")
  endif()
  if(NOT rc EQUAL 2 OR NOT err MATCHES "tapegrad: error: .*(No space left on device|disk full)")
    message(FATAL_ERROR "full disk (${how}): exit ${rc}, stderr:\n${err}")
  endif()
  message("ok: full disk (${how}): exit ${rc}: ${err}")
  resume_equals_full(${WORK}/after "full disk (${how})")
  # metrics.csv linked to /dev/full: refused at once (gnuplot would read it forever)
  file(MAKE_DIRECTORY ${WORK}/devfull)
  file(CREATE_LINK /dev/full ${WORK}/devfull/metrics.csv SYMBOLIC)
  set(args train ${common} --epochs 1 --out ${WORK}/devfull)
  expect_fail(2 args "devfull/metrics.csv: is not a regular file")
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()
