# cuBLAS and cuRAND for CUDA builds.  A CUDA toolkit without them (like the
# nvcc-only installs this project targets) takes them from the PyPI wheels
# nvidia-cublas / nvidia-curand, which carry headers and libraries under
# site-packages/nvidia/cu13/.

set(SEPNETS_CUDA_ROOT "/usr/local/cuda" CACHE PATH "CUDA toolkit root")
set(SEPNETS_NVIDIA_WHEELS_DIR "" CACHE PATH
    "Folder nvidia/cu13 of the nvidia-cublas/nvidia-curand wheels (empty: ask the Python environment)")

function(sepnets_find_cuda_libs)
  if(NOT EXISTS "${SEPNETS_CUDA_ROOT}/bin/nvcc")
    message(FATAL_ERROR "sepnets: no nvcc in ${SEPNETS_CUDA_ROOT}/bin -- "
      "install the CUDA toolkit or pass -DSEPNETS_CUDA_ROOT=<toolkit>")
  endif()
  set(CUDA_TOOLKIT_ROOT_DIR "${SEPNETS_CUDA_ROOT}" CACHE PATH "" FORCE)
  if(EXISTS "${SEPNETS_CUDA_ROOT}/include/cublas_v2.h" AND
     EXISTS "${SEPNETS_CUDA_ROOT}/include/curand.h")
    set(SEPNETS_CUDA_EXTRA_INCLUDE "" PARENT_SCOPE)
    return()
  endif()
  set(dir "${SEPNETS_NVIDIA_WHEELS_DIR}")
  if(NOT dir AND PYTHON_EXECUTABLE)
    execute_process(COMMAND "${PYTHON_EXECUTABLE}" -c
      "import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], 'cu13'))"
      OUTPUT_VARIABLE dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  if(NOT dir OR NOT EXISTS "${dir}/include/cublas_v2.h" OR NOT EXISTS "${dir}/include/curand.h")
    message(FATAL_ERROR "sepnets: cuBLAS/cuRAND not found in ${SEPNETS_CUDA_ROOT} nor in the "
      "nvidia wheels (${dir}) -- pip install nvidia-cublas nvidia-curand, or pass "
      "-DSEPNETS_NVIDIA_WHEELS_DIR=<site-packages>/nvidia/cu13")
  endif()
  # FindCUDA looks for libcublas.so / libcurand.so, and resets any cached
  # path when it (re)locates the toolkit; the wheels ship only versioned
  # names, so give it unversioned links on CMAKE_LIBRARY_PATH.
  set(links "${CMAKE_BINARY_DIR}/cuda-wheel-libs")
  file(MAKE_DIRECTORY "${links}")
  foreach(name cublas cublasLt curand)
    file(GLOB found "${dir}/lib/lib${name}.so.*")
    if(NOT found)
      message(FATAL_ERROR "sepnets: ${dir}/lib lacks lib${name} -- reinstall the nvidia wheels")
    endif()
    list(GET found 0 found)
    file(CREATE_LINK "${found}" "${links}/lib${name}.so" SYMBOLIC)
  endforeach()
  set(CMAKE_LIBRARY_PATH "${links};${CMAKE_LIBRARY_PATH}" PARENT_SCOPE)
  set(SEPNETS_CUDA_EXTRA_INCLUDE "${dir}/include" PARENT_SCOPE)
  set(SEPNETS_CUDA_EXTRA_LIBDIR "${dir}/lib" PARENT_SCOPE)
  message(STATUS "sepnets: cuBLAS/cuRAND from ${dir}")
endfunction()

sepnets_find_cuda_libs()
if(SEPNETS_CUDA_EXTRA_INCLUDE)
  include_directories(SYSTEM "${SEPNETS_CUDA_EXTRA_INCLUDE}")
  list(APPEND CMAKE_BUILD_RPATH "${SEPNETS_CUDA_EXTRA_LIBDIR}")
  set(CMAKE_BUILD_RPATH "${CMAKE_BUILD_RPATH}")
endif()
