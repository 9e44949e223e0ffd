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
// Reading order: CellConfig (the spec, named), Params / Masks / Saved (the tensors, named), the packed
// GEMM, then kernel_impl.h (forward: preactivation, gates, cell_update, output, carry, as in
// lstmkit.functional.lstm_step) and backward_impl.h (their adjoints in reverse order), then the boundary.
//
// Shapes: T time, B batch, H hidden, R size of h (P with projection), G gate blocks,
// n gates among i, f, o (the ones peepholes and full gate recurrence connect).
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "int8.h"

// oneDNN's matmul as libtorch_cpu exports it, declared here as its header is not installed (result = beta * result + alpha * mat1 @ mat2, any strides).
namespace at::native {
TORCH_API void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result, float beta, float alpha)
    __attribute__((weak));
}  // namespace at::native

namespace lstmkit {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

constexpr double LN_EPS = 1e-5;  // lstmkit.functional.LN_EPS

// Activation codes: lstmkit.kernels.compiled.ACTIVATION_CODES; every code is checked at the boundary.
enum Activation : int { SIGMOID = 0, HARD_SIGMOID = 1, TANH = 2, IDENTITY = 3, RELU = 4, SOFTSIGN = 5 };

inline Activation activation_from_code(int64_t code, const char* which) {
  TORCH_CHECK(code >= SIGMOID && code <= SOFTSIGN, "lstmkit kernel: ", which,
              " activation code must be 0..5 (sigmoid, hard_sigmoid, tanh, identity, relu, softsign); got ", code);
  return Activation(code);
}

inline bool flag_from_code(int64_t code, const char* which) {
  TORCH_CHECK(code == 0 || code == 1, "lstmkit kernel: ", which, " must be 0 or 1; got ", code);
  return code == 1;
}

// Slots of the positional config built by lstmkit/kernels/compiled/__init__.py (_config).
enum ConfigSlot {
  INPUT_OFFSET, FORGET_OFFSET, CANDIDATE_OFFSET, OUTPUT_OFFSET,  // column of each gate block in z; -1: absent
  COUPLED, GATE_ACTIVATION, CANDIDATE_ACTIVATION, CELL_ACTIVATION, PEEPHOLE, FULL_GATE_RECURRENCE, LAYER_NORM,
  NUM_CONFIG_SLOTS
};

// What the spec asks for, with named fields: unpacked once from the positional config and checked,
// so nothing below reads a slot number or trusts a code.
struct CellConfig {
  int64_t input_off, forget_off, candidate_off, output_off;  // column of each gate block in z, -1 when absent
  int64_t n = 0;                                             // gates among input, forget, output
  int64_t input_k = -1, forget_k = -1, output_k = -1;        // index of each among those n, -1 when absent
  std::vector<int64_t> sigmoid_off;                          // offsets of those n gates, in that order
  std::vector<int64_t> block_off;                            // offsets of every present block
  bool coupled;                                              // CIFG: forget = 1 - input
  Activation gate_activation, candidate_activation, cell_activation;
  bool peephole, full_gate_recurrence, layer_norm;
  bool clip_on;         // clamp c_t to [-cell_clip, cell_clip]
  double cell_clip;
  double zoneout_cell;    // constant keep probability of c (an expectation, at evaluation); < 0: none or a mask
  double zoneout_hidden;  // the same for h

  CellConfig(const std::vector<int64_t>& cfg, double clip, double zc, double zh) {
    TORCH_CHECK(cfg.size() == NUM_CONFIG_SLOTS, "lstmkit kernel: config must have ", int(NUM_CONFIG_SLOTS),
                " entries; got ", cfg.size());
    input_off = cfg[INPUT_OFFSET], forget_off = cfg[FORGET_OFFSET];
    candidate_off = cfg[CANDIDATE_OFFSET], output_off = cfg[OUTPUT_OFFSET];
    coupled = flag_from_code(cfg[COUPLED], "coupled");
    gate_activation = activation_from_code(cfg[GATE_ACTIVATION], "gate");
    candidate_activation = activation_from_code(cfg[CANDIDATE_ACTIVATION], "candidate");
    cell_activation = activation_from_code(cfg[CELL_ACTIVATION], "cell");
    peephole = flag_from_code(cfg[PEEPHOLE], "peephole");
    full_gate_recurrence = flag_from_code(cfg[FULL_GATE_RECURRENCE], "full_gate_recurrence");
    layer_norm = flag_from_code(cfg[LAYER_NORM], "layer_norm");
    if (input_off >= 0) input_k = n++, sigmoid_off.push_back(input_off);
    if (forget_off >= 0) forget_k = n++, sigmoid_off.push_back(forget_off);
    if (output_off >= 0) output_k = n++, sigmoid_off.push_back(output_off);
    for (int64_t off : {input_off, forget_off, candidate_off, output_off}) {
      if (off >= 0) block_off.push_back(off);
    }
    TORCH_CHECK(!coupled || (input_off >= 0 && forget_off < 0),
                "lstmkit kernel: coupled (CIFG) needs an input gate and no forget block");
    clip_on = clip > 0, cell_clip = clip, zoneout_cell = zc, zoneout_hidden = zh;
  }

