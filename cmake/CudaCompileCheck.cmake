# Target cuda_compile_check: in a CPU build, compile the CUDA code so that it
# cannot rot unseen on machines with no GPU:
#   * the project's (caffe_layers): .cu with nvcc for SEPNETS_CUDA_ARCHS, the
#     .cpp and GPU tests without CPU_ONLY;
#   * with the cuDNN and NCCL headers (SEPNETS_CUDNN_CHECK_INCLUDE,
#     SEPNETS_NCCL_CHECK_INCLUDE; scripts/check_cuda.sh takes them from the
#     nvidia-cudnn-cu13 / nvidia-nccl-cu13 wheels): all of the above with
#     USE_CUDNN and USE_NCCL (the cuDNN engine and its tests), and Caffe's own
#     cuDNN and NCCL code as patched here -- cudnn_* layers (.cu with nvcc for
#     one architecture: their device code is one empty kernel), the cudnn util,
#     layer_factory.cpp, parallel.cpp, tools/caffe.cpp, pycaffe's _caffe.cpp
#     and the GTest files with cuDNN or NCCL tests.
# .cpp files are checked with g++ -fsyntax-only (CUDA and cuBLAS headers, no
# CPU_ONLY). Needs nvcc and the cuBLAS/cuRAND headers (system or wheels).

include(${CMAKE_CURRENT_LIST_DIR}/SepnetsEnv.cmake)

find_program(SEPNETS_NVCC nvcc PATHS /usr/local/cuda/bin NO_DEFAULT_PATH)
find_program(SEPNETS_NVCC nvcc)
if(NOT SEPNETS_NVCC)
  message(STATUS "sepnets: no nvcc, target cuda_compile_check not available")
  return()
endif()
get_filename_component(_cuda_root "${SEPNETS_NVCC}" DIRECTORY)
get_filename_component(_cuda_root "${_cuda_root}" DIRECTORY)
set(_dirs "${_cuda_root}/include")
if(EXISTS "${_cuda_root}/include/cccl")
  list(APPEND _dirs "${_cuda_root}/include/cccl")  # thrust for g++ (nvcc adds it)
endif()
if(NOT EXISTS "${_cuda_root}/include/cublas_v2.h")
  sepnets_env(_wheel_inc nvidia-dir)
  if(_wheel_inc)
    set(_wheel_inc "${_wheel_inc}/include")
  endif()
  set(SEPNETS_CUDA_CHECK_INCLUDE "${_wheel_inc}" CACHE PATH
      "cuBLAS/cuRAND headers for cuda_compile_check")
  list(APPEND _dirs "${SEPNETS_CUDA_CHECK_INCLUDE}")
endif()
# cuDNN and NCCL headers: given, or from the Python environment's wheels.
foreach(_lib cudnn nccl)
  string(TOUPPER "${_lib}" _LIB)
  if(NOT SEPNETS_${_LIB}_CHECK_INCLUDE)
    sepnets_env(_wheel_inc nvidia-include ${_lib})
    set(SEPNETS_${_LIB}_CHECK_INCLUDE "${_wheel_inc}" CACHE PATH
        "${_lib}.h folder for cuda_compile_check (empty: that part is not checked)" FORCE)
  endif()
endforeach()
set(_defs -DUSE_OPENCV -DUSE_LMDB -DUSE_LEVELDB)
set(_with_cudnn_nccl OFF)
if(EXISTS "${SEPNETS_CUDNN_CHECK_INCLUDE}/cudnn.h" AND
   EXISTS "${SEPNETS_NCCL_CHECK_INCLUDE}/nccl.h")
  set(_with_cudnn_nccl ON)
  list(APPEND _dirs "${SEPNETS_CUDNN_CHECK_INCLUDE}" "${SEPNETS_NCCL_CHECK_INCLUDE}")
  list(APPEND _defs -DUSE_CUDNN -DUSE_NCCL)
else()
  message(STATUS "sepnets: no cuDNN/NCCL headers, cuda_compile_check leaves out "
    "the cuDNN and NCCL code (scripts/check_cuda.sh provides them)")
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
list(GET _gencode -1 _gencode_one)

