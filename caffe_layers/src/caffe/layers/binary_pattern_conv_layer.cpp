#include <cmath>
#include <vector>

#include "caffe/filler.hpp"
#include "caffe/layers/binary_pattern_conv_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::LayerSetUp(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const BinaryPatternParameter& bp = this->layer_param_.binary_pattern_param();
  const string& name = this->layer_param_.name();
  scale_mode_ = bp.scale_mode();
  train_mode_ = bp.train_mode();
  if (scale_mode_ == BinaryPatternParameter_ScaleMode_OFFSET) {
    CHECK(bp.has_offset()) << "BinaryPatternConvolution layer '" << name
        << "': scale_mode OFFSET needs binary_pattern_param { offset: ... }";
    CHECK(bp.offset() > 0 && std::isfinite(bp.offset()))
        << "BinaryPatternConvolution layer '" << name
        << "': offset must be a finite value > 0, got " << bp.offset();
  } else {
    CHECK(!bp.has_offset()) << "BinaryPatternConvolution layer '" << name
        << "': offset is only used with scale_mode OFFSET";
  }
  CHECK(bp.ste_clip() > 0) << "BinaryPatternConvolution layer '" << name
      << "': ste_clip must be > 0, got " << bp.ste_clip();
  offset_ = bp.offset();
  ste_clip_ = bp.ste_clip();

  // The base setup knows only W and bias: keep an existing alpha aside.
  const int num_stock_blobs =
      this->layer_param_.convolution_param().bias_term() ? 2 : 1;
  shared_ptr<Blob<Dtype> > alpha_blob;
  if (this->blobs_.size() == num_stock_blobs + 1) {
    alpha_blob = this->blobs_.back();
    this->blobs_.pop_back();
  }
  DnnlConvolutionLayer<Dtype>::LayerSetUp(bottom, top);

  const int* kernel = this->kernel_shape_.cpu_data();
  bool kernel_1x1 = true;
  for (int i = 0; i < this->num_spatial_axes_; ++i) {
    kernel_1x1 &= kernel[i] == 1;
  }
  if (kernel_1x1) {
    CHECK(bp.allow_1x1()) << "BinaryPatternConvolution layer '" << name
        << "': 1x1 kernels are projections and stay full precision; "
        << "set binary_pattern_param { allow_1x1: true } to binarize them";
  }
  filter_dim_ = this->blobs_[0]->count(1);
  const int num_filters = this->blobs_[0]->shape(0);
  const bool wants_alpha = scale_mode_ == BinaryPatternParameter_ScaleMode_MEAN
      && train_mode_ == BinaryPatternParameter_TrainMode_FIXED;
  alpha_index_ = wants_alpha ? num_stock_blobs : -1;
  if (wants_alpha) {
    if (!alpha_blob) {
      // Unbound (0): set to mean |W_c| by the first forward pass.
      alpha_blob.reset(new Blob<Dtype>(vector<int>(1, num_filters)));
      caffe_set(num_filters, Dtype(0), alpha_blob->mutable_cpu_data());
    }
    this->blobs_.push_back(alpha_blob);
    CHECK_EQ(this->blobs_[alpha_index_]->count(), num_filters)
        << "BinaryPatternConvolution layer '" << name << "': alpha needs "
        << num_filters << " entries";
  } else {
    CHECK(!alpha_blob) << "BinaryPatternConvolution layer '" << name
        << "': a learned alpha blob needs scale_mode MEAN and train_mode FIXED";
  }
  this->param_propagate_down_.resize(this->blobs_.size(), true);
}

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::Reshape(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  DnnlConvolutionLayer<Dtype>::Reshape(bottom, top);
  ReshapePatternBuffers();
}

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::ReshapePatternBuffers() {
  effective_weights_.ReshapeLike(*this->blobs_[0]);
  scales_.Reshape(vector<int>(1, this->blobs_[0]->shape(0)));
}

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::Binarize_cpu() {
  const int num_filters = this->blobs_[0]->shape(0);
  const Dtype* w = this->blobs_[0]->cpu_data();
  Dtype* alpha = scales_.mutable_cpu_data();
  if (scale_mode_ == BinaryPatternParameter_ScaleMode_OFFSET) {
    caffe_set(num_filters, offset_, alpha);
  } else {
    Dtype* learned = learn_scale() ?
        this->blobs_[alpha_index_]->mutable_cpu_data() : NULL;
    for (int c = 0; c < num_filters; ++c) {
      if (learned && learned[c] != Dtype(0)) {
        alpha[c] = learned[c];
        continue;
      }
      alpha[c] = caffe_cpu_asum(filter_dim_, w + c * filter_dim_) / filter_dim_;
      if (learned) { learned[c] = alpha[c]; }
    }
  }
  Dtype* weff = effective_weights_.mutable_cpu_data();
  for (int c = 0; c < num_filters; ++c) {
    const Dtype* wc = w + c * filter_dim_;
    Dtype* ec = weff + c * filter_dim_;
    for (int j = 0; j < filter_dim_; ++j) {
      ec[j] = wc[j] >= Dtype(0) ? alpha[c] : -alpha[c];
    }
  }
}

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::BackwardWeights_cpu() {
  const int num_filters = this->blobs_[0]->shape(0);
  const Dtype* w = this->blobs_[0]->cpu_data();
  const Dtype* weff_diff = effective_weights_.cpu_diff();
  const Dtype* alpha = scales_.cpu_data();
  const bool mean = scale_mode_ == BinaryPatternParameter_ScaleMode_MEAN;
  const bool alpha_grad = learn_scale() && this->param_propagate_down_[alpha_index_];
  const bool w_grad = ste() && this->param_propagate_down_[0];
  Dtype* alpha_diff = alpha_grad ?
      this->blobs_[alpha_index_]->mutable_cpu_diff() : NULL;
  Dtype* w_diff = w_grad ? this->blobs_[0]->mutable_cpu_diff() : NULL;
  for (int c = 0; c < num_filters; ++c) {
    const Dtype* wc = w + c * filter_dim_;
    const Dtype* gc = weff_diff + c * filter_dim_;
    // sum_k dWeff_k * B_k: the gradient of alpha_c.
    Dtype g_alpha = 0;
    for (int j = 0; j < filter_dim_; ++j) {
      g_alpha += wc[j] >= Dtype(0) ? gc[j] : -gc[j];
    }
    if (alpha_grad) { alpha_diff[c] += g_alpha; }
    if (w_grad) {
      Dtype* dc = w_diff + c * filter_dim_;
      const Dtype through_alpha = mean ? g_alpha / filter_dim_ : Dtype(0);
      for (int j = 0; j < filter_dim_; ++j) {
        const Dtype b = wc[j] >= Dtype(0) ? Dtype(1) : Dtype(-1);
        const Dtype pass = std::abs(wc[j]) <= ste_clip_ ? alpha[c] * gc[j] : 0;
        dc[j] += pass + b * through_alpha;
      }
    }
  }
}

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::Forward_cpu(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  Binarize_cpu();
  this->ConvForward_cpu(bottom, top, effective_weights_.cpu_data());
}

template <typename Dtype>
void BinaryPatternConvolutionLayer<Dtype>::Backward_cpu(
    const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
    const vector<Blob<Dtype>*>& bottom) {
  const bool weight_grad = (ste() && this->param_propagate_down_[0]) ||
      (learn_scale() && this->param_propagate_down_[alpha_index_]);
  Dtype* weight_diff = NULL;
  if (weight_grad) {
    weight_diff = effective_weights_.mutable_cpu_diff();
    caffe_set(effective_weights_.count(), Dtype(0), weight_diff);
  }
  this->ConvBackward_cpu(top, propagate_down, bottom,
      effective_weights_.cpu_data(), weight_diff);
  if (weight_grad) {
    BackwardWeights_cpu();
  }
}

#ifdef CPU_ONLY
STUB_GPU(BinaryPatternConvolutionLayer);
#endif

INSTANTIATE_CLASS(BinaryPatternConvolutionLayer);
// Registered by GetBinaryPatternConvolutionLayer in layer_factory.cpp (engine
// choice: cuDNN in GPU mode where built with it).

}  // namespace caffe
