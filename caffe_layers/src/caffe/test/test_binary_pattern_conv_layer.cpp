#include <cmath>
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/binary_pattern_conv_layer.hpp"
#include "caffe/layers/conv_layer.hpp"
#include "caffe/layers/cudnn_binary_pattern_conv_layer.hpp"
#include "caffe/layers/cudnn_conv_layer.hpp"
#include "caffe/layers/cudnn_relu_layer.hpp"
#include "caffe/layers/dnnl_conv_layer.hpp"
#include "caffe/layers/omp_batch_norm_layer.hpp"
#include "caffe/layers/relu_layer.hpp"
#include "caffe/layer_factory.hpp"
#include "caffe/net.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_engine_util.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

// One convolution geometry of the tests.
struct ConvCase {
  int kernel_h, kernel_w, stride, pad, dilation, group, num_output;
  bool bias;
};

// Every test runs on each engine of the layer: BinaryPatternConvolutionLayer
// on the CPU (oneDNN for float) and on the GPU (Caffe's im2col + cuBLAS), and,
// in a build with cuDNN, the sibling CuDNNBinaryPatternConvolutionLayer on
// the GPU (type parameter CuDNNDevice).
template <typename TypeParam>
struct PatternEngine {
  typedef typename TypeParam::Dtype Dtype;
  static const bool kCuDNN = false;
  static BinaryPatternConvolutionLayer<Dtype>* New(const LayerParameter& p) {
    return new BinaryPatternConvolutionLayer<Dtype>(p);
  }
};

#ifdef USE_CUDNN
template <typename TypeParam>
struct CuDNNDevice : public GPUDevice<TypeParam> {};

template <typename TypeParam>
struct PatternEngine<CuDNNDevice<TypeParam> > {
  static const bool kCuDNN = true;
  static BinaryPatternConvolutionLayer<TypeParam>* New(
      const LayerParameter& p) {
    return new CuDNNBinaryPatternConvolutionLayer<TypeParam>(p);
  }
};

typedef ::testing::Types<CPUDevice<float>, CPUDevice<double>,
                         GPUDevice<float>, GPUDevice<double>,
                         CuDNNDevice<float>, CuDNNDevice<double> >
                         PatternTestTypes;
#else
typedef TestDtypesAndDevices PatternTestTypes;
#endif

