// lstmkit's compiled sLSTM recurrence (Beck et al. 2024, xLSTM §2.2): forward and BPTT of one layer.
//
// The Python side (lstmkit/kernels/families/slstm.py) projects the input of all steps in one GEMM,
// zx = W x + b (T, B, 4H), blocks i, f, z, o, and calls slstm_forward / slstm_backward here.
// Per step t and batch row b, as lstmkit.families.slstm.slstm_step:
//
//   pre   = zx_t + R h_{t-1}                      R block-diagonal over NH heads (recurrence)
//   log i = cap(pre_i)  or logsigmoid(cap(pre_i))  log f likewise            (log_gates)
//   m_t   = max(log f + m_{t-1}, log i)  (m_{t-1} without the stabilizer)
//   i'    = exp(log i - m_t)   f' = exp(log f + m_{t-1} - m_t)   z = tanh   o = sigmoid
//   c_t   = f' c + i' z        n_t = f' n + i'      h_t = o c_t / n_t           (cell_update)
//
// A row whose length has run out keeps its state. Rows are independent given the weights, so the
// batch is split over threads once for the whole sequence (no barrier per step). The forward keeps
// every state S (T+1, 4, B, H) (S[t] = (h, c, n, m) after t steps) and, per step, the gates and
// the slopes of the log gates (acts, (T, B, 7H)); the backward walks t = T-1 .. 0 on them with no
// transcendental function, returns dZx = dPre, the adjoint of the initial state, and dR with one
// batched GEMM over all steps. exp, log1p, tanh and sigmoid are vmath.h's vectorisable forms.
//
// Shapes: T time, B batch, H hidden, NH heads, DH = H / NH.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include "vmath.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lstmkit_families {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

// The spec, as lstmkit.kernels.families.slstm.config encodes it.
struct SpecConfig {
  bool input_exp;    // i = exp(i~) (else sigmoid)
  bool forget_exp;   // f = exp(f~) (else sigmoid)
  bool stabilizer;   // carry m_t = max(log f + m_{t-1}, log i)
  int64_t heads;     // NH
  double cap;        // soft cap of the i and f pre-activations; <= 0: off
};

SpecConfig config_from(const std::vector<int64_t>& cfg, double cap) {
  TORCH_CHECK(cfg.size() == 4, "lstmkit sLSTM kernel: cfg must be [input_exp, forget_exp, stabilizer, heads]; got ",
              cfg.size(), " numbers");
  TORCH_CHECK(cfg[3] >= 1, "lstmkit sLSTM kernel: heads must be >= 1; got ", cfg[3]);
  return SpecConfig{cfg[0] != 0, cfg[1] != 0, cfg[2] != 0, cfg[3], cap};
}

// What the forward keeps per step and row for the backward: 7 blocks of H, in this order.
enum Act : int64_t { I = 0, F = 1, Z = 2, O = 3, SLOPE_I = 4, SLOPE_F = 5, SHARE = 6, ACTS = 7 };
// SLOPE_*: d log gate / d pre-activation (soft cap included); SHARE: the part of dm_t that goes to
// log f + m_{t-1} in m_t = max(log f + m_{t-1}, log i) (1, 0, or 1/2 at a tie as torch.maximum; 1 without
// the stabilizer, where m_t = m_{t-1}).

// log of a gate from its pre-activation x (n values): lg = log gate, slope = d lg / d x.
template <typename T>
LSTMKIT_INLINE void log_gates(const T* x, T* lg, T* slope, int64_t n, bool exp_gate, double cap) {
  if (cap > 0) {
    const T C = T(cap);
    #pragma GCC ivdep  // distinct arrays
    for (int64_t u = 0; u < n; ++u) {
      const T th = vtanh(x[u] / C);
      lg[u] = C * th;
      slope[u] = T(1) - th * th;
    }
  } else {
    #pragma GCC ivdep  // distinct arrays
    for (int64_t u = 0; u < n; ++u) lg[u] = x[u], slope[u] = T(1);
  }
  if (exp_gate) return;
  #pragma GCC ivdep  // distinct arrays
  for (int64_t u = 0; u < n; ++u) {  // log sigmoid(y) = min(y, 0) - log1p(e^{-|y|}); its slope sigmoid(-y)
    const T y = lg[u];
    const T e = vexp(y < T(0) ? y : -y);
    const T sig_neg = (y < T(0) ? T(1) : e) / (T(1) + e);
    lg[u] = (y < T(0) ? y : T(0)) - vlog1p_unit(e);
    slope[u] *= sig_neg;
  }
}