set(_outdir "${CMAKE_BINARY_DIR}/cuda_compile_check")
set(_outputs "")
# Adds the compile of `src` (relative to the Caffe tree) to the target.
function(sepnets_check_compile src out gencode extra_flags)
  get_filename_component(name "${src}" NAME)
  if(src MATCHES "\\.cu$")
    add_custom_command(OUTPUT "${out}"
      COMMAND "${SEPNETS_NVCC}" -std=c++17 -O2 ${gencode} ${_inc} ${_defs}
              -Xcompiler -fPIC -c "${SEPNETS_CAFFE_DIR}/${src}" -o "${out}"
      DEPENDS "${SEPNETS_CAFFE_DIR}/${src}" caffeproto
      COMMENT "nvcc ${name}" VERBATIM)
  else()
    add_custom_command(OUTPUT "${out}"
      COMMAND ${CMAKE_CXX_COMPILER} -std=c++17 -fsyntax-only ${_inc} ${extra_flags}
              "-I${CMAKE_BINARY_DIR}/caffe/src" "-I${SEPNETS_CAFFE_DIR}/src"
              ${_defs} "${SEPNETS_CAFFE_DIR}/${src}"
      COMMAND ${CMAKE_COMMAND} -E touch "${out}"
      DEPENDS "${SEPNETS_CAFFE_DIR}/${src}" caffeproto
      COMMENT "g++ (CUDA headers, no CPU_ONLY) ${name}" VERBATIM)
  endif()
endfunction()

foreach(f IN LISTS SEPNETS_OVERLAY_FILES)
  if(NOT f MATCHES "\\.(cu|cpp)$")
    continue()
  endif()
  get_filename_component(name "${f}" NAME)
  sepnets_check_compile("${f}" "${_outdir}/${name}.o" "${_gencode}" "")
  list(APPEND _outputs "${_outdir}/${name}.o")
endforeach()

if(_with_cudnn_nccl)
  file(GLOB _caffe_cudnn RELATIVE "${SEPNETS_CAFFE_DIR}"
       "${SEPNETS_CAFFE_DIR}/src/caffe/layers/cudnn_*.cpp"
       "${SEPNETS_CAFFE_DIR}/src/caffe/layers/cudnn_*.cu")
  list(FILTER _caffe_cudnn EXCLUDE REGEX "binary_pattern")  # the project's: above
  list(APPEND _caffe_cudnn src/caffe/util/cudnn.cpp src/caffe/layer_factory.cpp
       src/caffe/parallel.cpp tools/caffe.cpp)
  foreach(t convolution_layer deconvolution_layer lrn_layer neuron_layer pooling_layer
            softmax_layer gradient_based_solver)
    list(APPEND _caffe_cudnn "src/caffe/test/test_${t}.cpp")
  endforeach()
  foreach(f IN LISTS _caffe_cudnn)
    get_filename_component(name "${f}" NAME)
    sepnets_check_compile("${f}" "${_outdir}/caffe/${name}.o" "${_gencode_one}" "")
    list(APPEND _outputs "${_outdir}/caffe/${name}.o")
  endforeach()
  # pycaffe's NCCL class.
  execute_process(COMMAND "${PYTHON_EXECUTABLE}" -c
    "import numpy, sysconfig; print(sysconfig.get_paths()['include'] + ';' + numpy.get_include())"
    OUTPUT_VARIABLE _py_inc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_py_inc)
    set(_py_flags "")
    foreach(d IN LISTS _py_inc)
      list(APPEND _py_flags "-I${d}")
    endforeach()
    sepnets_check_compile(python/caffe/_caffe.cpp "${_outdir}/caffe/_caffe.cpp.o"
                          "" "${_py_flags}")
    list(APPEND _outputs "${_outdir}/caffe/_caffe.cpp.o")
  endif()
endif()
file(MAKE_DIRECTORY "${_outdir}/caffe")
add_custom_target(cuda_compile_check DEPENDS ${_outputs})