template <typename TypeParam>
class BinaryPatternConvolutionLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  BinaryPatternConvolutionLayerTest()
      : blob_bottom_(new Blob<Dtype>(2, 4, 9, 8)),
        blob_top_(new Blob<Dtype>()) {}
  virtual void SetUp() {
    FillGaussian<Dtype>(blob_bottom_);
    blob_bottom_vec_.push_back(blob_bottom_);
    blob_top_vec_.push_back(blob_top_);
  }
  virtual ~BinaryPatternConvolutionLayerTest() {
    delete blob_bottom_;
    delete blob_top_;
  }

  // The layer on this test's engine.
  shared_ptr<BinaryPatternConvolutionLayer<Dtype> > NewLayer(
      const LayerParameter& param) {
    return shared_ptr<BinaryPatternConvolutionLayer<Dtype> >(
        PatternEngine<TypeParam>::New(param));
  }

  // The layer on this test's engine, set up on this test's blobs.
  shared_ptr<BinaryPatternConvolutionLayer<Dtype> > SetUpLayer(
      const LayerParameter& param) {
    shared_ptr<BinaryPatternConvolutionLayer<Dtype> > layer = NewLayer(param);
    layer->SetUp(blob_bottom_vec_, blob_top_vec_);
    return layer;
  }

  LayerParameter MakeParam(const ConvCase& c) {
    LayerParameter param;
    param.set_name("bpconv");
    ConvolutionParameter* conv = param.mutable_convolution_param();
    conv->set_kernel_h(c.kernel_h);
    conv->set_kernel_w(c.kernel_w);
    conv->add_stride(c.stride);
    conv->add_pad(c.pad);
    conv->add_dilation(c.dilation);
    conv->set_group(c.group);
    conv->set_num_output(c.num_output);
    conv->set_bias_term(c.bias);
    conv->mutable_weight_filler()->set_type("gaussian");
    conv->mutable_bias_filler()->set_type("gaussian");
    return param;
  }

  // A smaller input keeps the exhaustive gradient checks quick.
  void UseSmallBottom() {
    blob_bottom_->Reshape(2, 3, 6, 6);
    FillGaussian<Dtype>(blob_bottom_);
  }

  // Keep weights at least `margin` away from 0, so that the finite
  // differences of the gradient checker never flip a sign.
  void PushAwayFromZero(Blob<Dtype>* blob, Dtype margin) {
    Dtype* w = blob->mutable_cpu_data();
    for (int i = 0; i < blob->count(); ++i) {
      w[i] = w[i] >= 0 ? w[i] + margin : w[i] - margin;
    }
  }

  // The exhaustive gradient check of a set-up layer, its weights first
  // pushed away from 0 (see PushAwayFromZero).
  void CheckGradientAwayFromZero(BinaryPatternConvolutionLayer<Dtype>* layer) {
    PushAwayFromZero(layer->blobs()[0].get(), 0.05);
    GradientChecker<Dtype> checker(1e-2, 1e-3);
    checker.CheckGradientExhaustive(layer, blob_bottom_vec_, blob_top_vec_);
  }

  void ExpectSetUpDies(const LayerParameter& param, const char* message) {
    shared_ptr<BinaryPatternConvolutionLayer<Dtype> > layer = NewLayer(param);
    EXPECT_DEATH(layer->SetUp(blob_bottom_vec_, blob_top_vec_), message);
  }

  // `fast`, set up on this test's blobs from `param`, against the layer's own
  // im2col path (engine CAFFE) holding the same blobs: the outputs, the input
  // gradient and every parameter gradient, for a random top gradient.
  void CheckMatchesCaffeEngine(BinaryPatternConvolutionLayer<Dtype>* fast,
                               LayerParameter param) {
    param.mutable_convolution_param()->set_engine(
        ConvolutionParameter_Engine_CAFFE);
    BinaryPatternConvolutionLayer<Dtype> ref(param);
    ExpectLayersAgree<Dtype>(fast, &ref, blob_bottom_vec_, blob_top_vec_, 1e-4);
    EXPECT_FALSE(ref.uses_dnnl());
  }

  // alpha_c * sign(W_c), computed here from the definition.
  void BakedWeights(const Blob<Dtype>& w, const vector<Dtype>& alpha,
      Blob<Dtype>* out) {
    out->ReshapeLike(w);
    const int dim = w.count(1);
    for (int i = 0; i < w.count(); ++i) {
      const Dtype a = alpha[i / dim];
      out->mutable_cpu_data()[i] = w.cpu_data()[i] >= 0 ? a : -a;
    }
  }

  vector<Dtype> MeanAbs(const Blob<Dtype>& w) {
    const int dim = w.count(1);
    vector<Dtype> alpha(w.shape(0), 0);
    for (int i = 0; i < w.count(); ++i) {
      alpha[i / dim] += std::abs(w.cpu_data()[i]) / dim;
    }
    return alpha;
  }

  // Forward of the pattern layer equals a stock Convolution holding the baked
  // weights alpha_c * sign(W_c).
  void CheckForwardMatchesBaked(const ConvCase& c, bool offset_mode) {
    LayerParameter param = MakeParam(c);
    if (offset_mode) {
      param.mutable_binary_pattern_param()->set_scale_mode(
          BinaryPatternParameter_ScaleMode_OFFSET);
      param.mutable_binary_pattern_param()->set_offset(0.06);
    }
    shared_ptr<BinaryPatternConvolutionLayer<Dtype> > layer = SetUpLayer(param);
    layer->Forward(blob_bottom_vec_, blob_top_vec_);
    const Blob<Dtype>& w = *layer->blobs()[0];
    vector<Dtype> alpha = offset_mode ?
        vector<Dtype>(w.shape(0), Dtype(0.06)) : MeanAbs(w);
    for (int k = 0; k < alpha.size(); ++k) {
      EXPECT_NEAR(alpha[k], layer->scales().cpu_data()[k], 1e-5 * alpha[k]);
    }
    // The effective filters hold exactly two values each, +/- alpha_c.
    const int dim = w.count(1);
    for (int i = 0; i < w.count(); ++i) {
      EXPECT_EQ(std::abs(layer->effective_weights().cpu_data()[i]),
                layer->scales().cpu_data()[i / dim]);
    }
    ConvolutionLayer<Dtype> stock(MakeParam(c));
    Blob<Dtype> stock_top;
    vector<Blob<Dtype>*> stock_top_vec(1, &stock_top);
    stock.SetUp(blob_bottom_vec_, stock_top_vec);
    BakedWeights(w, alpha, stock.blobs()[0].get());
    if (c.bias) {
      stock.blobs()[1]->CopyFrom(*layer->blobs()[1]);
    }
    stock.Forward(blob_bottom_vec_, stock_top_vec);
    ASSERT_EQ(stock_top.shape(), blob_top_->shape());
    ExpectBlobsNear(*blob_top_, stock_top, false, 1e-4, "top");
  }

  Blob<Dtype>* const blob_bottom_;
  Blob<Dtype>* const blob_top_;
  vector<Blob<Dtype>*> blob_bottom_vec_;
  vector<Blob<Dtype>*> blob_top_vec_;
};