// ---------------------------------------------------------------------------------------- recurrence
// Rows are taken RB at a time so that each slice of R read from memory serves RB rows.
constexpr int64_t RB = 4;

// rec_q += R h_q for the rows q < nr, rec_q head-major (NH, 4, DH) so that the inner loop runs over the
// 4 DH outputs of a head at once; R stored transposed as RT (NH, DH_in, 4, DH_out) to match.
template <typename T>
LSTMKIT_INLINE void recurrence(const T* RT, const T* const* h, T* const* rec, int64_t nr, int64_t H, int64_t NH) {
  const int64_t DH = H / NH, W = 4 * DH;
  for (int64_t k = 0; k < NH; ++k) {
    for (int64_t d = 0; d < DH; ++d) {
      const T* r = RT + (k * DH + d) * W;
      for (int64_t q = 0; q < nr; ++q) {
        const T hv = h[q][k * DH + d];
        T* out = rec[q] + k * W;
        #pragma GCC ivdep  // distinct arrays
        for (int64_t j = 0; j < W; ++j) out[j] += hv * r[j];
      }
    }
  }
}

// dh_q (H) += R^T dpre_q (4H) for the rows q < nr, R in its stored layout (4, NH, DH_out, DH_in).
template <typename T>
LSTMKIT_INLINE void recurrence_adjoint(const T* R, const T* const* dpre, T* const* dh, int64_t nr, int64_t H,
                                       int64_t NH) {
  const int64_t DH = H / NH;
  for (int64_t g = 0; g < 4; ++g) {
    for (int64_t k = 0; k < NH; ++k) {
      for (int64_t j = 0; j < DH; ++j) {
        const T* r = R + ((g * NH + k) * DH + j) * DH;
        for (int64_t q = 0; q < nr; ++q) {
          const T s = dpre[q][g * H + k * DH + j];
          T* out = dh[q] + k * DH;
          #pragma GCC ivdep  // distinct arrays
          for (int64_t d = 0; d < DH; ++d) out[d] += s * r[d];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------- forward
// The gates and state update of L units (one or several rows side by side) from their pre-activations,
// gate g's at p + g L; A receives what the backward reads, field X at A + X L.
template <typename T>
LSTMKIT_INLINE void gates_and_update(const SpecConfig& cfg, const T* p, const T* c, const T* n, const T* m, T* h1,
                                     T* c1, T* n1, T* m1, T* A, int64_t L) {
  T *li = A + I * L, *lf = A + F * L;  // log gates for now; the gates below
  log_gates(p, li, A + SLOPE_I * L, L, cfg.input_exp, cfg.cap);
  log_gates(p + L, lf, A + SLOPE_F * L, L, cfg.forget_exp, cfg.cap);
  T *zs = A + Z * L, *os = A + O * L, *share = A + SHARE * L;
  // Short loops over u, each simple enough for the compiler to vectorise.
  if (cfg.stabilizer) {
    #pragma GCC ivdep  // distinct arrays
    for (int64_t u = 0; u < L; ++u) {  // m_t = max(log f + m_{t-1}, log i)
      const T l = li[u], a = lf[u] + m[u];
      m1[u] = a > l ? a : l;
      share[u] = a > l ? T(1) : (a < l ? T(0) : T(0.5));
    }
  } else {
    std::copy(m, m + L, m1);
    std::fill(share, share + L, T(1));
  }
  #pragma GCC ivdep  // distinct arrays
  for (int64_t u = 0; u < L; ++u) {  // stabilised gates
    li[u] = vexp(li[u] - m1[u]);
    lf[u] = vexp(lf[u] + m[u] - m1[u]);
  }
  #pragma GCC ivdep  // distinct arrays
  for (int64_t u = 0; u < L; ++u) {
    zs[u] = vtanh(p[2 * L + u]);
    os[u] = vsigmoid(p[3 * L + u]);
  }
  #pragma GCC ivdep  // distinct arrays
  for (int64_t u = 0; u < L; ++u) {  // cell_update, output
    const T cn = lf[u] * c[u] + li[u] * zs[u], nn = lf[u] * n[u] + li[u];
    c1[u] = cn, n1[u] = nn, h1[u] = os[u] * cn / nn;
  }
}

// Rows b0 .. b1 of the batch over all T steps (rows are independent: no barrier between threads).
template <typename T>
LSTMKIT_INLINE void forward_rows_impl(const SpecConfig& cfg, const T* zx, const T* RT, const int64_t* lengths, T* S,
                                      T* acts, int64_t Tn, int64_t B, int64_t H, int64_t b0, int64_t b1) {
  const int64_t G = 4 * H, L = RB * H, NH = cfg.heads, DH = H / NH;
  // A block of up to RB rows side by side, field-major so that the gate loops run over nr H units at once:
  // pre-activations (4 fields), the states before (c, n, m) and after (h, c, n, m), the acts (7 fields).
  std::vector<T> scratch((4 + 4 + 3 + 4 + ACTS) * L);
  T* Q = scratch.data();  // pre-activations, row after row, each head-major (NH, 4, DH)
  T* P = Q + 4 * L;
  T *C = P + 4 * L, *N = C + L, *M = N + L, *H1 = M + L, *C1 = H1 + L, *N1 = C1 + L, *M1 = N1 + L, *A = M1 + L;
  for (int64_t t = 0; t < Tn; ++t) {
    const T* Sp = S + t * 4 * B * H;  // states before step t, (4, B, H)
    T* Sn = S + (t + 1) * 4 * B * H;  // states after it
    for (int64_t r0 = b0; r0 < b1; r0 += RB) {
      const T* hs[RB];
      T* ps[RB];
      int64_t rows[RB], nr = 0;
      for (int64_t b = r0; b < std::min(r0 + RB, b1); ++b) {
        if (lengths != nullptr && t >= lengths[b]) {  // padded: the state carries over, no gates
          for (int64_t s = 0; s < 4; ++s) std::copy(Sp + (s * B + b) * H, Sp + (s * B + b + 1) * H, Sn + (s * B + b) * H);
          T* Ab = acts + (t * B + b) * ACTS * H;
          std::fill(Ab, Ab + ACTS * H, T(0));
          continue;
        }
        rows[nr] = b, hs[nr] = Sp + b * H, ps[nr] = Q + nr * G;
        const T* x = zx + (t * B + b) * G;  // (4, NH, DH) -> (NH, 4, DH)
        for (int64_t g = 0; g < 4; ++g)
          for (int64_t k = 0; k < NH; ++k) std::copy(x + g * H + k * DH, x + g * H + (k + 1) * DH, ps[nr] + (k * 4 + g) * DH);
        std::copy(Sp + (B + b) * H, Sp + (B + b + 1) * H, C + nr * H);
        std::copy(Sp + (2 * B + b) * H, Sp + (2 * B + b + 1) * H, N + nr * H);
        std::copy(Sp + (3 * B + b) * H, Sp + (3 * B + b + 1) * H, M + nr * H);
        ++nr;
      }
      if (nr == 0) continue;
      recurrence(RT, hs, ps, nr, H, NH);  // preactivation
      const int64_t n = nr * H;  // field-major for the gate loops: gate g of row q at P + g n + q H
      for (int64_t q = 0; q < nr; ++q)
        for (int64_t k = 0; k < NH; ++k)
          for (int64_t g = 0; g < 4; ++g) {
            const T* src = ps[q] + (k * 4 + g) * DH;
            std::copy(src, src + DH, P + g * n + q * H + k * DH);
          }
      gates_and_update(cfg, P, C, N, M, H1, C1, N1, M1, A, n);
      for (int64_t q = 0; q < nr; ++q) {  // scatter back to S and acts
        const int64_t b = rows[q];
        std::copy(H1 + q * H, H1 + (q + 1) * H, Sn + b * H);
        std::copy(C1 + q * H, C1 + (q + 1) * H, Sn + (B + b) * H);
        std::copy(N1 + q * H, N1 + (q + 1) * H, Sn + (2 * B + b) * H);
        std::copy(M1 + q * H, M1 + (q + 1) * H, Sn + (3 * B + b) * H);
        T* Ab = acts + (t * B + b) * ACTS * H;
        for (int64_t f = 0; f < ACTS; ++f) std::copy(A + f * n + q * H, A + f * n + (q + 1) * H, Ab + f * H);
      }
    }
  }
}

void check_inputs(const Tensor& zx, const std::vector<Tensor>& state0, const Tensor& w_hh, const OptTensor& lengths,
                  const SpecConfig& cfg) {
  TORCH_CHECK(zx.dim() == 3 && zx.size(2) % 4 == 0, "lstmkit sLSTM kernel: zx must be (T, B, 4H); got ", zx.sizes());
  const int64_t B = zx.size(1), H = zx.size(2) / 4;
  TORCH_CHECK(H % cfg.heads == 0, "lstmkit sLSTM kernel: heads must divide H=", H, "; got ", cfg.heads);
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == 4 * H && w_hh.size(1) == H / cfg.heads,
              "lstmkit sLSTM kernel: w_hh must be (4H, H/NH) = (", 4 * H, ", ", H / cfg.heads, "); got ", w_hh.sizes());
  for (const auto& s : state0) {
    TORCH_CHECK(s.dim() == 2 && s.size(0) == B && s.size(1) == H, "lstmkit sLSTM kernel: each state must be (B, H) = (",
                B, ", ", H, "); got ", s.sizes());
    TORCH_CHECK(s.scalar_type() == zx.scalar_type(), "lstmkit sLSTM kernel: states must have zx's dtype");
  }
  TORCH_CHECK(w_hh.scalar_type() == zx.scalar_type(), "lstmkit sLSTM kernel: w_hh must have zx's dtype");
  TORCH_CHECK(zx.scalar_type() == at::kFloat || zx.scalar_type() == at::kDouble,
              "lstmkit sLSTM kernel: float32 or float64 only; got ", zx.scalar_type());
  if (lengths.has_value()) {
    TORCH_CHECK(lengths->dim() == 1 && lengths->size(0) == B, "lstmkit sLSTM kernel: lengths must be (B,)");
  }
}

// Rows per task: split the batch only when a row's step is worth a thread (small layers run on one).
int64_t grain(int64_t B, int64_t H, int64_t DH) {
  const int64_t work = 4 * H * DH + 64 * H;  // multiply-adds of the recurrence + gate maths per row and step
  const int64_t rows = std::max<int64_t>(1, (int64_t(1) << 16) / work);
  return std::max(rows, (B + at::get_num_threads() - 1) / std::max<int64_t>(1, at::get_num_threads()));
}

// ---------------------------------------------------------------------------------------- backward
// One step's adjoint for row b. In: the adjoints (dh, dc, dn, dm) of the state after the step.
// Out: the adjoints of the state before it, but dh, which the caller adds (R^T dPre); dp the step's dPre.
template <typename T>
LSTMKIT_INLINE void step_adjoint(const T* A, const T* c, const T* n, const T* c1, const T* n1, T stabilizer, T* dh, T* dc,
                         T* dn, T* dm, T* dp, int64_t H) {
  #pragma GCC ivdep  // distinct arrays
  for (int64_t u = 0; u < H; ++u) {
    const T i = A[I * H + u], f = A[F * H + u], z = A[Z * H + u], o = A[O * H + u];
    const T cn = c1[u], nn = n1[u];
    const T dhu = dh[u];  // output: h = o c_t / n_t
    const T d_o = dhu * cn / nn;
    const T dcn = dc[u] + dhu * o / nn;
    const T dnn = dn[u] - dhu * o * cn / (nn * nn);
    const T df = dcn * c[u] + dnn * n[u];  // cell update
    const T di = dcn * z + dnn;
    const T dz = dcn * i;
    dc[u] = dcn * f;
    dn[u] = dnn * f;
    // i' = exp(log i - m_t), f' = exp(log f + m_{t-1} - m_t), m_t = max(log f + m_{t-1}, log i) or m_{t-1}
    const T dli = di * i, dlf = df * f;
    const T dmn = dm[u] - dli - dlf;
    const T da = A[SHARE * H + u] * dmn;  // to log f + m_{t-1} (all of it to m_{t-1} without the stabilizer)
    dm[u] = dlf + da;
    dp[u] = (dli + (dmn - da)) * A[SLOPE_I * H + u];
    dp[H + u] = (dlf + stabilizer * da) * A[SLOPE_F * H + u];
    dp[2 * H + u] = dz * (T(1) - z * z);
    dp[3 * H + u] = d_o * o * (T(1) - o);
    dh[u] = T(0);
  }
}

template <typename T>
LSTMKIT_INLINE void backward_rows_impl(const SpecConfig& cfg, const T* dS, const T* S, const T* acts, const T* R,
                                       const int64_t* lengths, T* dpre, T* d0, int64_t Tn, int64_t B, int64_t H,
                                       int64_t b0, int64_t b1) {
  const int64_t G = 4 * H;
  const T stabilizer = cfg.stabilizer ? T(1) : T(0);
  std::vector<T> adj((b1 - b0) * G, T(0));  // per row: the adjoints (dh, dc, dn, dm) of the current state
  auto add_dS = [&](int64_t t, int64_t b) {  // the gradient arriving at S[t] from outside
    if (dS == nullptr) return;
    T* a = adj.data() + (b - b0) * G;
    for (int64_t s = 0; s < 4; ++s) {
      const T* g = dS + ((t * 4 + s) * B + b) * H;
      for (int64_t u = 0; u < H; ++u) a[s * H + u] += g[u];
    }
  };
  for (int64_t b = b0; b < b1; ++b) add_dS(Tn, b);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* Sp = S + t * 4 * B * H;
    const T* Sn = S + (t + 1) * 4 * B * H;
    for (int64_t r0 = b0; r0 < b1; r0 += RB) {
      const T* dps[RB];
      T* dhs[RB];
      int64_t nr = 0;
      for (int64_t b = r0; b < std::min(r0 + RB, b1); ++b) {
        T* dp = dpre + (t * B + b) * G;
        if (lengths != nullptr && t >= lengths[b]) {  // padded: the adjoint carries over
          std::fill(dp, dp + G, T(0));
          continue;
        }
        T* a = adj.data() + (b - b0) * G;
        step_adjoint<T>(acts + (t * B + b) * ACTS * H, Sp + (B + b) * H, Sp + (2 * B + b) * H, Sn + (B + b) * H,
                        Sn + (2 * B + b) * H, stabilizer, a, a + H, a + 2 * H, a + 3 * H, dp, H);
        dps[nr] = dp, dhs[nr] = a, ++nr;
      }
      recurrence_adjoint(R, dps, dhs, nr, H, cfg.heads);
      for (int64_t b = r0; b < std::min(r0 + RB, b1); ++b) add_dS(t, b);
    }
  }
  for (int64_t b = b0; b < b1; ++b) {
    const T* a = adj.data() + (b - b0) * G;
    for (int64_t s = 0; s < 4; ++s) std::copy(a + s * H, a + (s + 1) * H, d0 + (s * B + b) * H);
  }
}

// ---------------------------------------------------------------------------------------- instruction sets
// The row loops compiled three times (AVX-512, AVX2 + FMA, baseline) and chosen once by what the CPU has,
// so the vector width follows the machine without -march=native in a build folder machines may share.
#define LSTMKIT_ROWS(SUFFIX, TARGET)                                                                          \
  template <typename T>                                                                                      \
  TARGET void forward_rows_##SUFFIX(const SpecConfig& cfg, const T* zx, const T* RT, const int64_t* lengths, \
                                    T* S, T* acts, int64_t Tn, int64_t B, int64_t H, int64_t b0, int64_t b1) { \
    forward_rows_impl<T>(cfg, zx, RT, lengths, S, acts, Tn, B, H, b0, b1);                                   \
  }                                                                                                          \
  template <typename T>                                                                                      \
  TARGET void backward_rows_##SUFFIX(const SpecConfig& cfg, const T* dS, const T* S, const T* acts,          \
                                     const T* R, const int64_t* lengths, T* dpre, T* d0, int64_t Tn,         \
                                     int64_t B, int64_t H, int64_t b0, int64_t b1) {                         \
    backward_rows_impl<T>(cfg, dS, S, acts, R, lengths, dpre, d0, Tn, B, H, b0, b1);                         \
  }

#if defined(__GNUC__) && defined(__x86_64__)
LSTMKIT_ROWS(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))))
LSTMKIT_ROWS(avx2, __attribute__((target("avx2,fma"))))
#endif
LSTMKIT_ROWS(base, )

