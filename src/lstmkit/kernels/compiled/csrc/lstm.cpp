// lstmkit's compiled LSTM recurrence: forward and backward (BPTT) of one layer-direction.
//
// The Python side (lstmkit/kernels/compiled/__init__.py) computes the input projection of all
// steps in one GEMM, zx = W_ih x + b_ih + b_hh (layer-normed first under the layer_norm spec),
// and calls lstm_forward / lstm_backward here. Per step t:
//
//   rec   = (h_{t-1} * recurrent_mask) W_hh^T          one GEMM, (B, G*H)
//   z     = zx_t + rec  (LN(rec) * g_hh under layer_norm) (+ W_gg gates_{t-1} for FGR)
//   i, f, g, o and c_t, h_t as in lstmkit.functional.lstm_step (peepholes, CIFG, NIG/NFG/NOG,
//   activations, clip, cell layer norm), then zoneout and padding masks as lstm_layer;
//   the gate and state maths is one pass per batch row (at::parallel_for over the batch).
//
// Backward walks t = T-1 .. 0 with one GEMM per step for dh_{t-1}, stores dZ for every step and
// gets the weight gradients with one GEMM over all steps (dW_hh = dRec^T [h_0 .. h_{T-1}]).
//
// Shapes: T time, B batch, H hidden, R size of h (P with projection), G gate blocks,
// n gates among i, f, o (the ones peepholes and full gate recurrence connect).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace lstmkit {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

constexpr double LN_EPS = 1e-5;  // lstmkit.functional.LN_EPS

// What the spec asks for, decoded from the integer list built in Python.
struct Config {
  int64_t off_i, off_f, off_g, off_o;  // column offset of each gate block in z, -1 when absent
  int64_t sig_i = -1, sig_f = -1, sig_o = -1;  // block index among the n gates i, f, o
  int64_t n = 0;                               // number of gates among i, f, o
  std::vector<int64_t> sig_off;                // offsets in z of those n gates, in order
  bool coupled, peephole, fgr, ln;
  int gact, cact, oact;
  bool clip_on;
  double clip;
  double zc_p, zh_p;  // zoneout keep probability used as an expectation; < 0: none

  Config(const std::vector<int64_t>& cfg, double clip_, double zc, double zh) {
    TORCH_CHECK(cfg.size() == 11, "lstmkit kernel: config must have 11 entries");
    off_i = cfg[0], off_f = cfg[1], off_g = cfg[2], off_o = cfg[3];
    coupled = cfg[4] != 0, gact = int(cfg[5]), cact = int(cfg[6]), oact = int(cfg[7]);
    peephole = cfg[8] != 0, fgr = cfg[9] != 0, ln = cfg[10] != 0;
    if (off_i >= 0) sig_i = n++, sig_off.push_back(off_i);
    if (off_f >= 0) sig_f = n++, sig_off.push_back(off_f);
    if (off_o >= 0) sig_o = n++, sig_off.push_back(off_o);
    clip_on = clip_ > 0, clip = clip_, zc_p = zc, zh_p = zh;
  }
};

template <typename T>
inline const T* ptr_or_null(const OptTensor& t) {
  return (t.has_value() && t->defined()) ? t->data_ptr<T>() : nullptr;
}

inline bool has(const OptTensor& t) { return t.has_value() && t->defined(); }

inline Tensor contig(const OptTensor& t) { return has(t) ? t->contiguous() : Tensor(); }

inline std::vector<int64_t> step_counts(const OptTensor& lengths, int64_t B, int64_t T) {
  std::vector<int64_t> len(B, T);
  if (has(lengths)) {
    Tensor l = lengths->to(at::kLong).contiguous();
    const int64_t* p = l.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) len[b] = p[b];
  }
  return len;
}


// ---------------------------------------------------------------------- packed weights (float)
// MKL's packed GEMM, when the torch build exports it (x86 builds link MKL into libtorch_cpu): the
// recurrent weight is packed once per call instead of at every one of the T per-step GEMMs.
// Weak declarations: on builds without these symbols the pointers are null and at::mm_out is used.
extern "C" {
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src,
                      int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
}

static bool packed_gemm_enabled = true;

bool packed_gemm_available() {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr && cblas_sgemm_compute != nullptr;
}

// C (m, n) = A (m, k) @ op(W), W row-major; op(W) = W^T when trans. Packs W on construction.
struct PackedRight {
  enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112, B_MATRIX = 162, PACKED = 151 };
  Tensor buf;  // packed copy of W (bytes)
  Tensor w;    // fallback operand for at::mm_out: op(W) as a (k, n) view
  int m, n, k;
  bool packed = false;

  PackedRight(const Tensor& weight, bool trans, int64_t m_, int64_t n_, int64_t k_)
      : w(trans ? weight.t() : weight), m(int(m_)), n(int(n_)), k(int(k_)) {
    if (weight.scalar_type() == at::kFloat && packed_gemm_enabled && packed_gemm_available() && m > 0) {
      size_t bytes = cblas_sgemm_pack_get_size(B_MATRIX, m, n, k);
      buf = at::empty({int64_t(bytes)}, weight.options().dtype(at::kByte));
      Tensor src = weight.contiguous();
      cblas_sgemm_pack(ROW_MAJOR, B_MATRIX, trans ? TRANS : NO_TRANS, m, n, k, 1.0f, src.data_ptr<float>(),
                       int(src.size(1)), reinterpret_cast<float*>(buf.data_ptr()));
      packed = true;
    }
  }

  // out = a @ op(W); a (m, k) and out (m, n) contiguous
  void mm(Tensor& out, const Tensor& a) const {
    if (packed) {
      cblas_sgemm_compute(ROW_MAJOR, NO_TRANS, PACKED, m, n, k, a.data_ptr<float>(), k,
                          reinterpret_cast<const float*>(buf.data_ptr()), n, 0.0f, out.data_ptr<float>(), n);
    } else {
      at::mm_out(out, a, w);
    }
  }
};

