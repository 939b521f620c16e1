#ifndef CAFFE_TEST_TEST_ENGINE_UTIL_HPP_
#define CAFFE_TEST_TEST_ENGINE_UTIL_HPP_

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/filler.hpp"
#include "caffe/layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

// What the project's engine tests share: each runs an engine (oneDNN,
// OpenMP, cuDNN) beside a reference on the same data and compares blobs.

// Gaussian values of `mean` and `std` in every element of `blob`.
template <typename Dtype>
void FillGaussian(Blob<Dtype>* blob, Dtype mean = 0, Dtype std = 1) {
  FillerParameter fp;
  fp.set_mean(mean);
  fp.set_std(std);
  GaussianFiller<Dtype> filler(fp);
  filler.Fill(blob);
}

// `got` against the reference `ref`, element by element (data, or with
// `diff` the gradients): |got - ref| <= tol * max(1, |ref|).
template <typename Dtype>
void ExpectBlobsNear(const Blob<Dtype>& got, const Blob<Dtype>& ref, bool diff,
                     double tol, const char* what) {
  ASSERT_EQ(ref.count(), got.count()) << what;
  const Dtype* x = diff ? got.cpu_diff() : got.cpu_data();
  const Dtype* y = diff ? ref.cpu_diff() : ref.cpu_data();
  for (int i = 0; i < ref.count(); ++i) {
    const double scale = std::max(1.0, std::fabs(static_cast<double>(y[i])));
    EXPECT_NEAR(x[i], y[i], tol * scale) << what << " at " << i;
  }
}

// An engine `layer`, already set up on `bottom`/`top`, against the reference
// layer `ref` (not yet set up) holding the same parameter blobs: the outputs,
// then for one random top gradient the input gradient (tolerance `tol`, as in
// ExpectBlobsNear) and every parameter gradient (2 x `tol`: they sum over the
// batch).
template <typename Dtype>
void ExpectLayersAgree(Layer<Dtype>* layer, Layer<Dtype>* ref,
                       const vector<Blob<Dtype>*>& bottom,
                       const vector<Blob<Dtype>*>& top, double tol) {
  Blob<Dtype> ref_top, ref_bottom;
  ref_bottom.CopyFrom(*bottom[0], false, true);
  vector<Blob<Dtype>*> ref_top_vec(1, &ref_top);
  vector<Blob<Dtype>*> ref_bottom_vec(1, &ref_bottom);
  ref->SetUp(ref_bottom_vec, ref_top_vec);
  ASSERT_EQ(ref->blobs().size(), layer->blobs().size());
  for (int b = 0; b < layer->blobs().size(); ++b) {
    ref->blobs()[b]->CopyFrom(*layer->blobs()[b]);
  }
  layer->Forward(bottom, top);
  ref->Forward(ref_bottom_vec, ref_top_vec);
  ExpectBlobsNear(*top[0], ref_top, false, tol, "top");
  FillGaussian<Dtype>(&ref_top);
  caffe_copy(ref_top.count(), ref_top.cpu_data(), ref_top.mutable_cpu_diff());
  caffe_copy(ref_top.count(), ref_top.cpu_data(), top[0]->mutable_cpu_diff());
  for (int b = 0; b < layer->blobs().size(); ++b) {
    caffe_set(layer->blobs()[b]->count(), Dtype(0),
              layer->blobs()[b]->mutable_cpu_diff());
    caffe_set(ref->blobs()[b]->count(), Dtype(0),
              ref->blobs()[b]->mutable_cpu_diff());
  }
  layer->Backward(top, vector<bool>(1, true), bottom);
  ref->Backward(ref_top_vec, vector<bool>(1, true), ref_bottom_vec);
  ExpectBlobsNear(*bottom[0], ref_bottom, true, tol, "bottom diff");
  for (int b = 0; b < layer->blobs().size(); ++b) {
    ExpectBlobsNear(*layer->blobs()[b], *ref->blobs()[b], true, 2 * tol,
                    "param diff");
  }
}

}  // namespace caffe

#endif  // CAFFE_TEST_TEST_ENGINE_UTIL_HPP_