TYPED_TEST_CASE(BinaryPatternConvolutionLayerTest, PatternTestTypes);

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestForward3x3) {
  ConvCase c = {3, 3, 1, 1, 1, 1, 6, true};
  this->CheckForwardMatchesBaked(c, false);
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestForward3x3StrideGroup) {
  ConvCase c = {3, 3, 2, 1, 1, 2, 6, true};
  this->CheckForwardMatchesBaked(c, false);
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestForward5x5DilationNoBias) {
  ConvCase c = {5, 5, 1, 2, 2, 1, 3, false};
  this->CheckForwardMatchesBaked(c, false);
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestForward7x7Group4) {
  ConvCase c = {7, 7, 2, 3, 1, 4, 8, true};
  this->CheckForwardMatchesBaked(c, false);
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestForwardRectangular) {
  ConvCase c = {3, 5, 1, 1, 1, 1, 4, false};
  this->CheckForwardMatchesBaked(c, false);
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestForwardOffset) {
  ConvCase c = {3, 3, 1, 1, 1, 2, 4, true};
  this->CheckForwardMatchesBaked(c, true);
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestSignOfZeroIsPlus) {
  typedef typename TypeParam::Dtype Dtype;
  ConvCase c = {3, 3, 1, 1, 1, 1, 2, false};
  shared_ptr<BinaryPatternConvolutionLayer<Dtype> > layer =
      this->SetUpLayer(this->MakeParam(c));
  Blob<Dtype>* w = layer->blobs()[0].get();
  caffe_set(w->count(), Dtype(-0.5), w->mutable_cpu_data());
  w->mutable_cpu_data()[0] = 0;
  layer->Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  const Dtype alpha = layer->scales().cpu_data()[0];
  EXPECT_EQ(alpha, layer->effective_weights().cpu_data()[0]);
  EXPECT_EQ(-alpha, layer->effective_weights().cpu_data()[1]);
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestAlphaBindsOnceThenLearns) {
  typedef typename TypeParam::Dtype Dtype;
  ConvCase c = {3, 3, 1, 1, 1, 1, 3, true};
  shared_ptr<BinaryPatternConvolutionLayer<Dtype> > layer =
      this->SetUpLayer(this->MakeParam(c));
  ASSERT_EQ(3, layer->blobs().size());
  EXPECT_EQ(Dtype(0), layer->blobs()[2]->cpu_data()[0]);  // unbound
  layer->Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  const vector<Dtype> mean = this->MeanAbs(*layer->blobs()[0]);
  EXPECT_NEAR(mean[1], layer->blobs()[2]->cpu_data()[1], 1e-5 * mean[1]);
  // Once bound, alpha is a parameter: changing W's magnitude leaves it alone.
  layer->blobs()[2]->mutable_cpu_data()[1] = 0.25;
  caffe_scal(layer->blobs()[0]->count(), Dtype(3),
             layer->blobs()[0]->mutable_cpu_data());
  layer->Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  EXPECT_EQ(Dtype(0.25), layer->scales().cpu_data()[1]);
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestGradientFixedMean) {
  typedef typename TypeParam::Dtype Dtype;
  ConvCase c = {3, 3, 2, 1, 1, 2, 4, true};
  shared_ptr<BinaryPatternConvolutionLayer<Dtype> > layer =
      this->SetUpLayer(this->MakeParam(c));
  this->CheckGradientAwayFromZero(layer.get());
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestGradientFixedMean5x5NoBias) {
  typedef typename TypeParam::Dtype Dtype;
  this->UseSmallBottom();
  ConvCase c = {5, 5, 1, 2, 1, 1, 2, false};
  shared_ptr<BinaryPatternConvolutionLayer<Dtype> > layer =
      this->SetUpLayer(this->MakeParam(c));
  this->CheckGradientAwayFromZero(layer.get());
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestGradientFixedOffset) {
  typedef typename TypeParam::Dtype Dtype;
  this->UseSmallBottom();
  ConvCase c = {3, 3, 1, 1, 1, 1, 3, true};
  LayerParameter param = this->MakeParam(c);
  param.mutable_binary_pattern_param()->set_scale_mode(
      BinaryPatternParameter_ScaleMode_OFFSET);
  param.mutable_binary_pattern_param()->set_offset(0.09);
  shared_ptr<BinaryPatternConvolutionLayer<Dtype> > layer =
      this->SetUpLayer(param);
  ASSERT_EQ(2, layer->blobs().size());
  this->CheckGradientAwayFromZero(layer.get());
}

