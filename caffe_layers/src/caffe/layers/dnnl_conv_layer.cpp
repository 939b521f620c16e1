#include <cstring>
#include <vector>

#include "caffe/layers/dnnl_conv_layer.hpp"

namespace caffe {

template <typename Dtype>
void DnnlConvolutionLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  ConvolutionLayer<Dtype>::Reshape(bottom, top);
  const ConvolutionParameter& conv = this->layer_param_.convolution_param();
  if (!DnnlConvolution::Available() || sizeof(Dtype) != sizeof(float) ||
      this->num_spatial_axes_ != 2 || this->channel_axis_ != 1 ||
      bottom[0]->num_axes() != 4 ||
      conv.engine() == ConvolutionParameter_Engine_CAFFE) {
    dnnl_.reset();
    return;
  }
  const int* kernel = this->kernel_shape_.cpu_data();
  const int* stride = this->stride_.cpu_data();
  const int* pad = this->pad_.cpu_data();
  const int* dilation = this->dilation_.cpu_data();
  DnnlConvShape s;
  memset(&s, 0, sizeof(s));  // padding bytes too: shapes compare with memcmp
  s.num = bottom[0]->shape(0);
  s.channels = bottom[0]->shape(1);
  s.height = bottom[0]->shape(2);
  s.width = bottom[0]->shape(3);
  s.num_output = this->num_output_;
  s.out_height = this->output_shape_[0];
  s.out_width = this->output_shape_[1];
  s.kernel_h = kernel[0];
  s.kernel_w = kernel[1];
  s.stride_h = stride[0];
  s.stride_w = stride[1];
  s.pad_h = pad[0];
  s.pad_w = pad[1];
  s.dilation_h = dilation[0];
  s.dilation_w = dilation[1];
  s.group = this->group_;
  s.bias = this->bias_term_;
  if (dnnl_ && memcmp(&s, &dnnl_shape_, sizeof(s)) == 0) {
    return;
  }
  dnnl_shape_ = s;
  dnnl_.reset(new DnnlConvolution(s, dnnl_workspace_bytes_));
  LOG_IF(INFO, Caffe::root_solver()) << this->layer_param_.name()
      << ": oneDNN " << dnnl_->implementation() << " (group " << s.group
      << ", " << dnnl_->threads() << " thread(s))";
}

template <typename Dtype>
void DnnlConvolutionLayer<Dtype>::ConvForward_cpu(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top,
    const Dtype* weights) {
  const Dtype* bias = this->bias_term_ ? this->blobs_[1]->cpu_data() : NULL;
  for (int i = 0; i < bottom.size(); ++i) {
    const Dtype* bottom_data = bottom[i]->cpu_data();
    Dtype* top_data = top[i]->mutable_cpu_data();
    if (dnnl_) {
      // dnnl_ exists only for float.
      dnnl_->Forward(reinterpret_cast<const float*>(bottom_data),
          reinterpret_cast<const float*>(weights),
          reinterpret_cast<const float*>(bias),
          reinterpret_cast<float*>(top_data));
      continue;
    }
    for (int n = 0; n < this->num_; ++n) {
      this->forward_cpu_gemm(bottom_data + n * this->bottom_dim_, weights,
          top_data + n * this->top_dim_);
      if (this->bias_term_) {
        this->forward_cpu_bias(top_data + n * this->top_dim_, bias);
      }
    }
  }
}

template <typename Dtype>
void DnnlConvolutionLayer<Dtype>::ConvBackward_cpu(
    const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
    const vector<Blob<Dtype>*>& bottom, const Dtype* weights,
    Dtype* weights_diff) {
  for (int i = 0; i < top.size(); ++i) {
    const Dtype* top_diff = top[i]->cpu_diff();
    if (this->bias_term_ && this->param_propagate_down_[1]) {
      Dtype* bias_diff = this->blobs_[1]->mutable_cpu_diff();
      for (int n = 0; n < this->num_; ++n) {
        this->backward_cpu_bias(bias_diff, top_diff + n * this->top_dim_);
      }
    }
    if (!weights_diff && !propagate_down[i]) {
      continue;
    }
    const Dtype* bottom_data = bottom[i]->cpu_data();
    Dtype* bottom_diff = propagate_down[i] ? bottom[i]->mutable_cpu_diff() : NULL;
    if (dnnl_) {
      dnnl_->Backward(reinterpret_cast<const float*>(bottom_data),
          reinterpret_cast<const float*>(top_diff),
          reinterpret_cast<const float*>(weights),
          reinterpret_cast<float*>(bottom_diff),
          reinterpret_cast<float*>(weights_diff));
      continue;
    }
    for (int n = 0; n < this->num_; ++n) {
      if (weights_diff) {
        this->weight_cpu_gemm(bottom_data + n * this->bottom_dim_,
            top_diff + n * this->top_dim_, weights_diff);
      }
      if (bottom_diff) {
        this->backward_cpu_gemm(top_diff + n * this->top_dim_, weights,
            bottom_diff + n * this->bottom_dim_);
      }
    }
  }
}

template <typename Dtype>
void DnnlConvolutionLayer<Dtype>::Forward_cpu(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  ConvForward_cpu(bottom, top, this->blobs_[0]->cpu_data());
}

template <typename Dtype>
void DnnlConvolutionLayer<Dtype>::Backward_cpu(
    const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
    const vector<Blob<Dtype>*>& bottom) {
  ConvBackward_cpu(top, propagate_down, bottom, this->blobs_[0]->cpu_data(),
      this->param_propagate_down_[0] ?
      this->blobs_[0]->mutable_cpu_diff() : NULL);
}

INSTANTIATE_CLASS(DnnlConvolutionLayer);

}  // namespace caffe
