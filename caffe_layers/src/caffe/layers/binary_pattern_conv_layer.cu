#include <vector>

#include "caffe/layers/binary_pattern_conv_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

// One thread per filter: filters are few (<= a few thousand) and short, and
// one pass per filter keeps the reduction order identical to the CPU path.
template <typename Dtype>
__global__ void BinaryPatternScales(const int num_filters, const int dim,
    const Dtype* w, const bool use_offset, const Dtype offset,
    Dtype* learned, Dtype* alpha) {
  CUDA_KERNEL_LOOP(c, num_filters) {
    if (use_offset) {
      alpha[c] = offset;
    } else if (learned != NULL && learned[c] != Dtype(0)) {
      alpha[c] = learned[c];
    } else {
      const Dtype* wc = w + c * dim;
      Dtype sum = 0;
      for (int j = 0; j < dim; ++j) { sum += wc[j] >= 0 ? wc[j] : -wc[j]; }
      alpha[c] = sum / dim;
      if (learned != NULL) { learned[c] = alpha[c]; }
    }
  }
}

template <typename Dtype>
__global__ void BinaryPatternWeights(const int n, const int dim,
    const Dtype* w, const Dtype* alpha, Dtype* weff) {
  CUDA_KERNEL_LOOP(i, n) {
    const Dtype a = alpha[i / dim];
    weff[i] = w[i] >= Dtype(0) ? a : -a;
  }
}

template <typename Dtype>
__global__ void BinaryPatternScaleGrad(const int num_filters, const int dim,
    const Dtype* w, const Dtype* weff_diff, Dtype* g_alpha) {
  CUDA_KERNEL_LOOP(c, num_filters) {
    const Dtype* wc = w + c * dim;
    const Dtype* gc = weff_diff + c * dim;
    Dtype sum = 0;
    for (int j = 0; j < dim; ++j) { sum += wc[j] >= 0 ? gc[j] : -gc[j]; }
    g_alpha[c] = sum;
  }
}

