#ifndef CAFFE_UTIL_DNNL_CONV_HPP_
#define CAFFE_UTIL_DNNL_CONV_HPP_

#include <cstddef>
#include <string>

#include "caffe/common.hpp"

namespace caffe {

/// @brief The geometry of one 2-D convolution, in Caffe's terms.
struct DnnlConvShape {
  int num, channels, height, width;
  int num_output, out_height, out_width;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int dilation_h, dilation_w, group;
  bool bias;
};

/**
 * @brief A float 2-D convolution on oneDNN (forward, backward data, backward
 *        weights), on Caffe's NCHW blobs and (O, I/G, KH, KW) weights.
 *
 * Stock Caffe convolves one image at a time (im2col + a small GEMM); oneDNN's
 * direct convolutions on blocked layouts are several times faster on a CPU.
 * Activations are reordered to oneDNN's layout a chunk of images at a time so
 * that the extra memory stays under a fixed budget whatever the batch size.
 * Only built with SEPNETS_USE_DNNL; Available() tells whether it is.
 */
class DnnlConvolution {
 public:
  explicit DnnlConvolution(const DnnlConvShape& shape,
      size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~DnnlConvolution();

  static bool Available();
  static const size_t kDefaultWorkspaceBytes = size_t(32) << 20;

  /// top = conv(bottom, weights) + bias (bias may be NULL if !shape.bias).
  void Forward(const float* bottom, const float* weights, const float* bias,
      float* top);
  /// bottom_diff = conv^T(top_diff, weights) unless bottom_diff is NULL;
  /// weights_diff += dL/dW unless weights_diff is NULL. (Bias gradients are
  /// left to Caffe's own gemv.)
  void Backward(const float* bottom, const float* top_diff,
      const float* weights, float* bottom_diff, float* weights_diff);

  int chunk() const;
  /// OpenMP threads of its calls: fewer than MaxThreads() on small problems,
  /// where waking every thread costs more than the work.
  int threads() const;
  /// oneDNN's implementations of the three passes (e.g. "jit:avx2"): which
  /// kernels a shape really gets.
  std::string implementation() const;
  /// The calling thread's OpenMP threads (omp_get_max_threads()); 1 without
  /// oneDNN.
  static int MaxThreads();

 private:
  class Impl;
  Impl* impl_;
  DISABLE_COPY_AND_ASSIGN(DnnlConvolution);
};

}  // namespace caffe

#endif  // CAFFE_UTIL_DNNL_CONV_HPP_