enum class Isa { BASE, AVX2, AVX512 };

Isa detect_isa() {
#if defined(__GNUC__) && defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return Isa::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::AVX2;
#endif
  return Isa::BASE;
}

Isa& isa() {
  static Isa chosen = detect_isa();
  return chosen;
}

std::string isa_name() {
  switch (isa()) {
    case Isa::AVX512: return "avx512";
    case Isa::AVX2: return "avx2";
    default: return "generic";
  }
}

void set_isa(const std::string& name) {
  const Isa best = detect_isa();
  Isa want = name == "avx512" ? Isa::AVX512 : (name == "avx2" ? Isa::AVX2 : Isa::BASE);
  TORCH_CHECK(name == "avx512" || name == "avx2" || name == "generic",
              "lstmkit sLSTM kernel: isa must be 'avx512', 'avx2' or 'generic'; got '", name, "'");
  TORCH_CHECK(int(want) <= int(best), "lstmkit sLSTM kernel: this CPU does not run '", name, "'");
  isa() = want;
}

template <typename T>
void forward_rows(const SpecConfig& cfg, const T* zx, const T* RT, const int64_t* lengths, T* S, T* acts, int64_t Tn,
                  int64_t B, int64_t H, int64_t b0, int64_t b1) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (isa() == Isa::AVX512) return forward_rows_avx512<T>(cfg, zx, RT, lengths, S, acts, Tn, B, H, b0, b1);
  if (isa() == Isa::AVX2) return forward_rows_avx2<T>(cfg, zx, RT, lengths, S, acts, Tn, B, H, b0, b1);
