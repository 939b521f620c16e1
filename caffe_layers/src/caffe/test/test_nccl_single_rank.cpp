// Caffe's NCCL class with a single rank, as pycaffe drives it (python/train.py:
// NCCL(solver, new_uid()), bcast(), solver.add_callback(nccl), and with
// layer_wise_reduce net.after_backward(nccl)): its broadcast and all-reduce
// run (counted: with one rank they change no number, so equal training alone
// would pass with NCCL never called), and training goes exactly as without
// NCCL. `caffe train -gpu all`
// takes the NCCL path only with two or more GPUs (and NCCL refuses one device
// twice), so this is as much of the multi-GPU code as one GPU runs.
#ifdef USE_NCCL
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

#include "caffe/common.hpp"
#include "caffe/parallel.hpp"
#include "caffe/sgd_solvers.hpp"
#include "caffe/solver.hpp"

#include "caffe/test/test_caffe_main.hpp"

namespace caffe {

// NCCL that counts the all-reduce calls the solver and the net make.
class CountingNCCL : public NCCL<float> {
 public:
  CountingNCCL(shared_ptr<Solver<float> > solver, const string& uid)
      : NCCL<float>(solver, uid), whole_reduces_(0), layer_reduces_(0) {}
  int whole_reduces_;  // on_gradients_ready: one an iteration
  int layer_reduces_;  // run(layer): after each layer's backward (layer-wise)

 protected:
  void on_gradients_ready() {
    ++whole_reduces_;
    NCCL<float>::on_gradients_ready();
  }
  void run(int layer) {
    ++layer_reduces_;
    NCCL<float>::run(layer);
  }
};

class NCCLSingleRankTest : public GPUDeviceTest<float> {
 protected:
  shared_ptr<Solver<float> > MakeSolver(bool layer_wise_reduce) {
    const string proto =
        "base_lr: 0.05 lr_policy: 'fixed' momentum: 0.9 weight_decay: 0.001 "
        "max_iter: 100 display: 0 random_seed: 1701 snapshot_after_train: false "
        "net_param { name: 'n' "
        "  layer { name: 'data' type: 'DummyData' top: 'data' top: 'target' "
        "    dummy_data_param { shape { dim: 8 dim: 3 dim: 6 dim: 6 } "
        "      shape { dim: 8 dim: 4 } "
        "      data_filler { type: 'gaussian' std: 1 } "
        "      data_filler { type: 'gaussian' std: 1 } } } "
        "  layer { name: 'conv' type: 'BinaryPatternConvolution' bottom: 'data' "
        "    top: 'conv' convolution_param { num_output: 5 kernel_size: 3 "
        "      weight_filler { type: 'gaussian' std: 0.3 } } "
        "    binary_pattern_param { train_mode: STE } } "
        "  layer { name: 'ip' type: 'InnerProduct' bottom: 'conv' top: 'ip' "
        "    inner_product_param { num_output: 4 "
        "      weight_filler { type: 'gaussian' std: 0.1 } } } "
        "  layer { name: 'loss' type: 'EuclideanLoss' bottom: 'ip' "
        "    bottom: 'target' top: 'loss' } } ";
    SolverParameter param;
    CHECK(google::protobuf::TextFormat::ParseFromString(proto, &param));
    param.set_layer_wise_reduce(layer_wise_reduce);
    return shared_ptr<Solver<float> >(new SGDSolver<float>(param));
  }

  void CheckSameTraining(bool layer_wise_reduce) {
    shared_ptr<Solver<float> > plain = MakeSolver(layer_wise_reduce);
    plain->Step(5);
    shared_ptr<Solver<float> > synced = MakeSolver(layer_wise_reduce);
    {
      CountingNCCL nccl(synced, NCCL<float>::new_uid());
      nccl.Broadcast();
      synced->add_callback(&nccl);
      if (layer_wise_reduce) {
        synced->net()->add_after_backward(&nccl);
      }
      synced->Step(5);
      Caffe::set_multiprocess(false);  // set by NCCL's multi-process constructor
      EXPECT_EQ(5, nccl.whole_reduces_);  // NCCL reduces (whole or by layer) in each
      if (layer_wise_reduce) {
        EXPECT_GE(nccl.layer_reduces_, 5);
      } else {
        EXPECT_EQ(0, nccl.layer_reduces_);
      }
      // Equal up to cuDNN's atomic (non-deterministic) filter gradients.
      const vector<Blob<float>*>& a = plain->net()->learnable_params();
      const vector<Blob<float>*>& b = synced->net()->learnable_params();
      ASSERT_EQ(a.size(), b.size());
      for (int p = 0; p < a.size(); ++p) {
        for (int i = 0; i < a[p]->count(); ++i) {
          EXPECT_NEAR(a[p]->cpu_data()[i], b[p]->cpu_data()[i], 1e-5)
              << "param " << p << " entry " << i;
        }
      }
    }
  }
};

TEST_F(NCCLSingleRankTest, TestBroadcastAndAllReduce) {
  this->CheckSameTraining(false);
}

TEST_F(NCCLSingleRankTest, TestLayerWiseReduce) {
  this->CheckSameTraining(true);
}

}  // namespace caffe
#endif  // USE_NCCL
