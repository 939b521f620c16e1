#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layer_factory.hpp"
#include "caffe/layers/conv_layer.hpp"
#include "caffe/layers/dnnl_conv_layer.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_engine_util.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

template <typename TypeParam>
class DnnlConvolutionLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  DnnlConvolutionLayerTest()
      : blob_bottom_(new Blob<Dtype>(5, 4, 9, 8)),
        blob_top_(new Blob<Dtype>()) {}
  virtual void SetUp() {
    FillerParameter filler_param;
    GaussianFiller<Dtype> filler(filler_param);
    filler.Fill(blob_bottom_);
    blob_bottom_vec_.push_back(blob_bottom_);
    blob_top_vec_.push_back(blob_top_);
  }
  virtual ~DnnlConvolutionLayerTest() {
    delete blob_bottom_;
    delete blob_top_;
  }

  LayerParameter MakeParam(int kernel, int stride, int pad, int dilation,
      int group, int num_output, bool bias) {
    LayerParameter param;
    param.set_type("Convolution");
    ConvolutionParameter* conv = param.mutable_convolution_param();
    conv->add_kernel_size(kernel);
    conv->add_stride(stride);
    conv->add_pad(pad);
    conv->add_dilation(dilation);
    conv->set_group(group);
    conv->set_num_output(num_output);
    conv->set_bias_term(bias);
    conv->mutable_weight_filler()->set_type("gaussian");
    conv->mutable_bias_filler()->set_type("gaussian");
    return param;
  }

  // The layer agrees with Caffe's ConvolutionLayer, forward and backward.
  void CheckAgainstCaffe(const LayerParameter& param, size_t workspace) {
    DnnlConvolutionLayer<Dtype> layer(param);
    layer.set_dnnl_workspace_bytes(workspace);
    layer.SetUp(blob_bottom_vec_, blob_top_vec_);
    ConvolutionLayer<Dtype> ref(param);
    ExpectLayersAgree<Dtype>(&layer, &ref, blob_bottom_vec_, blob_top_vec_, 1e-4);
  }

  Blob<Dtype>* const blob_bottom_;
  Blob<Dtype>* const blob_top_;
  vector<Blob<Dtype>*> blob_bottom_vec_;
  vector<Blob<Dtype>*> blob_top_vec_;
};

TYPED_TEST_CASE(DnnlConvolutionLayerTest, TestDtypesAndDevices);

TYPED_TEST(DnnlConvolutionLayerTest, TestFactoryPicksEngine) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->MakeParam(3, 1, 1, 1, 1, 4, true);
  shared_ptr<Layer<Dtype> > layer = LayerRegistry<Dtype>::CreateLayer(param);
  EXPECT_STREQ("Convolution", layer->type());
  const bool dnnl = dynamic_cast<DnnlConvolutionLayer<Dtype>*>(layer.get()) != NULL;
  EXPECT_EQ(DnnlConvolution::Available(), dnnl);
  param.mutable_convolution_param()->set_engine(ConvolutionParameter_Engine_CAFFE);
  layer = LayerRegistry<Dtype>::CreateLayer(param);
  EXPECT_TRUE(dynamic_cast<DnnlConvolutionLayer<Dtype>*>(layer.get()) == NULL);
}

TYPED_TEST(DnnlConvolutionLayerTest, TestUsesDnnlForFloatOnCpu) {
  typedef typename TypeParam::Dtype Dtype;
  DnnlConvolutionLayer<Dtype> layer(this->MakeParam(3, 1, 1, 1, 1, 4, true));
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  const bool expected = DnnlConvolution::Available() &&
      sizeof(Dtype) == sizeof(float);
  EXPECT_EQ(expected, layer.uses_dnnl());
}

TYPED_TEST(DnnlConvolutionLayerTest, TestMatchesCaffe) {
  if (Caffe::mode() != Caffe::CPU) { return; }
  this->CheckAgainstCaffe(this->MakeParam(3, 1, 1, 1, 1, 6, true),
                          DnnlConvolution::kDefaultWorkspaceBytes);
  this->CheckAgainstCaffe(this->MakeParam(3, 2, 1, 1, 2, 4, false),
                          DnnlConvolution::kDefaultWorkspaceBytes);
  this->CheckAgainstCaffe(this->MakeParam(1, 2, 0, 1, 1, 8, false),
                          DnnlConvolution::kDefaultWorkspaceBytes);
  this->CheckAgainstCaffe(this->MakeParam(5, 1, 2, 2, 1, 3, true),
                          DnnlConvolution::kDefaultWorkspaceBytes);
}