// STE: the input gradient is the one of a stock Convolution holding the baked
// weights; the weight gradient follows the closed form of the layer's doc,
// built here from the stock layer's weight gradient (= dL/dWeff).
TYPED_TEST(BinaryPatternConvolutionLayerTest, TestSteGradientClosedForm) {
  typedef typename TypeParam::Dtype Dtype;
  for (int mode = 0; mode < 2; ++mode) {
    const bool mean = mode == 0;
    ConvCase c = {3, 3, 1, 1, 1, 2, 4, true};
    LayerParameter param = this->MakeParam(c);
    BinaryPatternParameter* bp = param.mutable_binary_pattern_param();
    bp->set_train_mode(BinaryPatternParameter_TrainMode_STE);
    bp->set_ste_clip(0.8);
    if (!mean) {
      bp->set_scale_mode(BinaryPatternParameter_ScaleMode_OFFSET);
      bp->set_offset(0.07);
    }
    shared_ptr<BinaryPatternConvolutionLayer<Dtype> > layer =
        this->SetUpLayer(param);
    ASSERT_EQ(2, layer->blobs().size());
    layer->Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    Blob<Dtype> top_diff;
    top_diff.ReshapeLike(*this->blob_top_);
    FillGaussian<Dtype>(&top_diff);
    caffe_copy(top_diff.count(), top_diff.cpu_data(),
               this->blob_top_->mutable_cpu_diff());
    caffe_set(layer->blobs()[0]->count(), Dtype(0),
              layer->blobs()[0]->mutable_cpu_diff());
    caffe_set(layer->blobs()[1]->count(), Dtype(0),
              layer->blobs()[1]->mutable_cpu_diff());
    layer->Backward(this->blob_top_vec_, vector<bool>(1, true),
                   this->blob_bottom_vec_);

    const Blob<Dtype>& w = *layer->blobs()[0];
    const int dim = w.count(1);
    vector<Dtype> alpha = mean ? this->MeanAbs(w) :
        vector<Dtype>(w.shape(0), Dtype(0.07));
    ConvolutionLayer<Dtype> stock(this->MakeParam(c));
    Blob<Dtype> stock_top, stock_bottom;
    stock_bottom.CopyFrom(*this->blob_bottom_, false, true);
    vector<Blob<Dtype>*> stock_top_vec(1, &stock_top);
    vector<Blob<Dtype>*> stock_bottom_vec(1, &stock_bottom);
    stock.SetUp(stock_bottom_vec, stock_top_vec);
    this->BakedWeights(w, alpha, stock.blobs()[0].get());
    stock.blobs()[1]->CopyFrom(*layer->blobs()[1]);
    stock.Forward(stock_bottom_vec, stock_top_vec);
    caffe_copy(top_diff.count(), top_diff.cpu_data(),
               stock_top.mutable_cpu_diff());
    caffe_set(stock.blobs()[0]->count(), Dtype(0),
              stock.blobs()[0]->mutable_cpu_diff());
    stock.Backward(stock_top_vec, vector<bool>(1, true), stock_bottom_vec);

    ExpectBlobsNear(*this->blob_bottom_, stock_bottom, true, 1e-4,
                    "bottom diff");
    const Dtype* g = stock.blobs()[0]->cpu_diff();  // dL/dWeff
    int clipped = 0;
    for (int k = 0; k < w.shape(0); ++k) {
      Dtype g_alpha = 0;
      for (int j = 0; j < dim; ++j) {
        const int i = k * dim + j;
        g_alpha += w.cpu_data()[i] >= 0 ? g[i] : -g[i];
      }
      for (int j = 0; j < dim; ++j) {
        const int i = k * dim + j;
        const Dtype wi = w.cpu_data()[i];
        const Dtype b = wi >= 0 ? 1 : -1;
        const bool pass = std::abs(wi) <= Dtype(0.8);
        clipped += !pass;
        const Dtype expected = (pass ? alpha[k] * g[i] : Dtype(0)) +
            (mean ? b * g_alpha / dim : Dtype(0));
        EXPECT_NEAR(expected, w.cpu_diff()[i],
                    1e-4 * std::max(Dtype(1), std::abs(expected)));
      }
    }
    EXPECT_GT(clipped, 0);  // the clip is exercised
  }
}