  // The gate blocks tile z (B, G*H) exactly: each present offset a distinct multiple of H below G*H.
  void check_layout(int64_t H, int64_t GH) const {
    int64_t offs[4] = {input_off, forget_off, candidate_off, output_off};
    TORCH_CHECK(candidate_off >= 0, "lstmkit kernel: the candidate block is required; got offset ", candidate_off);
    int64_t blocks = 0;
    std::vector<bool> seen(size_t(std::max<int64_t>(1, GH / std::max<int64_t>(1, H))), false);
    for (int64_t off : offs) {
      if (off < 0) continue;
      TORCH_CHECK(H > 0 && off % H == 0 && off + H <= GH && !seen[size_t(off / H)],
                  "lstmkit kernel: gate offsets must be distinct multiples of H = ", H, " below G*H = ", GH,
                  "; got ", off);
      seen[size_t(off / H)] = true;
      ++blocks;
    }
    TORCH_CHECK(blocks * H == GH, "lstmkit kernel: z has ", GH, " columns but the spec has ", blocks,
                " gate blocks of H = ", H);
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


// The recurrent parameters of one call (undefined: absent from the spec), in the compute dtype
// (float32 for bfloat16 / float16 calls, see compute()); low_*: the GEMM weights as given, for a
// bfloat16 / float16 call only (undefined otherwise).
struct Params {
  Tensor w_hh;   // (G*H, R)
  Tensor w_hr;   // (R, H) projection
  Tensor w_ch;   // (n*H,) peepholes i, f, o
  Tensor w_gg;   // (n*H, n*H) full gate recurrence
  Tensor ln_hh;  // (G*H,) layer norm gain of rec
  Tensor ln_cw;  // (H,) layer norm gain of c_t
  Tensor ln_cb;  // (H,) layer norm bias of c_t
  Tensor low_hh, low_hr, low_gg;  // w_hh, w_hr, w_gg in bfloat16 / float16
};

inline Tensor transposed(const Tensor& t) { return t.defined() ? t.t() : t; }

// bfloat16 and float16 calls compute in float32: cell state, gates, every sum; only the per-step
// GEMMs read the low-precision weights (Params::low_*).
inline bool low_precision(at::ScalarType dtype) { return dtype == at::kBFloat16 || dtype == at::kHalf; }

// t contiguous, as float32 for a low-precision call (undefined stays undefined).
inline Tensor compute(const OptTensor& t, bool low) {
  if (!has(t)) return Tensor();
  return low && t->is_floating_point() ? t->to(at::kFloat).contiguous() : t->contiguous();
}

// Per-step masks and sequence lengths of one call.
struct Masks {
  Tensor rec_mask;           // (B, R) recurrent dropout on h_{t-1}
  Tensor zc_mask;            // (T, B, H) zoneout keep mask of c
  Tensor zh_mask;            // (T, B, R) zoneout keep mask of h
  std::vector<int64_t> len;  // (B) steps of each row; T without lengths
};

// What forward saves for backward, in the order forward returns the tensors (SavedSlot).
enum SavedSlot {
  HS, CS, ACTS, CELL_OUT, C_STEP, H_CELL, REC_HAT, RSTD_REC, C_HAT, RSTD_CELL, PREV_GATES, NUM_SAVED
};
struct Saved {
  Tensor hs;          // (T+1, B, R) h_0 .. h_T as carried (after zoneout and padding)
  Tensor cs;          // (T+1, B, H) c_0 .. c_T as carried
  Tensor acts;        // (T, B, G*H) gate activations, storage order
  Tensor cell_out;    // (T, B, H) act(c_t), or act(LN(c_t) g_c + b_c)
  Tensor c_step;      // (T, B, H) c_t before zoneout (zoneout of c only)
  Tensor h_cell;      // (T, B, H) o * act(c_t) before the projection (projection only)
  Tensor rec_hat;     // (T, B, G*H) normalised rec (layer_norm only)
  Tensor rstd_rec;    // (T, B) its 1/std
  Tensor c_hat;       // (T, B, H) normalised c_t (layer_norm only)
  Tensor rstd_cell;   // (T, B) its 1/std
  Tensor prev_gates;  // (T, B, n*H) i, f, o of step t-1 (full gate recurrence only)

  std::vector<Tensor> list() const {
    return {hs, cs, acts, cell_out, c_step, h_cell, rec_hat, rstd_rec, c_hat, rstd_cell, prev_gates};
  }
  static Saved from_list(const std::vector<OptTensor>& s) {
    TORCH_CHECK(s.size() == NUM_SAVED, "lstmkit kernel: backward needs the ", int(NUM_SAVED),
                " tensors forward returns; got ", s.size());
    auto c = [&](SavedSlot k) { return contig(s[k]); };
    return {c(HS), c(CS), c(ACTS), c(CELL_OUT), c(C_STEP), c(H_CELL), c(REC_HAT), c(RSTD_REC), c(C_HAT),
            c(RSTD_CELL), c(PREV_GATES)};
  }
};

// What a forward call keeps. For backward everything of every step (Saved); without a backward to
// come (inference) only hs, plus acts and cs for every step when the gates are recorded: the other
// per-step tensors then hold one step (cs and FGR's prev_gates two, used in turn), so memory does
// not grow with T beyond the output.
struct Keep {
  bool save;    // every tensor of every step, for backward
  bool record;  // acts and cs of every step, for the recorded gates
};

// The gradients backward returns, in this order.
enum BackwardSlot { D_ZX, D_H0, D_C0, D_W_HH, D_W_HR, D_W_CH, D_W_GG, D_LN_HH, D_LN_CW, D_LN_CB, NUM_GRADS };

// ---------------------------------------------------------------------- GEMMs
// Which library runs the kernel's float32 GEMMs (float64 always runs at::mm):
//   oneDNN  through the operators torch registers for its own CPU linear layers:
//           mkldnn::_linear_pointwise with the weight reordered once per call into oneDNN's
//           blocked layout (mkldnn::_reorder_linear_weight), and at::native::mkldnn_matmul for the
//           one large weight-gradient GEMM per weight; on the AMD EPYC measured these run at about
//           twice the rate of MKL's sgemm (benchmarks/README.md);
//   MKL     MKL's packed sgemm (the weight packed once per call), when the torch build exports it;
//   ATen    at::mm.
//   AVX-512 panels: lstmkit's own small GEMM (panel_gemm.h) for the per-step products.
// "auto" takes, for a per-step product: the AVX-512 panels on one thread, and on several threads up
// to PANEL_MAX_WORK multiply-adds; else oneDNN from 2 rows, or for one row whose weight several
// threads can share (ONEDNN_ROW_WEIGHTS values and up); else MKL's packed sgemm (one thread, where
// oneDNN's per-call cost dominates a single row); else at::mm. The weight gradients (one large
// product per weight) take oneDNN. A library that is missing (no AVX-512 on this CPU, oneDNN
// switched off with torch.backends.mkldnn) falls back to the next.
//   AVX512-BF16 panels: the same for a bfloat16 weight (bfloat16 products, float32 sums), on CPUs that
//           have AVX512-BF16; a bfloat16 or float16 weight without them runs as float32 (see Params).
enum class GemmLib { AUTO, ONEDNN, MKL, ATEN, PANEL, PANEL_BF16 };
static GemmLib gemm_lib = GemmLib::AUTO;

#if defined(__GNUC__) && defined(__x86_64__)
#define LSTMKIT_HAVE_AVX512 1
#include "panel_gemm.h"
static const bool has_avx512 = panel::cpu_has_avx512();
static const bool has_avx512_bf16 = panel::cpu_has_avx512_bf16();
constexpr int64_t PANEL_WIDTH = panel::WIDTH;
#else
constexpr int64_t PANEL_WIDTH = 16;
#define LSTMKIT_HAVE_AVX512 0
static const bool has_avx512 = false;
static const bool has_avx512_bf16 = false;
#endif

// MKL's packed GEMM; weak declarations: on builds without these symbols the pointers are null.
extern "C" {
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src,
                      int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
}

bool mkl_packed_available() {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr && cblas_sgemm_compute != nullptr;
}

using LinearFn = Tensor(const Tensor&, const Tensor&, const OptTensor&, c10::string_view,
                        torch::List<std::optional<at::Scalar>>, std::optional<c10::string_view>);
using ReorderFn = Tensor(const Tensor&, std::optional<int64_t>);

// The two registered oneDNN operators, looked up once; absent from builds without oneDNN.
struct OneDnnOps {
  std::optional<c10::TypedOperatorHandle<LinearFn>> linear;
  std::optional<c10::TypedOperatorHandle<ReorderFn>> reorder;
  OneDnnOps() {
    auto& d = c10::Dispatcher::singleton();
    auto lin = d.findSchema({"mkldnn::_linear_pointwise", ""});
    auto reo = d.findSchema({"mkldnn::_reorder_linear_weight", ""});
    if (lin && reo && lin->hasKernelForDispatchKey(c10::DispatchKey::CPU)) {
      linear = lin->typed<LinearFn>();
      reorder = reo->typed<ReorderFn>();
    }
  }
};

const OneDnnOps& onednn_ops() {
  static const OneDnnOps ops;
  return ops;
}

bool onednn_available() {
  return at::hasMKLDNN() && at::globalContext().userEnabledMkldnn() && onednn_ops().linear.has_value() &&
         at::native::mkldnn_matmul != nullptr;
}

bool use_onednn(at::ScalarType dtype) {
  return dtype == at::kFloat && (gemm_lib == GemmLib::AUTO || gemm_lib == GemmLib::ONEDNN) && onednn_available();
}

// From this many weight values on, oneDNN on several threads beats MKL's one-thread packed GEMM
// for a single row (2 threads: H = 384 and up; benchmarks/README.md).
constexpr int64_t ONEDNN_ROW_WEIGHTS = int64_t(1) << 19;

// On several threads the AVX-512 panel GEMM beats a library call up to this many multiply-adds per
// step (on one thread at every size measured; benchmarks/README.md).
constexpr int64_t PANEL_MAX_WORK = int64_t(1) << 21;

// The library one per-step GEMM of m rows with a weight of `weights` values runs with.
GemmLib step_gemm_lib(at::ScalarType dtype, int64_t m, int64_t weights) {
  if (dtype != at::kFloat || m <= 0) return GemmLib::ATEN;
  const bool onednn = use_onednn(dtype), mkl = mkl_packed_available();
  switch (gemm_lib) {
    case GemmLib::PANEL: return has_avx512 ? GemmLib::PANEL : GemmLib::ATEN;
    case GemmLib::ONEDNN: return onednn ? GemmLib::ONEDNN : GemmLib::ATEN;
    case GemmLib::MKL: return mkl ? GemmLib::MKL : GemmLib::ATEN;
    case GemmLib::ATEN: return GemmLib::ATEN;
    case GemmLib::AUTO: break;
  }
  const bool threads = at::get_num_threads() > 1;
  const bool shared_row = threads && m == 1 && weights >= ONEDNN_ROW_WEIGHTS;  // oneDNN splits one row's weight
  if (has_avx512 && (!threads || (m * weights <= PANEL_MAX_WORK && !shared_row))) return GemmLib::PANEL;
  if (onednn && (m >= 2 || shared_row)) return GemmLib::ONEDNN;
  return mkl ? GemmLib::MKL : GemmLib::ATEN;
}

// Steps from which oneDNN gets the weight reordered into its blocked layout: the reorder costs
// about 0.3 ms and saves 5-20 us per step at B = 16-64, H = 128-256 (benchmarks/README.md).
constexpr int64_t REORDER_STEPS = 32;

// Whether a per-step GEMM with this low-precision weight (undefined: none) multiplies in bfloat16:
// a bfloat16 weight on a CPU with AVX512-BF16, unless another library is forced.
bool bf16_panels(const Tensor& low) {
  return low.defined() && low.scalar_type() == at::kBFloat16 && has_avx512_bf16 &&
         (gemm_lib == GemmLib::AUTO || gemm_lib == GemmLib::PANEL);
}

// out (m, n) = a (m, k) @ W^T for one weight W (n, k) used at every step of a call: the weight is
// reordered or packed once, on construction. Construct from W^T for a @ W. `low` is the same weight
// in bfloat16 or float16 when the call computes in a low precision (a is float32 either way): with
// AVX512-BF16 panels the products are then taken in bfloat16 (a rounded each step), else as float32.
struct StepGemm {
  enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112, B_MATRIX = 162, PACKED = 151 };
  GemmLib lib;
  Tensor w;       // W (n, k), contiguous
  Tensor packed;  // W in oneDNN's layout, or MKL's packed bytes
#if LSTMKIT_HAVE_AVX512
  panel::PackedWeight panels;          // W in 16-column panels (PANEL)
  panel::PackedWeightBf16 panels_bf16;  // W in 16-column panels of bfloat16 pairs (PANEL_BF16)
  mutable std::vector<uint32_t> a_bf16;  // a rounded to bfloat16 pairs, (m, ceil(k / 2)) (PANEL_BF16)
#endif
  int m, n, k;

  StepGemm(const Tensor& weight, int64_t rows, int64_t steps, const Tensor& low = Tensor())
      : lib(bf16_panels(low) ? GemmLib::PANEL_BF16 : step_gemm_lib(weight.scalar_type(), rows, weight.numel())),
        w(weight.contiguous()), m(int(rows)), n(int(weight.size(0))), k(int(weight.size(1))) {
#if LSTMKIT_HAVE_AVX512
    if (lib == GemmLib::PANEL) panels = panel::PackedWeight(w);
    if (lib == GemmLib::PANEL_BF16) {
      panels_bf16 = panel::PackedWeightBf16(low);
      a_bf16.resize(size_t(std::max<int64_t>(rows, 1) * ((k + 1) / 2)));
    }
#endif
    if (lib == GemmLib::ONEDNN) {
      packed = steps >= REORDER_STEPS ? onednn_ops().reorder->call(w, rows) : w;
    } else if (lib == GemmLib::MKL) {
      packed = at::empty({int64_t(cblas_sgemm_pack_get_size(B_MATRIX, m, n, k))}, w.options().dtype(at::kByte));
      cblas_sgemm_pack(ROW_MAJOR, B_MATRIX, TRANS, m, n, k, 1.0f, w.data_ptr<float>(), k,
                       reinterpret_cast<float*>(packed.data_ptr()));
    }
  }

  bool panel_lib() const { return lib == GemmLib::PANEL || lib == GemmLib::PANEL_BF16; }

  // Round a (m, k) to bfloat16 for the following columns() calls (PANEL_BF16; a no-op elsewhere).
  void stage(const Tensor& a) const {
#if LSTMKIT_HAVE_AVX512
    if (lib == GemmLib::PANEL_BF16) panel::round_rows(m, k, a.data_ptr<float>(), k, a_bf16.data());
#endif
  }

  // Columns [c0, c1) of a @ W^T into out (m, n): the unit split of the AVX-512 panels, c0 and c1
  // multiples of PANEL_WIDTH (a no-op elsewhere, where the split never calls it); PANEL_BF16 reads
  // the a of the last stage().
  void columns(const Tensor& a, Tensor& out, int64_t c0, int64_t c1) const {
#if LSTMKIT_HAVE_AVX512
    if (lib == GemmLib::PANEL) {
      panel::gemm_panels(m, a.data_ptr<float>(), k, panels, out.data_ptr<float>(), n, c0 / panel::WIDTH,
                         c1 / panel::WIDTH);
    } else if (lib == GemmLib::PANEL_BF16) {
      panel::gemm_panels_bf16(m, a_bf16.data(), panels_bf16, out.data_ptr<float>(), n, c0 / panel::WIDTH,
                              c1 / panel::WIDTH);
    }
#endif
  }

  // a @ W^T for a (m, k) contiguous; written into `out` (m, n), or (oneDNN) a new tensor: use the result.
  Tensor operator()(const Tensor& a, Tensor& out) const {
    switch (lib) {
#if LSTMKIT_HAVE_AVX512
      case GemmLib::PANEL:
        panel::gemm(m, a.data_ptr<float>(), panels, out.data_ptr<float>());
        return out;
      case GemmLib::PANEL_BF16:
        stage(a);
        panel::gemm_bf16(m, a_bf16.data(), panels_bf16, out.data_ptr<float>());
        return out;
#endif
      case GemmLib::ONEDNN:
        return onednn_ops().linear->call(a, packed, std::nullopt, "none", torch::List<std::optional<at::Scalar>>(),
                                        std::nullopt);
      case GemmLib::MKL:
        cblas_sgemm_compute(ROW_MAJOR, NO_TRANS, PACKED, m, n, k, a.data_ptr<float>(), k,
                            reinterpret_cast<const float*>(packed.data_ptr()), n, 0.0f, out.data_ptr<float>(), n);
        return out;
      default:
        at::mm_out(out, a, w.t());
        return out;
    }
  }
};

// a @ b for one large product (the weight gradients over all steps); a and b may be transposed views.
inline Tensor weight_matmul(const Tensor& a, const Tensor& b) {
  if (!use_onednn(a.scalar_type()) || a.numel() == 0 || b.numel() == 0) return a.mm(b);
  Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  at::native::mkldnn_matmul(a, b, out, 0.0f, 1.0f);
  return out;
}

// Single-threaded row-major GEMM for the unit split: C (m, n; leading dim ldc) = A (m, k) B^T with
// B (n, k) row-major, through the Fortran BLAS that torch's CPU build exports (MKL); inside an
// OpenMP region MKL runs it on the calling thread. Weak symbols: without them the split is off.
extern "C" {
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) __attribute__((weak));
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc) __attribute__((weak));
}

