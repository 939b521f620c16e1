# Target cuda_compile_check: in a CPU build, compile the project's CUDA code
# (caffe_layers .cu with nvcc for SEPNETS_CUDA_ARCHS, and the layers' .cpp and
# GPU tests without CPU_ONLY) so that it cannot rot unseen on machines with no
# GPU.  Needs nvcc and the cuBLAS/cuRAND headers (system or nvidia wheels).

find_program(SEPNETS_NVCC nvcc PATHS /usr/local/cuda/bin NO_DEFAULT_PATH)
find_program(SEPNETS_NVCC nvcc)
if(NOT SEPNETS_NVCC)
  message(STATUS "sepnets: no nvcc, target cuda_compile_check not available")
  return()
endif()
get_filename_component(_cuda_root "${SEPNETS_NVCC}" DIRECTORY)
get_filename_component(_cuda_root "${_cuda_root}" DIRECTORY)
set(_dirs "${_cuda_root}/include")
if(NOT EXISTS "${_cuda_root}/include/cublas_v2.h")
  execute_process(COMMAND "${PYTHON_EXECUTABLE}" -c
    "import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], 'cu13', 'include'))"
    OUTPUT_VARIABLE _wheel_inc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  set(SEPNETS_CUDA_CHECK_INCLUDE "${_wheel_inc}" CACHE PATH
      "cuBLAS/cuRAND headers for cuda_compile_check")
  list(APPEND _dirs "${SEPNETS_CUDA_CHECK_INCLUDE}")
endif()
list(APPEND _dirs "${SEPNETS_CAFFE_DIR}/include" "${CMAKE_BINARY_DIR}/caffe/include"
     /usr/include/hdf5/serial /usr/include/opencv4)
set(_inc "")
foreach(d IN LISTS _dirs)
  list(APPEND _inc "-I${d}")
endforeach()
set(_gencode "")
foreach(a IN LISTS SEPNETS_CUDA_ARCHS)
  string(REPLACE " " ";" _as "${a}")
  foreach(x IN LISTS _as)
    list(APPEND _gencode "-gencode=arch=compute_${x},code=sm_${x}")
  endforeach()
endforeach()

set(_outputs "")
foreach(f IN LISTS SEPNETS_OVERLAY_FILES)
  set(src "${SEPNETS_CAFFE_DIR}/${f}")
  get_filename_component(name "${f}" NAME)
  set(out "${CMAKE_BINARY_DIR}/cuda_compile_check/${name}.o")
  if(f MATCHES "\\.cu$")
    add_custom_command(OUTPUT "${out}"
      COMMAND "${SEPNETS_NVCC}" -std=c++17 -O2 ${_gencode} ${_inc}
              -DUSE_OPENCV -DUSE_LMDB -DUSE_LEVELDB -Xcompiler -fPIC -c "${src}" -o "${out}"
      DEPENDS "${src}" caffeproto
      COMMENT "nvcc ${name} for sm ${SEPNETS_CUDA_ARCHS}" VERBATIM)
  elseif(f MATCHES "\\.cpp$")
    add_custom_command(OUTPUT "${out}"
      COMMAND ${CMAKE_CXX_COMPILER} -std=c++17 -fsyntax-only ${_inc}
              "-I${CMAKE_BINARY_DIR}/caffe/src" "-I${SEPNETS_CAFFE_DIR}/src"
              -DUSE_OPENCV -DUSE_LMDB -DUSE_LEVELDB "${src}"
      COMMAND ${CMAKE_COMMAND} -E touch "${out}"
      DEPENDS "${src}" caffeproto
      COMMENT "g++ (CUDA headers, no CPU_ONLY) ${name}" VERBATIM)
  else()
    continue()
  endif()
  list(APPEND _outputs "${out}")
endforeach()
file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/cuda_compile_check")
add_custom_target(cuda_compile_check DEPENDS ${_outputs})
