#ifdef USE_CUDNN
#include <vector>

#include "caffe/layers/cudnn_binary_pattern_conv_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void CuDNNBinaryPatternConvolutionLayer<Dtype>::Forward_gpu(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  this->Binarize_gpu();
  const Dtype* weight = this->effective_weights_.gpu_data();
  for (int i = 0; i < bottom.size(); ++i) {
    Dtype* top_data = top[i]->mutable_gpu_data();
    CUDNN_CHECK(cudnnConvolutionForward(handle_, cudnn::dataType<Dtype>::one,
        bottom_desc_, bottom[i]->gpu_data(), filter_desc_, weight, conv_desc_,
        fwd_algo_, workspace_, fwd_bytes_, cudnn::dataType<Dtype>::zero,
        top_desc_, top_data));
    if (this->bias_term_) {
      CUDNN_CHECK(cudnnAddTensor(handle_, cudnn::dataType<Dtype>::one,
          bias_desc_, this->blobs_[1]->gpu_data(), cudnn::dataType<Dtype>::one,
          top_desc_, top_data));
    }
  }
}

// The same routing as BinaryPatternConvolutionLayer::Backward_gpu: cuDNN
// gives dL/dWeff, the bias and the bottom gradients; BackwardWeights_gpu
// turns dL/dWeff into the gradients of alpha (FIXED, MEAN) and W (STE).
template <typename Dtype>
void CuDNNBinaryPatternConvolutionLayer<Dtype>::Backward_gpu(
    const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
    const vector<Blob<Dtype>*>& bottom) {
  const Dtype* weight = this->effective_weights_.gpu_data();
  const bool weight_grad = (this->ste() && this->param_propagate_down_[0]) ||
      (this->learn_scale() && this->param_propagate_down_[this->alpha_index_]);
  Dtype* weight_diff = NULL;
  if (weight_grad) {
    weight_diff = this->effective_weights_.mutable_gpu_diff();
    caffe_gpu_set(this->effective_weights_.count(), Dtype(0), weight_diff);
  }
  for (int i = 0; i < top.size(); ++i) {
    const Dtype* top_diff = top[i]->gpu_diff();
    if (this->bias_term_ && this->param_propagate_down_[1]) {
      CUDNN_CHECK(cudnnConvolutionBackwardBias(handle_,
          cudnn::dataType<Dtype>::one, top_desc_, top_diff,
          cudnn::dataType<Dtype>::one, bias_desc_,
          this->blobs_[1]->mutable_gpu_diff()));
    }
    if (weight_grad) {
      CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_,
          cudnn::dataType<Dtype>::one, bottom_desc_, bottom[i]->gpu_data(),
          top_desc_, top_diff, conv_desc_, bwd_filter_algo_, workspace_,
          bwd_filter_bytes_, cudnn::dataType<Dtype>::one, filter_desc_,
          weight_diff));
    }
    if (propagate_down[i]) {
      CUDNN_CHECK(cudnnConvolutionBackwardData(handle_,
          cudnn::dataType<Dtype>::one, filter_desc_, weight, top_desc_,
          top_diff, conv_desc_, bwd_data_algo_, workspace_, bwd_data_bytes_,
          cudnn::dataType<Dtype>::zero, bottom_desc_,
          bottom[i]->mutable_gpu_diff()));
    }
  }
  if (weight_grad) {
    this->BackwardWeights_gpu();
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(CuDNNBinaryPatternConvolutionLayer);

}  // namespace caffe
#endif  // USE_CUDNN
