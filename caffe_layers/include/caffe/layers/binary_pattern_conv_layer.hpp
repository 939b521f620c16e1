#ifndef CAFFE_BINARY_PATTERN_CONV_LAYER_HPP_
#define CAFFE_BINARY_PATTERN_CONV_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

#include "caffe/layers/dnnl_conv_layer.hpp"

namespace caffe {

/**
 * @brief Convolution with pattern-binarized filters (SEP-Nets, Li et al. 2017):
 *        filter c acts as @f$ \alpha_c \mathrm{sign}(W_c) @f$, sign(0) = +1.
 *
 * Takes every convolution_param option of ConvolutionLayer plus
 * binary_pattern_param. Param blobs, in order:
 *   0. W      the weights; their signs are the binary patterns (FIXED) or
 *             latent real weights binarized at every pass (STE),
 *   1. bias   if bias_term,
 *   2. alpha  one scale per filter; only with scale_mode MEAN and train_mode
 *             FIXED, where it is learned. A value of 0 means "unbound": the
 *             first forward pass sets it to mean |W_c|, so a model trained with
 *             a stock Convolution loads by name (blobs 0 and 1 only).
 * In FIXED mode the gradient of W is never written: give blob 0
 * lr_mult: 0 and decay_mult: 0, as the release did for its pattern layers.
 * With OFFSET, every filter uses the one constant alpha = offset.
 * On the CPU, float 2-D convolutions run on oneDNN (DnnlConvolutionLayer);
 * on the GPU, in a build with cuDNN, the layer factory makes the sibling
 * engine CuDNNBinaryPatternConvolutionLayer for nets built in GPU mode;
 * convolution_param { engine: CAFFE } forces Caffe's own implementation.
 * STE uses the gradient of alpha(W) * hardtanh(W): with MEAN,
 *   dW_j = alpha dWeff_j 1{|w_j| <= ste_clip} + (B_j / n) sum_k dWeff_k B_k,
 * with OFFSET only the first term (n = filter size, B = sign(W)).
 */
template <typename Dtype>
class BinaryPatternConvolutionLayer : public DnnlConvolutionLayer<Dtype> {
 public:
  explicit BinaryPatternConvolutionLayer(const LayerParameter& param)
      : DnnlConvolutionLayer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const {
    return "BinaryPatternConvolution";
  }
  virtual inline int MinLoadedBlobs() const {
    return this->bias_term_ ? 2 : 1;
  }

  /// @brief The effective weights alpha_c * sign(W_c) of the last pass.
  const Blob<Dtype>& effective_weights() const { return effective_weights_; }
  /// @brief The scales alpha_c of the last pass (one per filter).
  const Blob<Dtype>& scales() const { return scales_; }
 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  /// Shapes effective_weights_ and scales_ after W; every engine's Reshape
  /// calls it, so a buffer added here reaches them all.
  void ReshapePatternBuffers();
  /// Fills scales_ and effective_weights_ from W (and the alpha blob).
  void Binarize_cpu();
  void Binarize_gpu();
  /// Turns the gradient of the effective weights into those of alpha and W.
  void BackwardWeights_cpu();
  void BackwardWeights_gpu();

  bool learn_scale() const { return alpha_index_ >= 0; }
  bool ste() const { return train_mode_ == BinaryPatternParameter_TrainMode_STE; }

  BinaryPatternParameter_ScaleMode scale_mode_;
  BinaryPatternParameter_TrainMode train_mode_;
  Dtype offset_;
  Dtype ste_clip_;
  int alpha_index_;   // index of the alpha blob in blobs_, or -1
  int filter_dim_;    // entries per filter: (channels / group) * prod(kernel)

  Blob<Dtype> effective_weights_;  // data: alpha * sign(W); diff: its gradient
  Blob<Dtype> scales_;             // alpha used in the last forward pass
};

}  // namespace caffe

#endif  // CAFFE_BINARY_PATTERN_CONV_LAYER_HPP_
