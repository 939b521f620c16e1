#include <algorithm>
#include <cmath>
#include <vector>

#include "caffe/layers/omp_batch_norm_layer.hpp"
#include "caffe/util/omp_threads.hpp"

namespace caffe {

namespace {

// Sums of d and d^2, d = x - shift, over channel c of an (N, C, S) blob.
// The shift (any value of the channel) keeps E(d^2) - E(d)^2 accurate when
// the mean is large against the spread.
inline void ChannelMoments(const float* x, int num, int channels, int spatial,
    int c, float shift, double* sum, double* sum_sq) {
  double s = 0, ss = 0;
  for (int n = 0; n < num; ++n) {
    const float* p = x + (size_t(n) * channels + c) * spatial;
    float a = 0, b = 0;  // partial sums over one image's plane
#pragma omp simd reduction(+:a, b)
    for (int i = 0; i < spatial; ++i) {
      const float d = p[i] - shift;
      a += d;
      b += d * d;
    }
    s += a;
    ss += b;
  }
  *sum = s;
  *sum_sq = ss;
}

// y = (x - mean) * inv_std over channel c; also into y_copy unless NULL.
inline void ChannelNormalize(const float* x, float* y, float* y_copy,
    int num, int channels, int spatial, int c, float mean, float inv_std) {
  for (int n = 0; n < num; ++n) {
    const size_t o = (size_t(n) * channels + c) * spatial;
    const float* p = x + o;
    float* q = y + o;
    if (y_copy) {
      float* r = y_copy + o;
#pragma omp simd
      for (int i = 0; i < spatial; ++i) {
        const float v = (p[i] - mean) * inv_std;
        q[i] = v;
        r[i] = v;
      }
    } else {
#pragma omp simd
      for (int i = 0; i < spatial; ++i) { q[i] = (p[i] - mean) * inv_std; }
    }
  }
}

}  // namespace

template <typename Dtype>
void OmpBatchNormLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  if (sizeof(Dtype) != sizeof(float)) {
    BatchNormLayer<Dtype>::Forward_cpu(bottom, top);
    return;
  }
  const int num = bottom[0]->shape(0);
  const int channels = this->channels_;
  const int spatial = bottom[0]->count() / (num * channels);
  const float* x = reinterpret_cast<const float*>(bottom[0]->cpu_data());
  float* y = reinterpret_cast<float*>(top[0]->mutable_cpu_data());
  const float eps = this->eps_;
  inv_std_.resize(channels);
  float* inv_std = inv_std_.data();
  const int threads = OmpThreadsFor(bottom[0]->count());
  if (this->use_global_stats_) {
    // The stored sums over their scale factor, as BatchNormLayer does.
    const float factor = this->blobs_[2]->cpu_data()[0];
    const float scale = factor == 0 ? 0 : 1 / factor;
    const float* mean_sum = reinterpret_cast<const float*>(this->blobs_[0]->cpu_data());
    const float* var_sum = reinterpret_cast<const float*>(this->blobs_[1]->cpu_data());
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int c = 0; c < channels; ++c) {
      inv_std[c] = 1 / std::sqrt(var_sum[c] * scale + eps);
      ChannelNormalize(x, y, NULL, num, channels, spatial, c,
                       mean_sum[c] * scale, inv_std[c]);
    }
    return;
  }
  // Batch statistics; the normalised output is kept for backward, because a
  // later in-place layer (Scale, ReLU) overwrites top.
  float* mean = reinterpret_cast<float*>(this->mean_.mutable_cpu_data());
  float* var = reinterpret_cast<float*>(this->variance_.mutable_cpu_data());
  float* y_copy = reinterpret_cast<float*>(this->x_norm_.mutable_cpu_data());
  const double m = double(num) * spatial;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int c = 0; c < channels; ++c) {
    const float shift = x[size_t(c) * spatial];
    double sum, sum_sq;
    ChannelMoments(x, num, channels, spatial, c, shift, &sum, &sum_sq);
    const double d = sum / m;
    mean[c] = shift + d;
    var[c] = std::max(0.0, sum_sq / m - d * d);  // E((X-EX)^2)
    inv_std[c] = 1 / std::sqrt(var[c] + eps);
    ChannelNormalize(x, y, y_copy, num, channels, spatial, c, mean[c], inv_std[c]);
  }
  // The moving averages, exactly as BatchNormLayer updates them.
  const float f = this->moving_average_fraction_;
  float* blob_mean = reinterpret_cast<float*>(this->blobs_[0]->mutable_cpu_data());
  float* blob_var = reinterpret_cast<float*>(this->blobs_[1]->mutable_cpu_data());
  float* blob_factor = reinterpret_cast<float*>(this->blobs_[2]->mutable_cpu_data());
  blob_factor[0] = blob_factor[0] * f + 1;
  const int count_per_channel = bottom[0]->count() / channels;
  const float correction = count_per_channel > 1 ?
      float(count_per_channel) / (count_per_channel - 1) : 1;
  for (int c = 0; c < channels; ++c) {
    blob_mean[c] = mean[c] + f * blob_mean[c];
    blob_var[c] = correction * var[c] + f * blob_var[c];
  }
}

template <typename Dtype>
void OmpBatchNormLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (sizeof(Dtype) != sizeof(float)) {
    BatchNormLayer<Dtype>::Backward_cpu(top, propagate_down, bottom);
    return;
  }
  if (!propagate_down[0]) { return; }
  const int num = bottom[0]->shape(0);
  const int channels = this->channels_;
  const int spatial = bottom[0]->count() / (num * channels);
  // In place, dy and dx are one buffer: each element is read before written.
  const float* dy = reinterpret_cast<const float*>(top[0]->cpu_diff());
  float* dx = reinterpret_cast<float*>(bottom[0]->mutable_cpu_diff());
  const float* inv_std = inv_std_.data();
  CHECK_EQ(inv_std_.size(), channels) << "Backward before Forward";
  const int threads = OmpThreadsFor(bottom[0]->count());
  if (this->use_global_stats_) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int c = 0; c < channels; ++c) {
      const float s = inv_std[c];
      for (int n = 0; n < num; ++n) {
        const size_t o = (size_t(n) * channels + c) * spatial;
#pragma omp simd
        for (int i = 0; i < spatial; ++i) { dx[o + i] = dy[o + i] * s; }
      }
    }
    return;
  }
  // dx = (dy - mean(dy) - y * mean(dy * y)) * inv_std, y the normalised x.
  const float* y = reinterpret_cast<const float*>(this->x_norm_.cpu_data());
  const double m = double(num) * spatial;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int c = 0; c < channels; ++c) {
    double sum_dy = 0, sum_dy_y = 0;
    for (int n = 0; n < num; ++n) {
      const size_t o = (size_t(n) * channels + c) * spatial;
      float a = 0, b = 0;
#pragma omp simd reduction(+:a, b)
      for (int i = 0; i < spatial; ++i) {
        a += dy[o + i];
        b += dy[o + i] * y[o + i];
      }
      sum_dy += a;
      sum_dy_y += b;
    }
    const float mean_dy = sum_dy / m, mean_dy_y = sum_dy_y / m;
    const float s = inv_std[c];
    for (int n = 0; n < num; ++n) {
      const size_t o = (size_t(n) * channels + c) * spatial;
#pragma omp simd
      for (int i = 0; i < spatial; ++i) {
        dx[o + i] = (dy[o + i] - mean_dy - y[o + i] * mean_dy_y) * s;
      }
    }
  }
}

INSTANTIATE_CLASS(OmpBatchNormLayer);

}  // namespace caffe