template <typename T>
inline bool rows_gemm_available() {
  return std::is_same<T, float>::value ? sgemm_ != nullptr : dgemm_ != nullptr;
}

// Column-major view: C^T (n, m; ld ldc) = B (n, k) A^T, i.e. gemm('T', 'N', n, m, k, B ld k, A ld k).
template <typename T>
inline void rows_gemm(int64_t m, int64_t n, int64_t k, const T* a, const T* b, T* c, int64_t ldc) {
  const int mi = int(m), ni = int(n), ki = int(k), ld = int(ldc);
  const T one = 1, zero = 0;
  if constexpr (std::is_same<T, float>::value) {
    sgemm_("T", "N", &ni, &mi, &ki, &one, b, &ki, a, &ki, &zero, c, &ld);
  } else {
    dgemm_("T", "N", &ni, &mi, &ki, &one, b, &ki, a, &ki, &zero, c, &ld);
  }
}

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
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")
namespace avx512 {
#include "kernel_impl.h"
}  // namespace avx512
#pragma GCC pop_options
#else
#define LSTMKIT_HAVE_AVX2 0
#endif

// The instruction set the loops run with: "avx512" (AVX-512 F/VL/BW/DQ, 512-bit vectors) or
// "avx2" (AVX2 and FMA) when the CPU has it (checked at run time), else "generic"; set_isa forces
// a lower one (the tests run each the CPU has).
enum class Isa { GENERIC, AVX2, AVX512 };

