#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layer_factory.hpp"
#include "caffe/layers/omp_scale_layer.hpp"
#include "caffe/layers/scale_layer.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_engine_util.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

// The OpenMP Scale engine, created through the layer factory as a net creates
// it, against the stock engine (engine: CAFFE) on the same data.
template <typename TypeParam>
class OmpScaleLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  LayerParameter MakeParam(ScaleParameter_Engine engine, bool bias,
      int axis = 1, int num_axes = 1) {
    LayerParameter param;
    param.set_name("scale");
    param.set_type("Scale");
    ScaleParameter* sp = param.mutable_scale_param();
    sp->set_engine(engine);
    sp->set_bias_term(bias);
    sp->set_axis(axis);
    sp->set_num_axes(num_axes);
    sp->mutable_filler()->set_type("gaussian");
    sp->mutable_bias_filler()->set_type("gaussian");
    return param;
  }

  static void ExpectNear(const Blob<Dtype>& got, const Blob<Dtype>& ref,
      bool diff, const char* what) {
    ExpectBlobsNear(got, ref, diff, sizeof(Dtype) == 4 ? 1e-5 : 1e-12, what);
  }

  // Forward and backward (twice, so that parameter gradients accumulate)
  // with both engines from the same parameters; `frozen` parameter blobs get
  // no gradient.
  void CheckAgainstCaffe(const vector<int>& shape, bool bias, bool in_place,
      bool propagate_bottom = true, int frozen = -1, int axis = 1,
      int num_axes = 1) {
    shared_ptr<Layer<Dtype> > omp = LayerRegistry<Dtype>::CreateLayer(
        MakeParam(ScaleParameter_Engine_DEFAULT, bias, axis, num_axes));
    shared_ptr<Layer<Dtype> > ref = LayerRegistry<Dtype>::CreateLayer(
        MakeParam(ScaleParameter_Engine_CAFFE, bias, axis, num_axes));
    ASSERT_TRUE(dynamic_cast<OmpScaleLayer<Dtype>*>(omp.get()) != NULL);
    ASSERT_TRUE(dynamic_cast<OmpScaleLayer<Dtype>*>(ref.get()) == NULL);
    Blob<Dtype> bottom(shape), top, ref_bottom(shape), ref_top;
    vector<Blob<Dtype>*> b(1, &bottom), t(1, in_place ? &bottom : &top);
    vector<Blob<Dtype>*> rb(1, &ref_bottom), rt(1, in_place ? &ref_bottom : &ref_top);
    omp->SetUp(b, t);
    ref->SetUp(rb, rt);
    ASSERT_EQ(omp->blobs().size(), ref->blobs().size());
    for (int i = 0; i < omp->blobs().size(); ++i) {
      ref->blobs()[i]->CopyFrom(*omp->blobs()[i]);
      caffe_set(omp->blobs()[i]->count(), Dtype(0),
                omp->blobs()[i]->mutable_cpu_diff());
      caffe_set(ref->blobs()[i]->count(), Dtype(0),
                ref->blobs()[i]->mutable_cpu_diff());
      if (i == frozen) {
        omp->set_param_propagate_down(i, false);
        ref->set_param_propagate_down(i, false);
      }
    }
    Blob<Dtype> input(shape), top_diff(shape);
    vector<bool> down(1, propagate_bottom);
    for (int pass = 0; pass < 2; ++pass) {
      FillGaussian<Dtype>(&input);
      bottom.CopyFrom(input);
      ref_bottom.CopyFrom(input);
      omp->Forward(b, t);
      ref->Forward(rb, rt);
      ExpectNear(*t[0], *rt[0], false, "top");
      FillGaussian<Dtype>(&top_diff);
      t[0]->CopyFrom(top_diff, true);
      rt[0]->CopyFrom(top_diff, true);
      omp->Backward(t, down, b);
      ref->Backward(rt, down, rb);
      if (propagate_bottom) {
        ExpectNear(bottom, ref_bottom, true, "bottom diff");
      }
      for (int i = 0; i < omp->blobs().size(); ++i) {
        ExpectNear(*omp->blobs()[i], *ref->blobs()[i], true, "param diff");
      }
    }
  }
};

