# cuBLAS and cuRAND for CUDA builds.  A CUDA toolkit without them (like the
# nvcc-only installs this project targets) takes them from the PyPI wheels
# nvidia-cublas / nvidia-curand, which carry headers and libraries under
# site-packages/nvidia/cu13/.

include(${CMAKE_CURRENT_LIST_DIR}/SepnetsEnv.cmake)

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
  if(NOT dir)
    sepnets_env(dir nvidia-dir)
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

# cuDNN and NCCL for CUDA builds: the system's (cudnn.h / nccl.h with an
# unversioned library) when present, else the PyPI wheels nvidia-cudnn-cu13 /
# nvidia-nccl-cu13 (site-packages/nvidia/{cudnn,nccl}/{include,lib}, which
# ship only libcudnn.so.9 / libnccl.so.2: they are linked by full path and
# found at run time through the build's RPATH). Caffe's own detection
# (detect_cuDNN, FindNCCL) then takes the cached paths set here.

# Sets the cache entries inc_var (folder of header) and lib_var (library) from
# the system or the wheel `wheel` (pip name pip_name), unless already set.
function(sepnets_find_nvidia_lib what header lib wheel pip_name inc_var lib_var)
  if(${inc_var} AND ${lib_var} AND EXISTS "${${inc_var}}/${header}")
    return()
  endif()
  find_path(_sys_inc ${header} PATHS "${SEPNETS_CUDA_ROOT}/include" NO_CACHE)
  find_library(_sys_lib ${lib} PATHS "${SEPNETS_CUDA_ROOT}/lib64" NO_CACHE)
  if(_sys_inc AND _sys_lib)
    set(${inc_var} "${_sys_inc}" CACHE PATH "${what} headers" FORCE)
    set(${lib_var} "${_sys_lib}" CACHE FILEPATH "${what} library" FORCE)
    message(STATUS "sepnets: ${what} from the system (${_sys_lib})")
    return()
  endif()
  # site-packages/nvidia/<wheel> of the build's Python, when it has include/<header>
  sepnets_env(dir nvidia-include ${wheel})
  if(dir)
    get_filename_component(dir "${dir}" DIRECTORY)
  endif()
  file(GLOB found "${dir}/lib/lib${lib}.so.*")
  if(NOT dir OR NOT EXISTS "${dir}/include/${header}" OR NOT found)
    message(FATAL_ERROR "sepnets: ${what} not found on the system nor in the ${pip_name} wheel "
      "of ${PYTHON_EXECUTABLE} -- pip install ${pip_name} there (scripts/setup.sh does), "
      "pass -D${inc_var}=<include dir> -D${lib_var}=<library>, or configure with "
      "-DSEPNETS_CUDNN=OFF (no cuDNN, no NCCL)")
  endif()
  list(SORT found)
  list(GET found 0 found)
  set(${inc_var} "${dir}/include" CACHE PATH "${what} headers" FORCE)
  set(${lib_var} "${found}" CACHE FILEPATH "${what} library" FORCE)
  message(STATUS "sepnets: ${what} from the ${pip_name} wheel (${found})")
endfunction()

# The library's folder joins the build's RPATH (a no-op for system folders).
macro(sepnets_find_cudnn)
  sepnets_find_nvidia_lib(cuDNN cudnn.h cudnn cudnn nvidia-cudnn-cu13
                          CUDNN_INCLUDE CUDNN_LIBRARY)
  get_filename_component(_sepnets_libdir "${CUDNN_LIBRARY}" DIRECTORY)
  list(APPEND CMAKE_BUILD_RPATH "${_sepnets_libdir}")
endmacro()

macro(sepnets_find_nccl)
  sepnets_find_nvidia_lib(NCCL nccl.h nccl nccl nvidia-nccl-cu13
                          NCCL_INCLUDE_DIR NCCL_LIBRARIES)
  get_filename_component(_sepnets_libdir "${NCCL_LIBRARIES}" DIRECTORY)
  list(APPEND CMAKE_BUILD_RPATH "${_sepnets_libdir}")
endmacro()