bool cpu_has(Isa isa) {
#if LSTMKIT_HAVE_AVX2
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == Isa::AVX2) return avx2;
  if (isa == Isa::AVX512) {
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }
#endif
  return isa == Isa::GENERIC;
}

static Isa loops_isa = cpu_has(Isa::AVX512) ? Isa::AVX512 : cpu_has(Isa::AVX2) ? Isa::AVX2 : Isa::GENERIC;

#if LSTMKIT_HAVE_AVX2
#define LSTMKIT_ISA_CALL(fn) \
  (loops_isa == Isa::AVX512 ? avx512::fn : loops_isa == Isa::AVX2 ? avx2::fn : generic::fn)
#else
#define LSTMKIT_ISA_CALL(fn) (generic::fn)
#endif

// a @ b, through oneDNN's matmul for float32 when it is on (any strides: transposed views are not
// copied), else at::mm; used for the input projection's weight gradient dW = dZ^T X.
Tensor mm(const Tensor& a, const Tensor& b) { return weight_matmul(a, b); }

std::string isa() { return loops_isa == Isa::AVX512 ? "avx512" : loops_isa == Isa::AVX2 ? "avx2" : "generic"; }

const char* gemm_lib_name(GemmLib lib) {
  switch (lib) {
    case GemmLib::AUTO: return "auto";
    case GemmLib::ONEDNN: return "onednn";
    case GemmLib::MKL: return "mkl";
    case GemmLib::PANEL: return "avx512";
    case GemmLib::PANEL_BF16: return "avx512_bf16";
    default: return "aten";
  }
}