// A model trained with a stock Convolution loads into the pattern layer by
// name; alpha, absent from the model, binds to mean |W_c|.
TYPED_TEST(BinaryPatternConvolutionLayerTest, TestLoadsConvolutionModel) {
  typedef typename TypeParam::Dtype Dtype;
  const string proto =
      "name: 'n' "
      "layer { name: 'data' type: 'Input' top: 'data' "
      "  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } } "
      "layer { name: 'conv' type: 'TYPE' bottom: 'data' top: 'conv' "
      "  convolution_param { num_output: 4 kernel_size: 3 pad: 1 "
      "    weight_filler { type: 'gaussian' std: 0.1 } "
      "    bias_filler { type: 'gaussian' std: 0.1 } } } ";
  NetParameter stock_param, pattern_param;
  string s = proto;
  s.replace(s.find("TYPE"), 4, "Convolution");
  CHECK(google::protobuf::TextFormat::ParseFromString(s, &stock_param));
  s = proto;
  s.replace(s.find("TYPE"), 4, "BinaryPatternConvolution");
  CHECK(google::protobuf::TextFormat::ParseFromString(s, &pattern_param));
  Net<Dtype> stock(stock_param);
  NetParameter trained;
  stock.ToProto(&trained);
  Net<Dtype> pattern(pattern_param);
  pattern.CopyTrainedLayersFrom(trained);
  pattern.Forward();
  const Blob<Dtype>& w_stock = *stock.layer_by_name("conv")->blobs()[0];
  const vector<shared_ptr<Blob<Dtype> > >& blobs =
      pattern.layer_by_name("conv")->blobs();
  ASSERT_EQ(3, blobs.size());
  for (int i = 0; i < w_stock.count(); ++i) {
    EXPECT_EQ(w_stock.cpu_data()[i], blobs[0]->cpu_data()[i]);
  }
  const vector<Dtype> mean = this->MeanAbs(w_stock);
  for (int k = 0; k < 4; ++k) {
    EXPECT_NEAR(mean[k], blobs[2]->cpu_data()[k], 1e-5 * mean[k]);
  }
  // ... and a pattern model (with alpha) round-trips.
  NetParameter pattern_trained;
  pattern.ToProto(&pattern_trained);
  Net<Dtype> again(pattern_param);
  again.CopyTrainedLayersFrom(pattern_trained);
  EXPECT_EQ(blobs[2]->cpu_data()[3],
            again.layer_by_name("conv")->blobs()[2]->cpu_data()[3]);
}

