#ifndef CAFFE_OMP_BATCH_NORM_LAYER_HPP_
#define CAFFE_OMP_BATCH_NORM_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

#include "caffe/layers/batch_norm_layer.hpp"

namespace caffe {

/**
 * @brief BatchNorm whose float CPU passes are two fused, vectorised OpenMP
 *        loops per direction.
 *
 * Same parameters, blobs and results as BatchNormLayer (its three blobs hold
 * the moving sums of mean and unbiased variance and their scale factor, and
 * are updated exactly as Caffe does), so existing caffemodels and solvers
 * behave identically. Stock Caffe makes about ten passes over the blob per
 * direction (GEMVs and broadcast GEMMs against vectors of ones, caffe_powx,
 * caffe_div); here a training forward reads the blob twice (statistics, then
 * normalise) and a backward reads it twice (two sums, then the gradient).
 * It needs one blob-sized buffer (the normalised output, for backward, as
 * stock Caffe keeps it) instead of two, and none with global statistics.
 *
 * (oneDNN 2.6, which the convolutions use, has only its generic batch
 * normalisation for plain NCHW data: its fast kernels want blocked layouts,
 * and reordering every BatchNorm's blob to one and back would add two passes
 * of its own.) The layer factory picks this
 * class for BatchNorm with engine DEFAULT; engine: CAFFE keeps
 * BatchNormLayer. Double and the GPU use BatchNormLayer's code.
 */
template <typename Dtype>
class OmpBatchNormLayer : public BatchNormLayer<Dtype> {
 public:
  explicit OmpBatchNormLayer(const LayerParameter& param)
      : BatchNormLayer<Dtype>(param) {}

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  /// 1 / sqrt(var + eps) per channel, from the last forward pass.
  vector<float> inv_std_;
};

}  // namespace caffe

#endif  // CAFFE_OMP_BATCH_NORM_LAYER_HPP_