// Choose the library of the float32 GEMMs: "auto" (the default), "onednn", "mkl" or "aten"
// (a forced library that is missing falls back to at::mm). Returns the previous choice.
std::string set_gemm(const std::string& name) {
  const std::string before = gemm_lib_name(gemm_lib);
  if (name == "auto") gemm_lib = GemmLib::AUTO;
  else if (name == "onednn") gemm_lib = GemmLib::ONEDNN;
  else if (name == "mkl") gemm_lib = GemmLib::MKL;
  else if (name == "aten") gemm_lib = GemmLib::ATEN;
  else if (name == "avx512") gemm_lib = GemmLib::PANEL;
  else TORCH_CHECK(false, "gemm must be 'auto', 'avx512', 'onednn', 'mkl' or 'aten'; got '", name, "'");
  return before;
}

// The library a float32 per-step GEMM of `rows` rows and `weights` weight values runs with now
// ("onednn", "mkl" or "aten").
std::string step_gemm(int64_t rows, int64_t weights) {
  return gemm_lib_name(step_gemm_lib(at::kFloat, rows, weights));
}

void set_isa(const std::string& name) {
  TORCH_CHECK(name == "generic" || name == "avx2" || name == "avx512",
              "isa must be 'generic', 'avx2' or 'avx512'; got '", name, "'");
  const Isa want = name == "avx512" ? Isa::AVX512 : name == "avx2" ? Isa::AVX2 : Isa::GENERIC;
  TORCH_CHECK(cpu_has(want), "this CPU or build cannot run the '", name, "' loops");
  loops_isa = want;
}

