#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "caffe/util/dnnl_conv.hpp"
#include "caffe/util/math_functions.hpp"

#ifdef SEPNETS_USE_DNNL
#include <omp.h>

#include "dnnl.hpp"
#endif

namespace caffe {

#ifdef SEPNETS_USE_DNNL

using dnnl::memory;
typedef memory::format_tag tag;
typedef memory::data_type dt;

// Multiply-adds a thread should have before oneDNN splits a call further.
// Every OpenMP parallel region wakes all its threads (passively waiting ones
// through the kernel); on tiny convolutions that costs more than the work,
// catastrophically so when the threads outnumber the free cores (a loaded or
// many-core host: a gradient check of a 3x3 layer took 2 s on one thread and
// minutes on two threads beside a training run). About 0.1 ms of one core.
static const double kMacsPerThread = 1 << 20;

// The OpenMP threads of oneDNN's calls while in scope (oneDNN's OpenMP
// runtime reads the calling thread's omp_get_max_threads(), both when it
// plans a primitive and when it runs one); restores the caller's count.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int threads) : saved_(omp_get_max_threads()) {
    if (threads != saved_) { omp_set_num_threads(threads); }
  }
  ~ScopedOmpThreads() {
    if (omp_get_max_threads() != saved_) { omp_set_num_threads(saved_); }
  }

 private:
  int saved_;
  DISABLE_COPY_AND_ASSIGN(ScopedOmpThreads);
};

// Threads for a convolution of `macs` multiply-adds per call: at most the
// caller's OpenMP threads, one per kMacsPerThread. Other oneDNN runtimes
// (TBB, threadpool) schedule themselves: they keep their count.
static int ThreadsFor(double macs) {
  const int most = DnnlConvolution::MaxThreads();
  if (dnnl::version()->cpu_runtime != DNNL_RUNTIME_OMP) { return most; }
  return std::max(1, std::min(most, static_cast<int>(macs / kMacsPerThread)));
}

// Primitives and oneDNN-layout buffers for one chunk size.
struct DnnlPlan {
  int num;
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
  memory::desc user_src, user_dst;
};

// Activation buffers for oneDNN's layouts, reused across the passes: "a"
// holds src-like tensors (src, diff_src), "b" and "b2" dst-like ones (dst,
// diff_dst). A net runs its layers one after another, and no layer needs its
// staged copies after its call returns, so every convolution of a thread
// shares the same three: the net pays for its largest layer's copies, not for
// the sum of all of them (which made a net's peak memory exceed stock Caffe's).
struct DnnlStaging {
  vector<char> a, b, b2;
  vector<char> scratch;  // oneDNN's scratchpads (user mode), shared likewise
  // Weights and their gradient in oneDNN's layouts, and that gradient back in
  // Caffe's: made anew by every call, so shared too.
  vector<char> w, dw, dw_user;
};
static DnnlStaging& Staging() {
  static thread_local DnnlStaging staging;
  return staging;
}

