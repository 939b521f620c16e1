#ifndef CAFFE_CUDNN_BINARY_PATTERN_CONV_LAYER_HPP_
#define CAFFE_CUDNN_BINARY_PATTERN_CONV_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

#include "caffe/layers/binary_pattern_conv_layer.hpp"

#ifdef USE_CUDNN
#include "caffe/util/cudnn.hpp"
#endif

namespace caffe {

#ifdef USE_CUDNN
/**
 * @brief cuDNN engine of BinaryPatternConvolutionLayer, picked by the layer
 *        factory for nets built in GPU mode (engine DEFAULT or CUDNN), as
 *        Caffe picks CuDNNConvolutionLayer for Convolution.
 *
 * The effective filters alpha_c * sign(W_c) are made on the device by the
 * base class (Binarize_gpu), convolved with cuDNN (groups and dilation in one
 * call, FMA math: no TF32), and the gradient cuDNN gives for the effective
 * filters is routed to alpha and W exactly as on the other engines
 * (BackwardWeights_gpu): FIXED never writes W's gradient, STE follows the
 * layer's closed form. 2-D only (engine: CAFFE for N-d). Algorithms come
 * from cuDNN's heuristics (cudnnGet*Algorithm_v7) within a workspace limit,
 * chosen again only when the input shape changes. In CPU mode the layer
 * runs Caffe's own CPU code (no oneDNN primitives are made for it).
 */
template <typename Dtype>
class CuDNNBinaryPatternConvolutionLayer
    : public BinaryPatternConvolutionLayer<Dtype> {
 public:
  explicit CuDNNBinaryPatternConvolutionLayer(const LayerParameter& param)
      : BinaryPatternConvolutionLayer<Dtype>(param), handles_setup_(false),
        workspace_(NULL), workspace_bytes_(0) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual ~CuDNNBinaryPatternConvolutionLayer();

  /// @brief Largest workspace (bytes) an algorithm may ask for.
  static const size_t kWorkspaceLimitBytes = 64 * 1024 * 1024;
  /// @brief The algorithms chosen at the last shape change (for logs, tests).
  cudnnConvolutionFwdAlgo_t forward_algorithm() const { return fwd_algo_; }
  cudnnConvolutionBwdFilterAlgo_t backward_filter_algorithm() const {
    return bwd_filter_algo_;
  }
  cudnnConvolutionBwdDataAlgo_t backward_data_algorithm() const {
    return bwd_data_algo_;
  }

 protected:
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  /// Picks the three algorithms for the current descriptors.
  void ChooseAlgorithms();

  bool handles_setup_;
  cudnnHandle_t handle_;
  cudnnTensorDescriptor_t bottom_desc_, top_desc_, bias_desc_;
  cudnnFilterDescriptor_t filter_desc_;
  cudnnConvolutionDescriptor_t conv_desc_;
  cudnnConvolutionFwdAlgo_t fwd_algo_;
  cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo_;
  cudnnConvolutionBwdDataAlgo_t bwd_data_algo_;
  size_t fwd_bytes_, bwd_filter_bytes_, bwd_data_bytes_;
  vector<int> algo_shape_;  // bottom shape the algorithms were chosen for
  void* workspace_;
  size_t workspace_bytes_;
};
#endif  // USE_CUDNN

}  // namespace caffe

#endif  // CAFFE_CUDNN_BINARY_PATTERN_CONV_LAYER_HPP_