TYPED_TEST(DnnlConvolutionLayerTest, TestMatchesCaffeChunked) {
  if (Caffe::mode() != Caffe::CPU) { return; }
  // 2 images per chunk over a batch of 5: two full chunks and a remainder.
  const size_t per_image = 2 * sizeof(float) * (4 * 9 * 8 + 6 * 9 * 8);
  this->CheckAgainstCaffe(this->MakeParam(3, 1, 1, 1, 1, 6, true),
                          2 * per_image);
  DnnlConvolutionLayer<typename TypeParam::Dtype> layer(
      this->MakeParam(3, 1, 1, 1, 1, 6, true));
  layer.set_dnnl_workspace_bytes(2 * per_image);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  if (layer.uses_dnnl()) {
    EXPECT_EQ(2, layer.dnnl_chunk());
  }
}

TYPED_TEST(DnnlConvolutionLayerTest, TestMatchesCaffeMultithreaded) {
  if (Caffe::mode() != Caffe::CPU) { return; }
  // 4.7 M multiply-adds: as many OpenMP threads as the host gives (up to 4).
  this->blob_bottom_->Reshape(8, 16, 16, 16);
  FillerParameter filler_param;
  GaussianFiller<typename TypeParam::Dtype> filler(filler_param);
  filler.Fill(this->blob_bottom_);
  this->CheckAgainstCaffe(this->MakeParam(3, 1, 1, 1, 1, 16, true),
                          DnnlConvolution::kDefaultWorkspaceBytes);
}

TYPED_TEST(DnnlConvolutionLayerTest, TestGradient) {
  typedef typename TypeParam::Dtype Dtype;
  this->blob_bottom_->Reshape(2, 3, 6, 5);
  FillerParameter filler_param;
  GaussianFiller<Dtype> filler(filler_param);
  filler.Fill(this->blob_bottom_);
  DnnlConvolutionLayer<Dtype> layer(this->MakeParam(3, 2, 1, 1, 1, 2, true));
  GradientChecker<Dtype> checker(1e-2, 1e-3);
  checker.CheckGradientExhaustive(&layer, this->blob_bottom_vec_,
      this->blob_top_vec_);
}

// Small convolutions run on fewer OpenMP threads than the caller has, large
// ones on all of them; the caller's count is back after every call.
TEST(DnnlConvolutionThreadsTest, TestThreadsByProblemSize) {
  if (!DnnlConvolution::Available()) { return; }
  const int most = DnnlConvolution::MaxThreads();
  DnnlConvShape s;
  memset(&s, 0, sizeof(s));
  s.num = 2;
  s.channels = 3;
  s.height = s.width = s.out_height = s.out_width = 6;
  s.num_output = 4;
  s.kernel_h = s.kernel_w = 3;
  s.stride_h = s.stride_w = s.pad_h = s.pad_w = 1;
  s.dilation_h = s.dilation_w = s.group = 1;
  s.bias = true;
  DnnlConvolution tiny(s);  // 7.8 k multiply-adds
  EXPECT_EQ(1, tiny.threads());
  vector<float> bottom(2 * 3 * 6 * 6, 0.5f), weights(4 * 3 * 3 * 3, 0.1f);
  vector<float> bias(4, 0.f), top(2 * 4 * 6 * 6), diff(top.size(), 1.f);
  tiny.Forward(bottom.data(), weights.data(), bias.data(), top.data());
  EXPECT_EQ(most, DnnlConvolution::MaxThreads());
  EXPECT_NEAR(12 * 0.05f, top[0], 1e-5);  // a corner: 2 x 2 taps x 3 channels
  vector<float> bottom_diff(bottom.size()), weights_diff(weights.size(), 0.f);
  tiny.Backward(bottom.data(), diff.data(), weights.data(), bottom_diff.data(),
                weights_diff.data());
  EXPECT_EQ(most, DnnlConvolution::MaxThreads());

  s.num = 64;
  s.channels = s.num_output = 16;
  s.height = s.width = s.out_height = s.out_width = 32;
  DnnlConvolution large(s);  // 151 M multiply-adds
  EXPECT_EQ(std::min(most, 144), large.threads());
}

}  // namespace caffe