class DnnlConvolution::Impl {
 public:
  Impl(const DnnlConvShape& s, size_t workspace_bytes)
      : shape_(s), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    const size_t per_image = 2 * sizeof(float) *
        (size_t(s.channels) * s.height * s.width +
         size_t(s.num_output) * s.out_height * s.out_width);
    chunk_ = std::max(1, std::min(s.num,
        static_cast<int>(workspace_bytes / std::max<size_t>(per_image, 1))));
    threads_ = ThreadsFor(double(chunk_) * s.num_output * s.out_height *
        s.out_width * (s.channels / s.group) * s.kernel_h * s.kernel_w);
    ScopedOmpThreads omp(threads_);
    full_.reset(MakePlan(chunk_));
    if (s.num % chunk_ != 0) {
      rest_.reset(MakePlan(s.num % chunk_));
    }
    const memory::desc& w_user = WeightsDesc(s.group > 1 ? tag::goihw : tag::oihw);
    w_user_ = w_user;
  }

  int chunk() const { return chunk_; }
  int threads() const { return threads_; }
  std::string implementation() const {
    return std::string("forward ") + full_->fwd_pd.impl_info_str() +
        ", backward data " + full_->bwd_data_pd.impl_info_str() +
        ", backward weights " + full_->bwd_weights_pd.impl_info_str();
  }

  void Forward(const float* bottom, const float* weights, const float* bias,
      float* top) {
    ScopedOmpThreads omp(threads_);
    memory w = Stage(w_user_, weights, full_->fwd_pd.weights_desc(), &Staging().w);
    memory::desc bias_md({shape_.num_output}, dt::f32, tag::x);
    for (int n0 = 0; n0 < shape_.num; n0 += chunk_) {
      DnnlPlan& p = PlanFor(n0);
      memory src = Stage(p.user_src, bottom + n0 * BottomDim(),
                         p.fwd_pd.src_desc(), &Staging().a);
      memory dst = Buffer(p.fwd_pd.dst_desc(), p.user_dst,
                          top + n0 * TopDim(), &Staging().b);
      std::unordered_map<int, memory> args;
      args[DNNL_ARG_SRC] = src;
      args[DNNL_ARG_WEIGHTS] = w;
      args[DNNL_ARG_DST] = dst;
      if (shape_.bias) {
        args[DNNL_ARG_BIAS] = memory(bias_md, engine_, const_cast<float*>(bias));
      }
      args[DNNL_ARG_SCRATCHPAD] = Scratchpad(p.fwd_pd);
      p.fwd.execute(stream_, args);
      Unstage(dst, p.user_dst, top + n0 * TopDim());
    }
    stream_.wait();
  }

  void Backward(const float* bottom, const float* top_diff,
      const float* weights, float* bottom_diff, float* weights_diff) {
    ScopedOmpThreads omp(threads_);
    memory w;
    if (bottom_diff) {
      w = Stage(w_user_, weights, full_->bwd_data_pd.weights_desc(), &Staging().w);
    }
    for (int n0 = 0; n0 < shape_.num; n0 += chunk_) {
      DnnlPlan& p = PlanFor(n0);
      float* tdiff = const_cast<float*>(top_diff) + n0 * TopDim();
      memory diff_dst = Stage(p.user_dst, tdiff, p.bwd_data_pd.diff_dst_desc(), &Staging().b);
      if (weights_diff) {
        memory src = Stage(p.user_src, bottom + n0 * BottomDim(),
                           p.bwd_weights_pd.src_desc(), &Staging().a);
        memory wdst = diff_dst;
        if (p.bwd_weights_pd.diff_dst_desc() != diff_dst.get_desc()) {
          wdst = Stage(p.user_dst, tdiff, p.bwd_weights_pd.diff_dst_desc(), &Staging().b2);
        }
        memory dw = Buffer(p.bwd_weights_pd.diff_weights_desc(), memory::desc(),
                           NULL, &Staging().dw);
        p.bwd_weights.execute(stream_, {{DNNL_ARG_SRC, src},
            {DNNL_ARG_SCRATCHPAD, Scratchpad(p.bwd_weights_pd)},
            {DNNL_ARG_DIFF_DST, wdst}, {DNNL_ARG_DIFF_WEIGHTS, dw}});
        memory user = Buffer(w_user_, memory::desc(), NULL, &Staging().dw_user);
        Reorder(dw, user);
        stream_.wait();
        caffe_axpy<float>(w_user_.get_size() / sizeof(float), 1.f,
            static_cast<const float*>(user.get_data_handle()), weights_diff);
      }
      if (bottom_diff) {
        float* bdiff = bottom_diff + n0 * BottomDim();
        memory diff_src = Buffer(p.bwd_data_pd.diff_src_desc(), p.user_src,
                                 bdiff, &Staging().a);
        p.bwd_data.execute(stream_, {{DNNL_ARG_DIFF_DST, diff_dst},
            {DNNL_ARG_SCRATCHPAD, Scratchpad(p.bwd_data_pd)},
            {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, diff_src}});
        Unstage(diff_src, p.user_src, bdiff);
      }
    }
    stream_.wait();
  }

 private:
  size_t BottomDim() const {
    return size_t(shape_.channels) * shape_.height * shape_.width;
  }
  size_t TopDim() const {
    return size_t(shape_.num_output) * shape_.out_height * shape_.out_width;
  }
  DnnlPlan& PlanFor(int n0) {
    return (rest_ && n0 + chunk_ > shape_.num) ? *rest_ : *full_;
  }

  memory::desc WeightsDesc(tag t) const {
    const DnnlConvShape& s = shape_;
    if (s.group > 1) {
      return memory::desc({s.group, s.num_output / s.group, s.channels / s.group,
                           s.kernel_h, s.kernel_w}, dt::f32, t);
    }
    return memory::desc({s.num_output, s.channels, s.kernel_h, s.kernel_w},
                        dt::f32, t);
  }

  DnnlPlan* MakePlan(int num) {
    const DnnlConvShape& s = shape_;
    memory::dims src_dims = {num, s.channels, s.height, s.width};
    memory::dims dst_dims = {num, s.num_output, s.out_height, s.out_width};
    memory::desc src_any(src_dims, dt::f32, tag::any);
    memory::desc dst_any(dst_dims, dt::f32, tag::any);
    memory::desc w_any = WeightsDesc(tag::any);
    memory::desc bias_md({s.num_output}, dt::f32, tag::x);
    memory::dims strides = {s.stride_h, s.stride_w};
    memory::dims dilates = {s.dilation_h - 1, s.dilation_w - 1};
    memory::dims pad_l = {s.pad_h, s.pad_w};
    const int ext_h = s.dilation_h * (s.kernel_h - 1) + 1;
    const int ext_w = s.dilation_w * (s.kernel_w - 1) + 1;
    memory::dims pad_r = {(s.out_height - 1) * s.stride_h + ext_h - s.height - s.pad_h,
                          (s.out_width - 1) * s.stride_w + ext_w - s.width - s.pad_w};
    DnnlPlan* p = new DnnlPlan();
    p->num = num;
    dnnl::convolution_forward::desc fd = s.bias ?
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
            dnnl::algorithm::convolution_direct, src_any, w_any, bias_md, dst_any,
            strides, dilates, pad_l, pad_r) :
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
            dnnl::algorithm::convolution_direct, src_any, w_any, dst_any,
            strides, dilates, pad_l, pad_r);
    // Scratchpads in user mode: one shared buffer (Staging) instead of one
    // held by every primitive.
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    p->fwd_pd = dnnl::convolution_forward::primitive_desc(fd, attr, engine_);
    dnnl::convolution_backward_data::desc bd(dnnl::algorithm::convolution_direct,
        src_any, w_any, dst_any, strides, dilates, pad_l, pad_r);
    p->bwd_data_pd = dnnl::convolution_backward_data::primitive_desc(
        bd, attr, engine_, p->fwd_pd);
    dnnl::convolution_backward_weights::desc bw(dnnl::algorithm::convolution_direct,
        src_any, w_any, dst_any, strides, dilates, pad_l, pad_r);
    p->bwd_weights_pd = dnnl::convolution_backward_weights::primitive_desc(
        bw, attr, engine_, p->fwd_pd);
    p->fwd = dnnl::convolution_forward(p->fwd_pd);
    p->bwd_data = dnnl::convolution_backward_data(p->bwd_data_pd);
    p->bwd_weights = dnnl::convolution_backward_weights(p->bwd_weights_pd);
    p->user_src = memory::desc(src_dims, dt::f32, tag::nchw);
    p->user_dst = memory::desc(dst_dims, dt::f32, tag::nchw);
    return p;
  }

  // The shared scratchpad, large enough for `pd`.
  memory Scratchpad(const dnnl::primitive_desc_base& pd) {
    const memory::desc md = pd.scratchpad_desc();
    vector<char>& buf = Staging().scratch;
    if (buf.size() < md.get_size()) { buf.resize(md.get_size()); }
    return memory(md, engine_, buf.data());
  }
  void Reorder(const memory& from, const memory& to) {
    dnnl::reorder(from, to).execute(stream_, const_cast<memory&>(from),
                                    const_cast<memory&>(to));
  }
  // A memory in oneDNN's layout `want`, in `buf`, for writing.
  memory Buffer(const memory::desc& want, const memory::desc& user, float* data,
      vector<char>* buf) {
    if (want == user) {
      return memory(user, engine_, data);
    }
    if (buf->size() < want.get_size()) { buf->resize(want.get_size()); }
    return memory(want, engine_, buf->data());
  }
  // The user's NCHW data in oneDNN's layout `want` (a copy in `buf` if needed).
  memory Stage(const memory::desc& user, const float* data,
      const memory::desc& want, vector<char>* buf) {
    memory from(user, engine_, const_cast<float*>(data));
    if (want == user) { return from; }
    memory to = Buffer(want, user, NULL, buf);
    Reorder(from, to);
    return to;
  }
  void Unstage(const memory& m, const memory::desc& user, float* data) {
    if (m.get_desc() == user) { return; }
    memory to(user, engine_, data);
    Reorder(m, to);
  }

  DnnlConvShape shape_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  int chunk_;
  int threads_;  // OpenMP threads of every call (see ThreadsFor)
  shared_ptr<DnnlPlan> full_, rest_;
  memory::desc w_user_;
};