#endif
  forward_rows_base<T>(cfg, zx, RT, lengths, S, acts, Tn, B, H, b0, b1);
}

template <typename T>
void backward_rows(const SpecConfig& cfg, const T* dS, const T* S, const T* acts, const T* R, const int64_t* lengths,
                   T* dpre, T* d0, int64_t Tn, int64_t B, int64_t H, int64_t b0, int64_t b1) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (isa() == Isa::AVX512) return backward_rows_avx512<T>(cfg, dS, S, acts, R, lengths, dpre, d0, Tn, B, H, b0, b1);
  if (isa() == Isa::AVX2) return backward_rows_avx2<T>(cfg, dS, S, acts, R, lengths, dpre, d0, Tn, B, H, b0, b1);
#endif
  backward_rows_base<T>(cfg, dS, S, acts, R, lengths, dpre, d0, Tn, B, H, b0, b1);
}

// ---------------------------------------------------------------------------------------- boundary
Tensor lengths_of(const OptTensor& lengths_in) {
  return lengths_in.has_value() ? lengths_in->to(at::kLong).contiguous() : Tensor();
}

// zx (T, B, 4H), h0, c0, n0, m0 (B, H), w_hh (4H, DH) -> S (T+1, 4, B, H), acts (T, B, 7H).
std::vector<Tensor> slstm_forward(const Tensor& zx_in, const Tensor& h0, const Tensor& c0, const Tensor& n0,
                                  const Tensor& m0, const Tensor& w_hh, const OptTensor& lengths_in,
                                  std::vector<int64_t> cfg_in, double cap) {
  const SpecConfig cfg = config_from(cfg_in, cap);
  check_inputs(zx_in, {h0, c0, n0, m0}, w_hh, lengths_in, cfg);
  const Tensor zx = zx_in.contiguous();
  const int64_t Tn = zx.size(0), B = zx.size(1), H = zx.size(2) / 4, NH = cfg.heads, DH = H / NH;
  Tensor S = at::empty({Tn + 1, 4, B, H}, zx.options());
  S.select(0, 0).copy_(at::stack({h0, c0, n0, m0}));
  Tensor acts = at::empty({Tn, B, ACTS * H}, zx.options());
  // (4, NH, DH_out, DH_in) -> (NH, DH_in, 4, DH_out): the recurrence reads it contiguously
  Tensor RT = w_hh.reshape({4, NH, DH, DH}).permute({1, 3, 0, 2}).contiguous();
  const Tensor lengths = lengths_of(lengths_in);
  const int64_t* len = lengths.defined() ? lengths.data_ptr<int64_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(zx.scalar_type(), "lstmkit_slstm_forward", [&] {
    const scalar_t* zp = zx.data_ptr<scalar_t>();
    const scalar_t* rp = RT.data_ptr<scalar_t>();
    scalar_t* sp = S.data_ptr<scalar_t>();
    scalar_t* ap = acts.data_ptr<scalar_t>();
    at::parallel_for(0, B, grain(B, H, DH), [&](int64_t b0, int64_t b1) {
      forward_rows<scalar_t>(cfg, zp, rp, len, sp, ap, Tn, B, H, b0, b1);
    });
  });
  return {S, acts};
}