// The boundary: positional arguments from Python are unpacked here, once, into named structs.
std::vector<Tensor> run_forward(const Tensor& zx_in, const Tensor& h0_in, const Tensor& c0_in, const Tensor& w_hh_in,
                                const OptTensor& w_hr, const OptTensor& w_ch, const OptTensor& w_gg,
                                const OptTensor& ln_hh, const OptTensor& ln_cw, const OptTensor& ln_cb,
                                const OptTensor& rec_mask, const OptTensor& zc_mask, const OptTensor& zh_mask,
                                const OptTensor& lengths, std::vector<int64_t> cfg, double clip, double zc_p,
                                double zh_p, bool save, bool record) {
  const CellConfig cf(cfg, clip, zc_p, zh_p);
  TORCH_CHECK(zx_in.dim() == 3 && h0_in.dim() == 2 && c0_in.dim() == 2,
              "lstmkit kernel: zx, h0, c0 must have 3, 2, 2 dimensions; got ", zx_in.dim(), ", ", h0_in.dim(), ", ",
              c0_in.dim());
  cf.check_layout(c0_in.size(1), zx_in.size(2));
  const at::ScalarType dtype = zx_in.scalar_type();
  const bool low = low_precision(dtype);
  Tensor zx = compute(zx_in, low), h0 = compute(h0_in, low), c0 = compute(c0_in, low);
  Params w{compute(w_hh_in, low), compute(w_hr, low),  compute(w_ch, low),  compute(w_gg, low),
           compute(ln_hh, low),   compute(ln_cw, low), compute(ln_cb, low)};
  if (low) w.low_hh = w_hh_in.contiguous(), w.low_hr = contig(w_hr), w.low_gg = contig(w_gg);
  const Masks mk{compute(rec_mask, low), compute(zc_mask, low), compute(zh_mask, low),
                 step_counts(lengths, zx.size(1), zx.size(0))};
  Saved sv;
  if (low) {
    sv = LSTMKIT_ISA_CALL(forward_impl<float>)(cf, zx, h0, c0, w, mk, Keep{save, record});
    // h comes back in the call's dtype; c, the gates and the rest stay float32 (rounding c or a gate
    // would move the kinks of clip, hard_sigmoid and relu that the backward reads from them)
    sv.hs = sv.hs.to(dtype);
  } else {
    AT_DISPATCH_FLOATING_TYPES(dtype, "lstmkit_forward", [&] {
      sv = LSTMKIT_ISA_CALL(forward_impl<scalar_t>)(cf, zx, h0, c0, w, mk, Keep{save, record});
    });
  }
  return sv.list();
}

