#ifndef CAFFE_UTIL_OMP_THREADS_HPP_
#define CAFFE_UTIL_OMP_THREADS_HPP_

#include <algorithm>
#include <cstddef>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace caffe {

/**
 * @brief OpenMP threads for a memory-bound pass over `elements` floats.
 *
 * Waking a thread costs microseconds; a pass over a few thousand floats takes
 * less. So small blobs (a batch-1 test net, a 7x7 head) run on the calling
 * thread and large ones on up to omp_get_max_threads() (OMP_NUM_THREADS).
 * Files compiled without OpenMP get 1 and their pragmas are ignored.
 */
inline int OmpThreadsFor(size_t elements) {
#ifdef _OPENMP
  static const size_t kElementsPerThread = size_t(1) << 15;
  const int most = omp_get_max_threads();
  return static_cast<int>(std::max<size_t>(1,
      std::min<size_t>(most, elements / kElementsPerThread)));
#else
  return 1;
#endif
}

}  // namespace caffe

#endif  // CAFFE_UTIL_OMP_THREADS_HPP_