// The oneDNN CPU path (float) agrees with Caffe's own im2col path, also when
// the batch is split into chunks with a remainder.
TYPED_TEST(BinaryPatternConvolutionLayerTest, TestDnnlMatchesCaffeEngine) {
  typedef typename TypeParam::Dtype Dtype;
  if (Caffe::mode() != Caffe::CPU || sizeof(Dtype) != sizeof(float) ||
      !DnnlConvolution::Available()) {
    return;
  }
  this->blob_bottom_->Reshape(5, 4, 9, 8);
  FillGaussian<Dtype>(this->blob_bottom_);
  const ConvCase cases[] = {{3, 3, 1, 1, 1, 1, 6, true},
                            {3, 3, 2, 1, 1, 2, 4, true},
                            {5, 5, 1, 2, 2, 1, 3, false}};
  for (int k = 0; k < 3; ++k) {
    const ConvCase& c = cases[k];
    LayerParameter param = this->MakeParam(c);
    BinaryPatternConvolutionLayer<Dtype> fast(param);
    fast.set_dnnl_workspace_bytes(1);  // one image per chunk
    fast.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    ASSERT_TRUE(fast.uses_dnnl());
    EXPECT_EQ(1, fast.dnnl_chunk());
    this->CheckMatchesCaffeEngine(&fast, param);
  }
}

TYPED_TEST(BinaryPatternConvolutionLayerTest, TestSetupErrors) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  ConvCase one = {1, 1, 1, 0, 1, 1, 4, true};
  this->ExpectSetUpDies(this->MakeParam(one), "1x1 kernels are projections");
  {
    LayerParameter param = this->MakeParam(one);
    param.mutable_binary_pattern_param()->set_allow_1x1(true);
    EXPECT_EQ(3, this->SetUpLayer(param)->blobs().size());
  }
  ConvCase c = {3, 3, 1, 1, 1, 1, 4, true};
  {
    LayerParameter param = this->MakeParam(c);
    param.mutable_binary_pattern_param()->set_scale_mode(
        BinaryPatternParameter_ScaleMode_OFFSET);
    this->ExpectSetUpDies(param,
                          "scale_mode OFFSET needs binary_pattern_param \\{ offset");
    param.mutable_binary_pattern_param()->set_offset(-0.05);
    this->ExpectSetUpDies(param, "offset must be a finite value > 0");
  }
  {
    LayerParameter param = this->MakeParam(c);
    param.mutable_binary_pattern_param()->set_offset(0.05);
    this->ExpectSetUpDies(param, "offset is only used with scale_mode OFFSET");
  }
  {
    LayerParameter param = this->MakeParam(c);
    param.mutable_binary_pattern_param()->set_ste_clip(0);
    this->ExpectSetUpDies(param, "ste_clip must be > 0");
  }
}

