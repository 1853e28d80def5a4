# Tests of the `tapegrad` program (apps/) and its library: the unit tests that
# call apps/ code link tapegrad_app; the integration tests run the real binary.
if(NOT TARGET tapegrad_app)
  return()
endif()
foreach(t test_trainer_report test_trainer)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE tapegrad_app)
  endif()
endforeach()
