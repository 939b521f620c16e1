#include <vector>

#include "caffe/layers/omp_scale_layer.hpp"
#include "caffe/util/omp_threads.hpp"

namespace caffe {

template <typename Dtype>
bool OmpScaleLayer<Dtype>::Fused(const vector<Blob<Dtype>*>& bottom) const {
  // A learned scale blob of one value per channel of an (N, C, ...) bottom.
  return sizeof(Dtype) == sizeof(float) && bottom.size() == 1 &&
      this->axis_ == 1 && this->blobs_[0]->num_axes() == 1 &&
      bottom[0]->num_axes() >= 2 && this->scale_dim_ == bottom[0]->shape(1);
}

template <typename Dtype>
void OmpScaleLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  if (!Fused(bottom)) {
    ScaleLayer<Dtype>::Forward_cpu(bottom, top);
    return;
  }
  const int num = this->outer_dim_;
  const int channels = this->scale_dim_;
  const int inner = this->inner_dim_;
  const float* x = reinterpret_cast<const float*>(bottom[0]->cpu_data());
  // In place, backward needs the input: keep it, as ScaleLayer does, in the
  // same pass.
  float* saved = bottom[0] == top[0] ?
      reinterpret_cast<float*>(this->temp_.mutable_cpu_data()) : NULL;
  float* y = reinterpret_cast<float*>(top[0]->mutable_cpu_data());
  const float* gamma = reinterpret_cast<const float*>(this->blobs_[0]->cpu_data());
  const float* beta = this->bias_layer_ ? reinterpret_cast<const float*>(
      this->blobs_[this->bias_param_id_]->cpu_data()) : NULL;
  const int planes = num * channels;
#pragma omp parallel for num_threads(OmpThreadsFor(bottom[0]->count())) schedule(static)
  for (int nc = 0; nc < planes; ++nc) {
    const int c = nc % channels;
    const size_t o = size_t(nc) * inner;
    const float g = gamma[c], b = beta ? beta[c] : 0.f;
    if (saved) {
#pragma omp simd
      for (int i = 0; i < inner; ++i) {
        const float v = x[o + i];
        saved[o + i] = v;
        y[o + i] = v * g + b;
      }
    } else {
#pragma omp simd
      for (int i = 0; i < inner; ++i) { y[o + i] = x[o + i] * g + b; }
    }
  }
}

template <typename Dtype>
void OmpScaleLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!Fused(bottom)) {
    ScaleLayer<Dtype>::Backward_cpu(top, propagate_down, bottom);
    return;
  }
  const int num = this->outer_dim_;
  const int channels = this->scale_dim_;
  const int inner = this->inner_dim_;
  const bool want_gamma = this->param_propagate_down_[0];
  const bool want_beta = this->bias_layer_ &&
      this->param_propagate_down_[this->bias_param_id_];
  const bool want_x = propagate_down[0];
  if (!want_gamma && !want_beta && !want_x) { return; }
  const float* dy = reinterpret_cast<const float*>(top[0]->cpu_diff());
  const float* x = reinterpret_cast<const float*>(
      (bottom[0] == top[0] ? &this->temp_ : bottom[0])->cpu_data());
  // In place, dy and dx are one buffer: each element is read before written.
  float* dx = want_x ? reinterpret_cast<float*>(bottom[0]->mutable_cpu_diff()) : NULL;
  const float* gamma = reinterpret_cast<const float*>(this->blobs_[0]->cpu_data());
  float* dgamma = want_gamma ?
      reinterpret_cast<float*>(this->blobs_[0]->mutable_cpu_diff()) : NULL;
  float* dbeta = want_beta ? reinterpret_cast<float*>(
      this->blobs_[this->bias_param_id_]->mutable_cpu_diff()) : NULL;
#pragma omp parallel for num_threads(OmpThreadsFor(bottom[0]->count())) schedule(static)
  for (int c = 0; c < channels; ++c) {
    const float g = gamma[c];
    double sum_dy = 0, sum_dy_x = 0;
    for (int n = 0; n < num; ++n) {
      const size_t o = (size_t(n) * channels + c) * inner;
      float a = 0, b = 0;
      if (dx) {
#pragma omp simd reduction(+:a, b)
        for (int i = 0; i < inner; ++i) {
          const float d = dy[o + i];
          a += d;
          b += d * x[o + i];
          dx[o + i] = d * g;
        }
      } else {
#pragma omp simd reduction(+:a, b)
        for (int i = 0; i < inner; ++i) {
          a += dy[o + i];
          b += dy[o + i] * x[o + i];
        }
      }
      sum_dy += a;
      sum_dy_x += b;
    }
    // Parameter gradients accumulate, as every Caffe layer's do.
    if (dgamma) { dgamma[c] += sum_dy_x; }
    if (dbeta) { dbeta[c] += sum_dy; }
  }
}

INSTANTIATE_CLASS(OmpScaleLayer);

}  // namespace caffe