// The cuDNN engine agrees with BinaryPatternConvolutionLayer's own GPU path
// (engine CAFFE) on the outputs and on every gradient -- input, bias, alpha
// (FIXED) and W (STE) -- with groups, strides, dilation, no bias.
TYPED_TEST(BinaryPatternConvolutionLayerTest, TestCuDNNMatchesCaffeEngine) {
  typedef typename TypeParam::Dtype Dtype;
  if (!PatternEngine<TypeParam>::kCuDNN) {
    return;
  }
  this->blob_bottom_->Reshape(5, 4, 9, 8);
  const ConvCase cases[] = {{3, 3, 1, 1, 1, 1, 6, true},
                            {3, 3, 2, 1, 1, 2, 4, true},
                            {5, 5, 1, 2, 2, 1, 3, false},
                            {3, 5, 2, 1, 1, 4, 8, true}};
  for (int k = 0; k < 4; ++k) {
    for (int ste = 0; ste < 2; ++ste) {
      FillGaussian<Dtype>(this->blob_bottom_);
      LayerParameter param = this->MakeParam(cases[k]);
      if (ste) {
        param.mutable_binary_pattern_param()->set_train_mode(
            BinaryPatternParameter_TrainMode_STE);
        param.mutable_binary_pattern_param()->set_ste_clip(0.8);
      }
      shared_ptr<BinaryPatternConvolutionLayer<Dtype> > fast =
          this->SetUpLayer(param);
      this->CheckMatchesCaffeEngine(fast.get(), param);
    }
  }
}

// The layer factory's one decision: engine DEFAULT is cuDNN only for nets
// built in GPU mode of a build with cuDNN; in CPU mode every build keeps the
// CPU engines (oneDNN convolutions, fused OpenMP BatchNorm); engine CAFFE is
// Caffe's own code everywhere.
TYPED_TEST(BinaryPatternConvolutionLayerTest, TestFactoryEngineByMode) {
  typedef typename TypeParam::Dtype Dtype;
  ConvCase c = {3, 3, 1, 1, 1, 1, 4, true};
  LayerParameter param = this->MakeParam(c);
  param.set_type("BinaryPatternConvolution");
  LayerParameter conv = this->MakeParam(c);
  conv.set_type("Convolution");
  LayerParameter relu;
  relu.set_type("ReLU");
  LayerParameter bn;
  bn.set_type("BatchNorm");
  bool gpu_cudnn = false;
#ifdef USE_CUDNN
  gpu_cudnn = Caffe::mode() == Caffe::GPU;
#endif
  shared_ptr<Layer<Dtype> > pattern = LayerRegistry<Dtype>::CreateLayer(param);
  shared_ptr<Layer<Dtype> > stock = LayerRegistry<Dtype>::CreateLayer(conv);
  shared_ptr<Layer<Dtype> > act = LayerRegistry<Dtype>::CreateLayer(relu);
  shared_ptr<Layer<Dtype> > norm = LayerRegistry<Dtype>::CreateLayer(bn);
  EXPECT_STREQ("BinaryPatternConvolution", pattern->type());
  EXPECT_TRUE(dynamic_cast<BinaryPatternConvolutionLayer<Dtype>*>(
      pattern.get()) != NULL);
  EXPECT_TRUE(dynamic_cast<OmpBatchNormLayer<Dtype>*>(norm.get()) != NULL);
#ifdef USE_CUDNN
  EXPECT_EQ(gpu_cudnn, dynamic_cast<CuDNNBinaryPatternConvolutionLayer<Dtype>*>(
      pattern.get()) != NULL);
  EXPECT_EQ(gpu_cudnn, dynamic_cast<CuDNNConvolutionLayer<Dtype>*>(
      stock.get()) != NULL);
  EXPECT_EQ(gpu_cudnn, dynamic_cast<CuDNNReLULayer<Dtype>*>(
      act.get()) != NULL);
  param.mutable_convolution_param()->set_engine(
      ConvolutionParameter_Engine_CAFFE);
  EXPECT_TRUE(dynamic_cast<CuDNNBinaryPatternConvolutionLayer<Dtype>*>(
      LayerRegistry<Dtype>::CreateLayer(param).get()) == NULL);
#endif
#ifdef SEPNETS_USE_DNNL
  if (!gpu_cudnn) {
    EXPECT_TRUE(dynamic_cast<DnnlConvolutionLayer<Dtype>*>(stock.get()) != NULL);
  }
#endif
  EXPECT_FALSE(dynamic_cast<ReLULayer<Dtype>*>(act.get()) == NULL);
}

}  // namespace caffe
