#ifndef CAFFE_OMP_SCALE_LAYER_HPP_
#define CAFFE_OMP_SCALE_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

#include "caffe/layers/scale_layer.hpp"

namespace caffe {

/**
 * @brief Scale (with its optional bias) as one vectorised OpenMP pass per
 *        direction on the CPU.
 *
 * Same parameters, blobs and results as ScaleLayer. Stock Caffe runs the
 * scale and its Bias sub-layer as separate passes, and its backward makes a
 * product blob and reduces it with GEMVs; here forward is one pass (scale and
 * shift together) and backward one pass (input gradient, scale and bias
 * gradients together). Applies to the common case, a learned per-channel
 * scale over (N, C, ...) blobs (one bottom, axis 1, num_axes 1); other
 * shapes use ScaleLayer's code, as do double and the GPU. The layer factory
 * picks this class for Scale with engine DEFAULT; engine: CAFFE keeps
 * ScaleLayer.
 */
template <typename Dtype>
class OmpScaleLayer : public ScaleLayer<Dtype> {
 public:
  explicit OmpScaleLayer(const LayerParameter& param)
      : ScaleLayer<Dtype>(param) {}

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

 private:
  /// Whether this call takes the fused float path (see the class comment).
  bool Fused(const vector<Blob<Dtype>*>& bottom) const;
};

}  // namespace caffe

#endif  // CAFFE_OMP_SCALE_LAYER_HPP_
