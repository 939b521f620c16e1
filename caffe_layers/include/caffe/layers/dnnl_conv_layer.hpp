#ifndef CAFFE_DNNL_CONV_LAYER_HPP_
#define CAFFE_DNNL_CONV_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

#include "caffe/layers/conv_layer.hpp"
#include "caffe/util/dnnl_conv.hpp"

namespace caffe {

/**
 * @brief Convolution whose float 2-D CPU passes run on oneDNN.
 *
 * The CPU counterpart of CuDNNConvolutionLayer: same parameters, blobs and
 * results as ConvolutionLayer (up to float summation order), several times
 * faster than its im2col + GEMM on a CPU. Caffe's own path is kept on the GPU,
 * for double, for N-d convolutions and with convolution_param { engine:
 * CAFFE }. The layer factory picks it for Convolution layers with engine
 * DEFAULT when Caffe is built with SEPNETS_USE_DNNL.
 *
 * Subclasses convolve with other weights (e.g. binarized ones) through
 * ConvForward_cpu / ConvBackward_cpu.
 */
template <typename Dtype>
class DnnlConvolutionLayer : public ConvolutionLayer<Dtype> {
 public:
  explicit DnnlConvolutionLayer(const LayerParameter& param)
      : ConvolutionLayer<Dtype>(param),
        dnnl_workspace_bytes_(DnnlConvolution::kDefaultWorkspaceBytes) {}
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  /// @brief Whether the CPU passes run on oneDNN.
  bool uses_dnnl() const { return dnnl_ != NULL; }
  /// @brief Bounds oneDNN's activation copies (bytes); applies at Reshape.
  void set_dnnl_workspace_bytes(size_t bytes) {
    dnnl_workspace_bytes_ = bytes;
    dnnl_.reset();
  }
  /// @brief Images per oneDNN call (0 without oneDNN).
  int dnnl_chunk() const { return dnnl_ ? dnnl_->chunk() : 0; }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  /// top = conv(bottom, weights) + bias.
  void ConvForward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top, const Dtype* weights);
  /// Bias gradient (if learned), bottom gradients where propagate_down, and
  /// weights_diff += dL/dweights unless weights_diff is NULL.
  void ConvBackward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom,
      const Dtype* weights, Dtype* weights_diff);

 private:
  shared_ptr<DnnlConvolution> dnnl_;
  DnnlConvShape dnnl_shape_;
  size_t dnnl_workspace_bytes_;
};

}  // namespace caffe

#endif  // CAFFE_DNNL_CONV_LAYER_HPP_
