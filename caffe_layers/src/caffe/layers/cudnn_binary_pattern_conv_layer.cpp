#ifdef USE_CUDNN
#include <algorithm>
#include <vector>

#include "caffe/layers/cudnn_binary_pattern_conv_layer.hpp"

namespace caffe {

template <typename Dtype>
void CuDNNBinaryPatternConvolutionLayer<Dtype>::LayerSetUp(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  BinaryPatternConvolutionLayer<Dtype>::LayerSetUp(bottom, top);
  CUDNN_CHECK(cudnnCreate(&handle_));  // on the default stream, like Caffe's
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&bottom_desc_));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&top_desc_));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias_desc_));
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&filter_desc_));
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_desc_));
  fwd_bytes_ = bwd_filter_bytes_ = bwd_data_bytes_ = 0;
  handles_setup_ = true;
}

template <typename Dtype>
void CuDNNBinaryPatternConvolutionLayer<Dtype>::Reshape(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  // The base class's Reshape without oneDNN's CPU primitives: this engine's
  // CPU passes (CPU mode after creation) are Caffe's own.
  ConvolutionLayer<Dtype>::Reshape(bottom, top);
  this->ReshapePatternBuffers();
  CHECK_EQ(2, this->num_spatial_axes_)
      << "BinaryPatternConvolution layer '" << this->layer_param_.name()
      << "': the cuDNN engine takes 2 spatial axes; use "
      << "convolution_param { engine: CAFFE } for N-d convolution";
  CHECK_EQ(1, this->channel_axis_)
      << "BinaryPatternConvolution layer '" << this->layer_param_.name()
      << "': the cuDNN engine takes channels on axis 1; use engine: CAFFE";
  if (bottom[0]->shape() == algo_shape_) {
    return;
  }
  algo_shape_ = bottom[0]->shape();
  const int num = bottom[0]->shape(0);
  const int height = bottom[0]->shape(2);
  const int width = bottom[0]->shape(3);
  const int height_out = top[0]->shape(2);
  const int width_out = top[0]->shape(3);
  const int* kernel = this->kernel_shape_.cpu_data();
  const int* pad = this->pad_.cpu_data();
  const int* stride = this->stride_.cpu_data();
  const int* dilation = this->dilation_.cpu_data();
  const cudnnDataType_t type = cudnn::dataType<Dtype>::type;
  cudnn::setTensor4dDesc<Dtype>(&bottom_desc_, num, this->channels_,
      height, width);
  cudnn::setTensor4dDesc<Dtype>(&top_desc_, num, this->num_output_,
      height_out, width_out);
  cudnn::setTensor4dDesc<Dtype>(&bias_desc_, 1, this->num_output_, 1, 1);
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(filter_desc_, type, CUDNN_TENSOR_NCHW,
      this->num_output_, this->channels_ / this->group_, kernel[0], kernel[1]));
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv_desc_, pad[0], pad[1],
      stride[0], stride[1], dilation[0], dilation[1], CUDNN_CROSS_CORRELATION,
      type));
  CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv_desc_, this->group_));
  // Full precision, as the other engines: no TF32 tensor cores on Ampere+.
#if CUDNN_VERSION_MIN(8, 0, 0)
  CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, CUDNN_FMA_MATH));
#endif
  ChooseAlgorithms();
  const size_t need = std::max(fwd_bytes_,
      std::max(bwd_filter_bytes_, bwd_data_bytes_));
  if (need > workspace_bytes_) {
    if (workspace_) {
      CUDA_CHECK(cudaFree(workspace_));
      workspace_ = NULL;
    }
    CUDA_CHECK(cudaMalloc(&workspace_, need));
    workspace_bytes_ = need;
  }
  LOG_IF(INFO, Caffe::root_solver()) << this->layer_param_.name()
      << ": cuDNN algorithms forward " << fwd_algo_ << ", backward filter "
      << bwd_filter_algo_ << ", backward data " << bwd_data_algo_
      << " (workspace " << need << " bytes)";
}

// cuDNN's heuristics within the workspace limit (Caffe's cudnn.hpp helpers:
// the _v7 queries since cuDNN 8), then the workspace each algorithm needs.
template <typename Dtype>
void CuDNNBinaryPatternConvolutionLayer<Dtype>::ChooseAlgorithms() {
  const size_t limit = kWorkspaceLimitBytes;
  cudnn::getConvolutionForwardAlgorithm(handle_, bottom_desc_, filter_desc_,
      conv_desc_, top_desc_, limit, &fwd_algo_);
  CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle_, bottom_desc_,
      filter_desc_, conv_desc_, top_desc_, fwd_algo_, &fwd_bytes_));
  cudnn::getConvolutionBackwardFilterAlgorithm(handle_, bottom_desc_,
      top_desc_, conv_desc_, filter_desc_, limit, &bwd_filter_algo_);
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle_,
      bottom_desc_, top_desc_, conv_desc_, filter_desc_, bwd_filter_algo_,
      &bwd_filter_bytes_));
  cudnn::getConvolutionBackwardDataAlgorithm(handle_, filter_desc_, top_desc_,
      conv_desc_, bottom_desc_, limit, &bwd_data_algo_);
  CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle_,
      filter_desc_, top_desc_, conv_desc_, bottom_desc_, bwd_data_algo_,
      &bwd_data_bytes_));
}

template <typename Dtype>
CuDNNBinaryPatternConvolutionLayer<Dtype>::~CuDNNBinaryPatternConvolutionLayer() {
  if (!handles_setup_) { return; }
  cudnnDestroyTensorDescriptor(bottom_desc_);
  cudnnDestroyTensorDescriptor(top_desc_);
  cudnnDestroyTensorDescriptor(bias_desc_);
  cudnnDestroyFilterDescriptor(filter_desc_);
  cudnnDestroyConvolutionDescriptor(conv_desc_);
  cudnnDestroy(handle_);
  if (workspace_) { cudaFree(workspace_); }
}

INSTANTIATE_CLASS(CuDNNBinaryPatternConvolutionLayer);

}  // namespace caffe
#endif  // USE_CUDNN