// dS (T+1, 4, B, H) or None, S and acts from the forward -> dZx (T, B, 4H), d state0 (4, B, H), dW_hh (4H, DH).
std::vector<Tensor> slstm_backward(const OptTensor& dS_in, const Tensor& S_in, const Tensor& acts_in,
                                   const Tensor& w_hh, const OptTensor& lengths_in, std::vector<int64_t> cfg_in,
                                   double cap) {
  const SpecConfig cfg = config_from(cfg_in, cap);
  const Tensor S = S_in.contiguous(), acts = acts_in.contiguous(), R = w_hh.contiguous();
  const int64_t Tn = acts.size(0), B = acts.size(1), H = acts.size(2) / ACTS, NH = cfg.heads, DH = H / NH;
  TORCH_CHECK(S.dim() == 4 && S.size(0) == Tn + 1 && S.size(1) == 4 && S.size(2) == B && S.size(3) == H,
              "lstmkit sLSTM kernel: S must be (T+1, 4, B, H); got ", S.sizes());
  Tensor dS;
  if (dS_in.has_value() && dS_in->defined()) {
    TORCH_CHECK(dS_in->sizes() == S.sizes(), "lstmkit sLSTM kernel: dS must be shaped like S; got ", dS_in->sizes());
    dS = dS_in->to(S.scalar_type()).contiguous();
  }
  const Tensor lengths = lengths_of(lengths_in);
  const int64_t* len = lengths.defined() ? lengths.data_ptr<int64_t>() : nullptr;
  Tensor dpre = at::empty({Tn, B, 4 * H}, S.options());
  Tensor d0 = at::empty({4, B, H}, S.options());
  AT_DISPATCH_FLOATING_TYPES(S.scalar_type(), "lstmkit_slstm_backward", [&] {
    const scalar_t* dsp = dS.defined() ? dS.data_ptr<scalar_t>() : nullptr;
    const scalar_t* sp = S.data_ptr<scalar_t>();
    const scalar_t* ap = acts.data_ptr<scalar_t>();
    const scalar_t* rp = R.data_ptr<scalar_t>();
    scalar_t* dp = dpre.data_ptr<scalar_t>();
    scalar_t* d0p = d0.data_ptr<scalar_t>();
    at::parallel_for(0, B, grain(B, H, DH), [&](int64_t b0, int64_t b1) {
      backward_rows<scalar_t>(cfg, dsp, sp, ap, rp, len, dp, d0p, Tn, B, H, b0, b1);
    });
  });
  // dR[g, k, j, d] = sum over (t, b) of dPre[t, b, g, k, j] h_{t-1}[b, k, d]: one batched GEMM over heads
  Tensor dP = dpre.reshape({Tn * B, 4, NH, DH}).permute({2, 1, 3, 0}).reshape({NH, 4 * DH, Tn * B});
  Tensor hp = S.narrow(0, 0, Tn).select(1, 0).reshape({Tn * B, NH, DH}).permute({1, 0, 2});  // (NH, TB, DH)
  Tensor dR = at::bmm(dP, hp).reshape({NH, 4, DH, DH}).permute({1, 0, 2, 3}).reshape({4 * H, DH});
  return {dpre, d0, dR};
}

}  // namespace lstmkit_families

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("slstm_forward", &lstmkit_families::slstm_forward,
        "sLSTM layer forward: zx, h0, c0, n0, m0, w_hh, lengths, cfg, cap -> S (T+1, 4, B, H), acts (T, B, 7H)");
  m.def("slstm_backward", &lstmkit_families::slstm_backward,
        "sLSTM layer BPTT: dS, S, acts, w_hh, lengths, cfg, cap -> dZx, d state0 (4, B, H), dW_hh");
  m.def("isa", &lstmkit_families::isa_name, "instruction set of the row loops: 'avx512', 'avx2' or 'generic'");
  m.def("set_isa", &lstmkit_families::set_isa, "run the row loops as 'generic', 'avx2' or 'avx512' (one the CPU has)");
}
