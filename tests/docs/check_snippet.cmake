# Checks that DOC (a Markdown file) quotes the code of SOURCE between its
# `// docs begin` and `// docs end` lines as it is (less the common indentation),
# so a documented snippet is the code an example compiles and runs.
#   cmake -DSOURCE=examples/hessian.cpp -DDOC=README.md -P check_snippet.cmake
file(READ ${SOURCE} src)
string(FIND "${src}" "// docs begin\n" begin)
string(FIND "${src}" "// docs end" end)
if(begin EQUAL -1 OR end EQUAL -1 OR end LESS begin)
  message(FATAL_ERROR "${SOURCE}: no '// docs begin' ... '// docs end' lines")
endif()
math(EXPR begin "${begin} + 14")
math(EXPR length "${end} - ${begin}")
string(SUBSTRING "${src}" ${begin} ${length} snippet)
string(REGEX REPLACE "\n[ ]+$" "\n" snippet "${snippet}")  # the indentation before `// docs end`
# the snippet's indentation is that of `// docs begin`'s line: 4 spaces in a function body
string(REGEX REPLACE "^    " "" snippet "${snippet}")
string(REPLACE "\n    " "\n" snippet "${snippet}")
file(READ ${DOC} doc)
string(FIND "${doc}" "${snippet}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${DOC} does not quote the snippet of ${SOURCE} as it is; it should contain:\n${snippet}")
endif()
message(STATUS "${DOC} quotes ${SOURCE}'s snippet")