std::vector<Tensor> lstm_forward(const Tensor& zx, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                 const OptTensor& w_hr, const OptTensor& w_ch, const OptTensor& w_gg,
                                 const OptTensor& ln_hh, const OptTensor& ln_cw, const OptTensor& ln_cb,
                                 const OptTensor& rec_mask, const OptTensor& zc_mask, const OptTensor& zh_mask,
                                 const OptTensor& lengths, std::vector<int64_t> cfg, double clip, double zc_p,
                                 double zh_p) {
  return run_forward(zx, h0, c0, w_hh, w_hr, w_ch, w_gg, ln_hh, ln_cw, ln_cb, rec_mask, zc_mask, zh_mask, lengths,
                     std::move(cfg), clip, zc_p, zh_p, /*save=*/true, /*record=*/true);
}

// Forward without a backward to come: returns hs (T+1, B, R), cs and acts; cs (T+1, B, H) and acts
// (T, B, G*H) of every step only when `record`, else cs holds c_{T-1} and c_T in slots (T-1) % 2 and
// T % 2, and acts one step.
std::vector<Tensor> lstm_infer(const Tensor& zx, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                               const OptTensor& w_hr, const OptTensor& w_ch, const OptTensor& w_gg,
                               const OptTensor& ln_hh, const OptTensor& ln_cw, const OptTensor& ln_cb,
                               const OptTensor& rec_mask, const OptTensor& zc_mask, const OptTensor& zh_mask,
                               const OptTensor& lengths, std::vector<int64_t> cfg, double clip, double zc_p,
                               double zh_p, bool record) {
  std::vector<Tensor> out = run_forward(zx, h0, c0, w_hh, w_hr, w_ch, w_gg, ln_hh, ln_cw, ln_cb, rec_mask, zc_mask,
                                        zh_mask, lengths, std::move(cfg), clip, zc_p, zh_p, /*save=*/false, record);
  return {out[HS], out[CS], out[ACTS]};
}

