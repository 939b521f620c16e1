#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layer_factory.hpp"
#include "caffe/layers/batch_norm_layer.hpp"
#include "caffe/layers/omp_batch_norm_layer.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_engine_util.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

// The OpenMP BatchNorm engine, created through the layer factory as a net
// creates it, against the stock engine (engine: CAFFE) on the same data.
template <typename TypeParam>
class OmpBatchNormLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  LayerParameter MakeParam(BatchNormParameter_Engine engine, Phase phase) {
    LayerParameter param;
    param.set_name("bn");
    param.set_type("BatchNorm");
    param.set_phase(phase);
    param.mutable_batch_norm_param()->set_engine(engine);
    param.mutable_batch_norm_param()->set_moving_average_fraction(0.9);
    return param;
  }

  // Several training passes (fresh data each, so the moving averages move)
  // then a test-phase pass with the learned statistics, with both engines;
  // outputs, input gradients and the three blobs must agree.
  void CheckAgainstCaffe(const vector<int>& shape, bool in_place,
      Dtype data_mean = 0) {
    shared_ptr<Layer<Dtype> > omp = LayerRegistry<Dtype>::CreateLayer(
        MakeParam(BatchNormParameter_Engine_DEFAULT, TRAIN));
    shared_ptr<Layer<Dtype> > ref = LayerRegistry<Dtype>::CreateLayer(
        MakeParam(BatchNormParameter_Engine_CAFFE, TRAIN));
    ASSERT_TRUE(dynamic_cast<OmpBatchNormLayer<Dtype>*>(omp.get()) != NULL);
    ASSERT_TRUE(dynamic_cast<OmpBatchNormLayer<Dtype>*>(ref.get()) == NULL);
    Blob<Dtype> bottom(shape), top, ref_bottom(shape), ref_top;
    vector<Blob<Dtype>*> b(1, &bottom), t(1, in_place ? &bottom : &top);
    vector<Blob<Dtype>*> rb(1, &ref_bottom), rt(1, in_place ? &ref_bottom : &ref_top);
    omp->SetUp(b, t);
    ref->SetUp(rb, rt);
    const double tol = sizeof(Dtype) == 4 ? 2e-4 : 1e-9;
    Blob<Dtype> input(shape), top_diff(shape);
    for (int pass = 0; pass < 3; ++pass) {
      FillGaussian<Dtype>(&input, data_mean, Dtype(1 + pass));
      bottom.CopyFrom(input);
      ref_bottom.CopyFrom(input);
      omp->Forward(b, t);
      ref->Forward(rb, rt);
      ExpectBlobsNear(*t[0], *rt[0], false, tol, "top");
      FillGaussian<Dtype>(&top_diff, 0, 1);
      t[0]->CopyFrom(top_diff, true);
      rt[0]->CopyFrom(top_diff, true);
      vector<bool> down(1, true);
      omp->Backward(t, down, b);
      ref->Backward(rt, down, rb);
      ExpectBlobsNear(bottom, ref_bottom, true, tol, "bottom diff");
      for (int i = 0; i < 3; ++i) {
        ExpectBlobsNear(*omp->blobs()[i], *ref->blobs()[i], false, tol, "blob");
      }
    }
    // The test phase (global statistics), from the blobs just learned.
    shared_ptr<Layer<Dtype> > omp_test = LayerRegistry<Dtype>::CreateLayer(
        MakeParam(BatchNormParameter_Engine_DEFAULT, TEST));
    shared_ptr<Layer<Dtype> > ref_test = LayerRegistry<Dtype>::CreateLayer(
        MakeParam(BatchNormParameter_Engine_CAFFE, TEST));
    omp_test->SetUp(b, t);
    ref_test->SetUp(rb, rt);
    for (int i = 0; i < 3; ++i) {
      omp_test->blobs()[i]->CopyFrom(*omp->blobs()[i]);
      ref_test->blobs()[i]->CopyFrom(*ref->blobs()[i]);
    }
    FillGaussian<Dtype>(&input, data_mean, 2);
    bottom.CopyFrom(input);
    ref_bottom.CopyFrom(input);
    omp_test->Forward(b, t);
    ref_test->Forward(rb, rt);
    ExpectBlobsNear(*t[0], *rt[0], false, tol, "test-phase top");
    FillGaussian<Dtype>(&top_diff, 0, 1);
    t[0]->CopyFrom(top_diff, true);
    rt[0]->CopyFrom(top_diff, true);
    vector<bool> down(1, true);
    omp_test->Backward(t, down, b);
    ref_test->Backward(rt, down, rb);
    ExpectBlobsNear(bottom, ref_bottom, true, tol, "test-phase bottom diff");
  }
};

TYPED_TEST_CASE(OmpBatchNormLayerTest, TestDtypesAndDevices);