template <typename Dtype>
__global__ void BinaryPatternSteGrad(const int n, const int dim,
    const Dtype* w, const Dtype* weff_diff, const Dtype* alpha,
    const Dtype* g_alpha, const bool mean, const Dtype clip, Dtype* w_diff) {
  CUDA_KERNEL_LOOP(i, n) {
    const int c = i / dim;
    const Dtype b = w[i] >= Dtype(0) ? Dtype(1) : Dtype(-1);
    const Dtype absw = w[i] >= Dtype(0) ? w[i] : -w[i];
    const Dtype pass = absw <= clip ? alpha[c] * weff_diff[i] : Dtype(0);
    w_diff[i] += pass + (mean ? b * g_alpha[c] / dim : Dtype(0));
  }
}

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::Binarize_gpu() {
  const int num_filters = this->blobs_[0]->shape(0);
  const int count = this->blobs_[0]->count();
  const Dtype* w = this->blobs_[0]->gpu_data();
  Dtype* learned = learn_scale() ?
      this->blobs_[alpha_index_]->mutable_gpu_data() : NULL;
  const bool use_offset = scale_mode_ == BinaryPatternParameter_ScaleMode_OFFSET;
  // NOLINT_NEXT_LINE(whitespace/operators)
  BinaryPatternScales<Dtype><<<CAFFE_GET_BLOCKS(num_filters),
      CAFFE_CUDA_NUM_THREADS>>>(num_filters, filter_dim_, w, use_offset,
      offset_, learned, scales_.mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
  // NOLINT_NEXT_LINE(whitespace/operators)
  BinaryPatternWeights<Dtype><<<CAFFE_GET_BLOCKS(count),
      CAFFE_CUDA_NUM_THREADS>>>(count, filter_dim_, w, scales_.gpu_data(),
      effective_weights_.mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::BackwardWeights_gpu() {
  const int num_filters = this->blobs_[0]->shape(0);
  const int count = this->blobs_[0]->count();
  const Dtype* w = this->blobs_[0]->gpu_data();
  const Dtype* weff_diff = effective_weights_.gpu_diff();
  // scales_.diff holds sum_k dWeff_k B_k per filter.
  Dtype* g_alpha = scales_.mutable_gpu_diff();
  // NOLINT_NEXT_LINE(whitespace/operators)
  BinaryPatternScaleGrad<Dtype><<<CAFFE_GET_BLOCKS(num_filters),
      CAFFE_CUDA_NUM_THREADS>>>(num_filters, filter_dim_, w, weff_diff, g_alpha);
  CUDA_POST_KERNEL_CHECK;
  if (learn_scale() && this->param_propagate_down_[alpha_index_]) {
    caffe_gpu_add(num_filters, g_alpha,
        this->blobs_[alpha_index_]->gpu_diff(),
        this->blobs_[alpha_index_]->mutable_gpu_diff());
  }
  if (ste() && this->param_propagate_down_[0]) {
    const bool mean = scale_mode_ == BinaryPatternParameter_ScaleMode_MEAN;
    // NOLINT_NEXT_LINE(whitespace/operators)
    BinaryPatternSteGrad<Dtype><<<CAFFE_GET_BLOCKS(count),
        CAFFE_CUDA_NUM_THREADS>>>(count, filter_dim_, w, weff_diff,
        scales_.gpu_data(), g_alpha, mean, ste_clip_,
        this->blobs_[0]->mutable_gpu_diff());
    CUDA_POST_KERNEL_CHECK;
  }
}

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::Forward_gpu(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  Binarize_gpu();
  const Dtype* weight = effective_weights_.gpu_data();
  for (int i = 0; i < bottom.size(); ++i) {
    const Dtype* bottom_data = bottom[i]->gpu_data();
    Dtype* top_data = top[i]->mutable_gpu_data();
    for (int n = 0; n < this->num_; ++n) {
      this->forward_gpu_gemm(bottom_data + n * this->bottom_dim_, weight,
          top_data + n * this->top_dim_);
      if (this->bias_term_) {
        const Dtype* bias = this->blobs_[1]->gpu_data();
        this->forward_gpu_bias(top_data + n * this->top_dim_, bias);
      }
    }
  }
}

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::Backward_gpu(
    const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
    const vector<Blob<Dtype>*>& bottom) {
  const Dtype* weight = effective_weights_.gpu_data();
  const bool weight_grad = (ste() && this->param_propagate_down_[0]) ||
      (learn_scale() && this->param_propagate_down_[alpha_index_]);
  Dtype* weight_diff = effective_weights_.mutable_gpu_diff();
  if (weight_grad) {
    caffe_gpu_set(effective_weights_.count(), Dtype(0), weight_diff);
  }
  for (int i = 0; i < top.size(); ++i) {
    const Dtype* top_diff = top[i]->gpu_diff();
    if (this->bias_term_ && this->param_propagate_down_[1]) {
      Dtype* bias_diff = this->blobs_[1]->mutable_gpu_diff();
      for (int n = 0; n < this->num_; ++n) {
        this->backward_gpu_bias(bias_diff, top_diff + n * this->top_dim_);
      }
    }
    if (weight_grad || propagate_down[i]) {
      const Dtype* bottom_data = bottom[i]->gpu_data();
      Dtype* bottom_diff = bottom[i]->mutable_gpu_diff();
      for (int n = 0; n < this->num_; ++n) {
        if (weight_grad) {
          this->weight_gpu_gemm(bottom_data + n * this->bottom_dim_,
              top_diff + n * this->top_dim_, weight_diff);
        }
        if (propagate_down[i]) {
          this->backward_gpu_gemm(top_diff + n * this->top_dim_, weight,
              bottom_diff + n * this->bottom_dim_);
        }
      }
    }
  }
  if (weight_grad) {
    BackwardWeights_gpu();
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(BinaryPatternConvolutionLayer);
// The cuDNN engine (a subclass, its own translation unit) calls these too.
template void BinaryPatternConvolutionLayer<float>::Binarize_gpu();
template void BinaryPatternConvolutionLayer<double>::Binarize_gpu();
template void BinaryPatternConvolutionLayer<float>::BackwardWeights_gpu();
template void BinaryPatternConvolutionLayer<double>::BackwardWeights_gpu();

}  // namespace caffe