std::vector<Tensor> lstm_backward(const OptTensor& d_hs, const OptTensor& d_cs, const OptTensor& d_acts,
                                  const std::vector<OptTensor>& saved, const Tensor& w_hh, const OptTensor& w_hr,
                                  const OptTensor& w_ch, const OptTensor& w_gg, const OptTensor& ln_hh,
                                  const OptTensor& ln_cw, const OptTensor& rec_mask, const OptTensor& zc_mask,
                                  const OptTensor& zh_mask, const OptTensor& lengths, std::vector<int64_t> cfg,
                                  double clip, double zc_p, double zh_p) {
  const CellConfig cf(cfg, clip, zc_p, zh_p);
  const at::ScalarType dtype = w_hh.scalar_type();
  const bool low = low_precision(dtype);
  std::vector<OptTensor> saved_c;
  for (const OptTensor& t : saved) saved_c.emplace_back(compute(t, low));
  const Saved sv = Saved::from_list(saved_c);
  cf.check_layout(sv.cs.size(2), sv.acts.size(2));
  Params w{compute(w_hh, low),  compute(w_hr, low),  compute(w_ch, low), compute(w_gg, low),
           compute(ln_hh, low), compute(ln_cw, low), Tensor()};
  if (low) w.low_hh = w_hh.contiguous(), w.low_hr = contig(w_hr), w.low_gg = contig(w_gg);
  const Masks mk{compute(rec_mask, low), compute(zc_mask, low), compute(zh_mask, low),
                 step_counts(lengths, sv.acts.size(1), sv.acts.size(0))};
  std::vector<Tensor> out;
  if (low) {
    out = LSTMKIT_ISA_CALL(backward_impl<float>)(cf, compute(d_hs, low), compute(d_cs, low), compute(d_acts, low), sv,
                                                 w, mk);
    for (Tensor& g : out) {
      if (g.defined()) g = g.to(dtype);  // gradients in the dtype of what they belong to
    }
  } else {
    AT_DISPATCH_FLOATING_TYPES(sv.acts.scalar_type(), "lstmkit_backward", [&] {
      out = LSTMKIT_ISA_CALL(backward_impl<scalar_t>)(cf, contig(d_hs), contig(d_cs), contig(d_acts), sv, w, mk);
    });
  }
  return out;
}

}  // namespace lstmkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lstmkit compiled LSTM recurrence (forward and BPTT) for every CellSpec";
  m.def("forward", &lstmkit::lstm_forward, "one layer-direction forward; returns states, gates and saved tensors");
  m.def("mm", &lstmkit::mm, "a @ b through oneDNN's matmul (float32, any strides) when it is on, else at::mm");
  m.def("infer", &lstmkit::lstm_infer,
        "forward with no backward to come: hs, cs, acts (cs and acts of every step only when recording)");
  m.def("avx512", [] { return lstmkit::has_avx512; }, "whether this CPU runs the AVX-512 panel GEMM");
  m.def("avx512_bf16", [] { return lstmkit::has_avx512_bf16; },
        "whether this CPU runs the bfloat16 panel GEMM (AVX512-BF16); else bfloat16 weights multiply as float32");
  m.def("isa", &lstmkit::isa, "instruction set of the loops: 'avx512', 'avx2' or 'generic'");
  m.def("set_isa", &lstmkit::set_isa, "run the loops as 'generic', 'avx2' or 'avx512' (one the CPU has)");
  m.def("set_gemm", &lstmkit::set_gemm,
        "library of the float32 GEMMs: 'auto' (default), 'onednn', 'mkl' or 'aten'; returns the previous choice");
  m.def("step_gemm", &lstmkit::step_gemm, "library a float32 per-step GEMM of this many rows runs with now");
  m.def("backward", &lstmkit::lstm_backward, "BPTT of forward; returns the gradients of its inputs");
  m.def("int8_linear", &lstmkit::int8_linear, "x @ (scale * q)^T + b with x quantised per row to int8 (int32 sums)");
  m.def("int8_rows", &lstmkit::int8_rows, "rows of an int8 table by index, times their scales, in float32");
}