bool DnnlConvolution::Available() { return true; }

DnnlConvolution::DnnlConvolution(const DnnlConvShape& shape,
    size_t workspace_bytes) : impl_(new Impl(shape, workspace_bytes)) {}
DnnlConvolution::~DnnlConvolution() { delete impl_; }

void DnnlConvolution::Forward(const float* bottom, const float* weights,
    const float* bias, float* top) {
  impl_->Forward(bottom, weights, bias, top);
}
void DnnlConvolution::Backward(const float* bottom, const float* top_diff,
    const float* weights, float* bottom_diff, float* weights_diff) {
  impl_->Backward(bottom, top_diff, weights, bottom_diff, weights_diff);
}
int DnnlConvolution::chunk() const { return impl_->chunk(); }
int DnnlConvolution::threads() const { return impl_->threads(); }
int DnnlConvolution::MaxThreads() { return omp_get_max_threads(); }
std::string DnnlConvolution::implementation() const {
  return impl_->implementation();
}

#else  // !SEPNETS_USE_DNNL

class DnnlConvolution::Impl {};

bool DnnlConvolution::Available() { return false; }
DnnlConvolution::DnnlConvolution(const DnnlConvShape& shape,
    size_t workspace_bytes) : impl_(NULL) {
  LOG(FATAL) << "Caffe was built without oneDNN (SEPNETS_USE_DNNL)";
}
DnnlConvolution::~DnnlConvolution() {}
void DnnlConvolution::Forward(const float*, const float*, const float*,
    float*) {}
void DnnlConvolution::Backward(const float*, const float*, const float*,
    float*, float*) {}
int DnnlConvolution::chunk() const { return 0; }
int DnnlConvolution::threads() const { return 0; }
int DnnlConvolution::MaxThreads() { return 1; }
std::string DnnlConvolution::implementation() const { return "none"; }

#endif  // SEPNETS_USE_DNNL

}  // namespace caffe
