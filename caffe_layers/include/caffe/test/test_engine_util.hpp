#ifndef CAFFE_TEST_TEST_ENGINE_UTIL_HPP_
#define CAFFE_TEST_TEST_ENGINE_UTIL_HPP_

#include <algorithm>
#include <cmath>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/filler.hpp"

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

}  // namespace caffe

#endif  // CAFFE_TEST_TEST_ENGINE_UTIL_HPP_