TYPED_TEST_CASE(OmpScaleLayerTest, TestDtypesAndDevices);

TYPED_TEST(OmpScaleLayerTest, TestFactoryPicksEngine) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->MakeParam(ScaleParameter_Engine_DEFAULT, true);
  shared_ptr<Layer<Dtype> > layer = LayerRegistry<Dtype>::CreateLayer(param);
  EXPECT_TRUE(dynamic_cast<OmpScaleLayer<Dtype>*>(layer.get()) != NULL);
  EXPECT_STREQ("Scale", layer->type());
  param.mutable_scale_param()->set_engine(ScaleParameter_Engine_CAFFE);
  layer = LayerRegistry<Dtype>::CreateLayer(param);
  EXPECT_TRUE(dynamic_cast<OmpScaleLayer<Dtype>*>(layer.get()) == NULL);
  EXPECT_TRUE(dynamic_cast<ScaleLayer<Dtype>*>(layer.get()) != NULL);
}

TYPED_TEST(OmpScaleLayerTest, TestMatchesCaffe) {
  int s[] = {3, 4, 5, 6};
  vector<int> shape(s, s + 4);
  this->CheckAgainstCaffe(shape, false, false);
  this->CheckAgainstCaffe(shape, true, false);
}

TYPED_TEST(OmpScaleLayerTest, TestMatchesCaffeInPlace) {
  int s[] = {3, 4, 5, 6};
  vector<int> shape(s, s + 4);
  this->CheckAgainstCaffe(shape, false, true);
  this->CheckAgainstCaffe(shape, true, true);
}

TYPED_TEST(OmpScaleLayerTest, TestMatchesCaffeBatchOneAndFlat) {
  int s1[] = {1, 5, 3, 3};
  this->CheckAgainstCaffe(vector<int>(s1, s1 + 4), true, true);
  int s2[] = {4, 7};
  this->CheckAgainstCaffe(vector<int>(s2, s2 + 2), true, false);
  int s3[] = {2, 3, 17, 13};
  this->CheckAgainstCaffe(vector<int>(s3, s3 + 4), true, true);
}

TYPED_TEST(OmpScaleLayerTest, TestMatchesCaffeLarge) {
  int s[] = {16, 8, 32, 32};
  this->CheckAgainstCaffe(vector<int>(s, s + 4), true, true);
}

TYPED_TEST(OmpScaleLayerTest, TestMatchesCaffeFrozenParams) {
  int s[] = {2, 3, 4, 5};
  vector<int> shape(s, s + 4);
  this->CheckAgainstCaffe(shape, true, true, true, 0);   // scale frozen
  this->CheckAgainstCaffe(shape, true, true, true, 1);   // bias frozen
  this->CheckAgainstCaffe(shape, true, false, false);    // no bottom diff
}

// Shapes outside the fused path fall back to ScaleLayer's code.
TYPED_TEST(OmpScaleLayerTest, TestMatchesCaffeOtherAxes) {
  int s[] = {2, 3, 4, 5};
  vector<int> shape(s, s + 4);
  this->CheckAgainstCaffe(shape, true, false, true, -1, 1, 2);
  this->CheckAgainstCaffe(shape, true, true, true, -1, 0, 1);
  this->CheckAgainstCaffe(shape, false, false, true, -1, 2, 1);
}

TYPED_TEST(OmpScaleLayerTest, TestGradient) {
  typedef typename TypeParam::Dtype Dtype;
  shared_ptr<Layer<Dtype> > layer = LayerRegistry<Dtype>::CreateLayer(
      this->MakeParam(ScaleParameter_Engine_DEFAULT, true));
  Blob<Dtype> bottom(2, 3, 4, 5), top;
  FillGaussian<Dtype>(&bottom);
  vector<Blob<Dtype>*> b(1, &bottom), t(1, &top);
  GradientChecker<Dtype> checker(1e-2, 1e-3);
  checker.CheckGradientExhaustive(layer.get(), b, t);
}

}  // namespace caffe
