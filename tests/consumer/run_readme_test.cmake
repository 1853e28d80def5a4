# cmake -P script for the readme_use_it_in_your_project test (tests/readme_consumer.cmake).
# Takes the ```cmake, ```cpp and ```sh blocks under README.md's "## Use it in your
# project" heading (up to the next "## "), writes them as a consumer's files, and
# builds them three ways.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR}/project)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# The section, and its fenced blocks.
file(READ ${README} readme)
string(FIND "${readme}" "\n## Use it in your project\n" start)
if(start LESS 0)
  message(FATAL_ERROR "README.md has no '## Use it in your project' section")
endif()
string(SUBSTRING "${readme}" ${start} -1 section)
string(SUBSTRING "${section}" 1 -1 rest)
string(FIND "${rest}" "\n## " stop)
if(stop GREATER 0)
  string(SUBSTRING "${rest}" 0 ${stop} section)
endif()
function(fenced_block lang out)
  string(FIND "${section}" "```${lang}\n" b)
  if(b LESS 0)
    message(FATAL_ERROR "no ```${lang} block in README's 'Use it in your project'")
  endif()
  string(LENGTH "```${lang}\n" skip)
  math(EXPR b "${b} + ${skip}")
  string(SUBSTRING "${section}" ${b} -1 tail)
  string(FIND "${tail}" "```" e)
  string(SUBSTRING "${tail}" 0 ${e} text)
  set(${out} "${text}" PARENT_SCOPE)
endfunction()
fenced_block(cmake cmakelists)
fenced_block(cpp main_cpp)
fenced_block(sh shell)
file(WRITE ${WORK_DIR}/project/CMakeLists.txt "${cmakelists}")
file(WRITE ${WORK_DIR}/project/main.cpp "${main_cpp}")

function(check_output text)
  if(NOT text MATCHES "xor: 4/4 correct")
    message(FATAL_ERROR "the README's program did not learn XOR:\n${text}")
  endif()
  message(STATUS "${text}")
endfunction()

# 1. Install the library alone (component lib): no program in the prefix.
set(prefix ${WORK_DIR}/prefix)
run("cmake --install --component lib" ${CMAKE_COMMAND} --install ${BUILD_DIR} --component lib --prefix ${prefix})
if(EXISTS ${prefix}/bin/tapegrad)
  message(FATAL_ERROR "--component lib installed the program too")
endif()
run("configuring the README project against the install" ${CMAKE_COMMAND} -S ${WORK_DIR}/project
    -B ${WORK_DIR}/build_installed -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
file(STRINGS ${WORK_DIR}/build_installed/CMakeFiles/xor.dir/flags.make flags REGEX "CXX_FLAGS|CXX_DEFINES")
if(flags MATCHES "march|fsanitize")
  message(FATAL_ERROR "the exported target forces build flags on the consumer:\n${flags}")
endif()
run("building the README project against the install" ${CMAKE_COMMAND} --build ${WORK_DIR}/build_installed)
run("running the README program (install)" ${WORK_DIR}/build_installed/xor)
check_output("${last_output}")

# 2. The same project against the build tree (tapegrad_DIR = the build directory).
run("configuring the README project against the build tree" ${CMAKE_COMMAND} -S ${WORK_DIR}/project
    -B ${WORK_DIR}/build_tree -Dtapegrad_DIR=${BUILD_DIR} -DCMAKE_BUILD_TYPE=Release)
run("building the README project against the build tree" ${CMAKE_COMMAND} --build ${WORK_DIR}/build_tree)
run("running the README program (build tree)" ${WORK_DIR}/build_tree/xor)
check_output("${last_output}")

# 3. The README's compiler line for a build without CMake, with its prefix.
string(REPLACE "/opt/tapegrad" "${prefix}" shell "${shell}")
string(REPLACE "\\\n" " " shell "${shell}")  # join continued lines
string(REGEX MATCH "g\\+\\+[^\n]*" line "${shell}")
string(REGEX REPLACE "^g\\+\\+" "${CXX}" line "${line}")
file(WRITE ${WORK_DIR}/plain.sh "cd ${WORK_DIR}/project && ${line}\n")
run("the README's compiler line (${line})" sh ${WORK_DIR}/plain.sh)
run("running the README program (compiler line)" ${WORK_DIR}/project/xor)
check_output("${last_output}")

# 4. The program from an install, far from the source tree: the digits data set
# is compiled in, so no path is needed (TAPEGRAD_DIGITS, which only the source-tree
# loader reads, points nowhere).
if(HAVE_APPS)
  set(full ${WORK_DIR}/full_prefix)
  run("cmake --install (all components)" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${full})
  file(MAKE_DIRECTORY ${WORK_DIR}/elsewhere)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env TAPEGRAD_DIGITS=${WORK_DIR}/nowhere/digits.csv.gz
                          ${full}/bin/tapegrad train --data digits --layers 32 --batch-size 32 --lr 0.01 --epochs 8 --threads 1
                          --progress lines --out ${WORK_DIR}/elsewhere/run
                  WORKING_DIRECTORY ${WORK_DIR}/elsewhere RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "test_accuracy 0\\.9")
    message(FATAL_ERROR "installed tapegrad train --data digits: exit ${rc}\n${out}\n${err}")
  endif()
  message(STATUS "installed tapegrad train --data digits:\n${out}")
endif()