TYPED_TEST(OmpBatchNormLayerTest, TestFactoryPicksEngine) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->MakeParam(BatchNormParameter_Engine_DEFAULT, TRAIN);
  shared_ptr<Layer<Dtype> > layer = LayerRegistry<Dtype>::CreateLayer(param);
  EXPECT_TRUE(dynamic_cast<OmpBatchNormLayer<Dtype>*>(layer.get()) != NULL);
  EXPECT_STREQ("BatchNorm", layer->type());
  param.mutable_batch_norm_param()->set_engine(BatchNormParameter_Engine_CAFFE);
  layer = LayerRegistry<Dtype>::CreateLayer(param);
  EXPECT_TRUE(dynamic_cast<OmpBatchNormLayer<Dtype>*>(layer.get()) == NULL);
  EXPECT_TRUE(dynamic_cast<BatchNormLayer<Dtype>*>(layer.get()) != NULL);
}

TYPED_TEST(OmpBatchNormLayerTest, TestMatchesCaffe) {
  int s[] = {5, 3, 6, 7};
  this->CheckAgainstCaffe(vector<int>(s, s + 4), false);
}

TYPED_TEST(OmpBatchNormLayerTest, TestMatchesCaffeInPlace) {
  int s[] = {4, 6, 5, 5};
  this->CheckAgainstCaffe(vector<int>(s, s + 4), true);
}

TYPED_TEST(OmpBatchNormLayerTest, TestMatchesCaffeBatchOne) {
  int s[] = {1, 4, 3, 5};
  this->CheckAgainstCaffe(vector<int>(s, s + 4), true);
}

TYPED_TEST(OmpBatchNormLayerTest, TestMatchesCaffeOddAndFlatShapes) {
  int s1[] = {3, 7, 1, 1};
  this->CheckAgainstCaffe(vector<int>(s1, s1 + 4), false);
  int s2[] = {6, 5};  // after an InnerProduct: (N, C)
  this->CheckAgainstCaffe(vector<int>(s2, s2 + 2), true);
  int s3[] = {2, 3, 17, 13};
  this->CheckAgainstCaffe(vector<int>(s3, s3 + 4), false);
}

// Large enough that the passes run on every OpenMP thread.
TYPED_TEST(OmpBatchNormLayerTest, TestMatchesCaffeLarge) {
  int s[] = {16, 8, 32, 32};
  this->CheckAgainstCaffe(vector<int>(s, s + 4), true);
}

// A mean far from zero against the spread: the variance must not cancel.
TYPED_TEST(OmpBatchNormLayerTest, TestMatchesCaffeLargeMean) {
  int s[] = {4, 3, 8, 8};
  this->CheckAgainstCaffe(vector<int>(s, s + 4), false, 100);
}

TYPED_TEST(OmpBatchNormLayerTest, TestGradient) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->MakeParam(BatchNormParameter_Engine_DEFAULT, TRAIN);
  shared_ptr<Layer<Dtype> > layer = LayerRegistry<Dtype>::CreateLayer(param);
  Blob<Dtype> bottom(2, 3, 4, 5), top;
  FillGaussian<Dtype>(&bottom, 0, 1);
  vector<Blob<Dtype>*> b(1, &bottom), t(1, &top);
  GradientChecker<Dtype> checker(1e-2, 1e-4);
  checker.CheckGradientExhaustive(layer.get(), b, t);
}

// With global statistics the layer is y = (x - m) / sqrt(v + eps) per
// channel, m and v the stored sums over their scale factor: forward and
// backward against that closed form.
TYPED_TEST(OmpBatchNormLayerTest, TestGlobalStatsClosedForm) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->MakeParam(BatchNormParameter_Engine_DEFAULT, TEST);
  shared_ptr<Layer<Dtype> > layer = LayerRegistry<Dtype>::CreateLayer(param);
  Blob<Dtype> bottom(2, 3, 4, 5), top;
  FillGaussian<Dtype>(&bottom, 0, 1);
  vector<Blob<Dtype>*> b(1, &bottom), t(1, &top);
  layer->SetUp(b, t);
  const Dtype factor = 4;
  for (int c = 0; c < 3; ++c) {
    layer->blobs()[0]->mutable_cpu_data()[c] = Dtype(0.3 * c - 0.2) * factor;
    layer->blobs()[1]->mutable_cpu_data()[c] = Dtype(0.5 + c) * factor;
  }
  layer->blobs()[2]->mutable_cpu_data()[0] = factor;
  layer->Forward(b, t);
  FillGaussian<Dtype>(&top, 0, 1);  // fills data; use it as the top diff
  caffe_copy(top.count(), top.cpu_data(), top.mutable_cpu_diff());
  vector<bool> down(1, true);
  layer->Backward(t, down, b);
  // Forward again to have top data for the forward check.
  Blob<Dtype> saved_diff;
  saved_diff.CopyFrom(bottom, true, true);
  layer->Forward(b, t);
  const double eps = param.batch_norm_param().eps();
  for (int i = 0; i < bottom.count(); ++i) {
    const int c = (i / 20) % 3;
    const double inv = 1 / std::sqrt(0.5 + c + eps);
    EXPECT_NEAR(top.cpu_data()[i], (bottom.cpu_data()[i] - (0.3 * c - 0.2)) * inv, 1e-5);
    EXPECT_NEAR(saved_diff.cpu_diff()[i], top.cpu_diff()[i] * inv, 1e-5);
  }
}

}  // namespace caffe
