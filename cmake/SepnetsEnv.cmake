# sepnets_env(<out_var> <command> [args...]): what `python -m
# sepnets.caffeio.env <command> [args...]` prints with the build's Python
# (PYTHON_EXECUTABLE), or "" when it finds nothing. That module is the one
# place that knows where the nvidia wheels put their folders (a namespace
# package: each wheel may add a site folder), so the CMake files ask it
# rather than carry their own copies of the lookup.
function(sepnets_env out_var)
  set(_out "")
  if(PYTHON_EXECUTABLE)
    execute_process(
      COMMAND "${CMAKE_COMMAND}" -E env
              "PYTHONPATH=${PROJECT_SOURCE_DIR}/python:$ENV{PYTHONPATH}"
              "${PYTHON_EXECUTABLE}" -m sepnets.caffeio.env ${ARGN}
      OUTPUT_VARIABLE _out RESULT_VARIABLE _rc
      OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(NOT _rc EQUAL 0)
      set(_out "")
    endif()
  endif()
  set(${out_var} "${_out}" PARENT_SCOPE)
endfunction()