namespace generic {
#include "kernel_impl.h"
}  // namespace generic

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LSTMKIT_HAVE_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "kernel_impl.h"
}  // namespace avx2
#pragma GCC pop_options
#else
#define LSTMKIT_HAVE_AVX2 0
#endif

// The instruction set the loops run with: "avx2" when the CPU has AVX2 and FMA (checked at run
// time), else "generic"; set_isa("generic") forces the baseline code (tests run both).
#if LSTMKIT_HAVE_AVX2
#define LSTMKIT_ISA_CALL(fn) (use_avx2 ? avx2::fn : generic::fn)
#else
#define LSTMKIT_ISA_CALL(fn) (generic::fn)
#endif

static bool use_avx2 = [] {
#if LSTMKIT_HAVE_AVX2
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}();

std::string isa() { return use_avx2 ? "avx2" : "generic"; }

bool set_packed_gemm(bool on) {
  packed_gemm_enabled = on;
  return on && packed_gemm_available();
}

void set_isa(const std::string& name) {
  TORCH_CHECK(name == "generic" || name == "avx2", "isa must be 'generic' or 'avx2'; got '", name, "'");
  bool want = name == "avx2";
#if LSTMKIT_HAVE_AVX2
  TORCH_CHECK(!want || (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")),
              "this CPU lacks AVX2/FMA");
#else
  TORCH_CHECK(!want, "this build has no AVX2 code");
#endif
  use_avx2 = want;
}

std::vector<Tensor> lstm_forward(const Tensor& zx_in, const Tensor& h0_in, const Tensor& c0_in,
                                 const Tensor& w_hh_in, const OptTensor& w_hr, const OptTensor& w_ch,
                                 const OptTensor& w_gg, const OptTensor& ln_hh, const OptTensor& ln_cw,
                                 const OptTensor& ln_cb, const OptTensor& rec_mask, const OptTensor& zc_mask,
                                 const OptTensor& zh_mask, const OptTensor& lengths, std::vector<int64_t> cfg,
                                 double clip, double zc_p, double zh_p) {
  Config cf(cfg, clip, zc_p, zh_p);
  TORCH_CHECK(zx_in.dim() == 3 && h0_in.dim() == 2 && c0_in.dim() == 2, "lstmkit kernel: bad ranks");
  Tensor zx = zx_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous(), w_hh = w_hh_in.contiguous();
  auto len = step_counts(lengths, zx.size(1), zx.size(0));
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(zx.scalar_type(), "lstmkit_forward", [&] {
    out = LSTMKIT_ISA_CALL(forward_impl<scalar_t>)(cf, zx, h0, c0, w_hh, contig(w_hr), contig(w_ch), contig(w_gg), contig(ln_hh),
                                 contig(ln_cw), contig(ln_cb), contig(rec_mask), contig(zc_mask), contig(zh_mask),
                                 len);
  });
  return out;
}

std::vector<Tensor> lstm_backward(const OptTensor& d_hs, const OptTensor& d_cs, const OptTensor& d_acts,
                                  const std::vector<OptTensor>& saved, const Tensor& w_hh, const OptTensor& w_hr,
                                  const OptTensor& w_ch, const OptTensor& w_gg, const OptTensor& ln_hh,
                                  const OptTensor& ln_cw, const OptTensor& rec_mask, const OptTensor& zc_mask,
                                  const OptTensor& zh_mask, const OptTensor& lengths, std::vector<int64_t> cfg,
                                  double clip, double zc_p, double zh_p) {
  Config cf(cfg, clip, zc_p, zh_p);
  TORCH_CHECK(saved.size() == 11, "lstmkit kernel: backward needs the 11 tensors of forward");
  std::vector<Tensor> s;
  for (const auto& t : saved) s.push_back(contig(t));
  auto len = step_counts(lengths, s[2].size(1), s[2].size(0));
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(s[2].scalar_type(), "lstmkit_backward", [&] {
    out = LSTMKIT_ISA_CALL(backward_impl<scalar_t>)(cf, contig(d_hs), contig(d_cs), contig(d_acts), s[0], s[1], s[2], s[3], s[4], s[5],
                                  s[6], s[7], s[8], s[9], s[10], w_hh.contiguous(), contig(w_hr), contig(w_ch),
                                  contig(w_gg), contig(ln_hh), contig(ln_cw), contig(rec_mask), contig(zc_mask),
                                  contig(zh_mask), len);
  });
  return out;
}

}  // namespace lstmkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lstmkit compiled LSTM recurrence (forward and BPTT) for every CellSpec";
  m.def("forward", &lstmkit::lstm_forward, "one layer-direction forward; returns states, gates and saved tensors");
  m.def("isa", &lstmkit::isa, "instruction set of the loops: 'avx2' or 'generic'");
  m.def("set_isa", &lstmkit::set_isa, "force 'generic' (or back to 'avx2' when the CPU has it)");
  m.def("set_packed_gemm", &lstmkit::set_packed_gemm,
        "use MKL's packed GEMM for float32 when available (default); returns whether it is now used");
  m.def("backward", &lstmkit::lstm_backward, "BPTT of forward; returns the gradients of its inputs");
}
