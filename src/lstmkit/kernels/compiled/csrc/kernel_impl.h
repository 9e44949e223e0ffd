// The forward and backward loops of lstmkit's compiled kernel. lstm.cpp includes this file three
// times, inside namespace lstmkit::generic (baseline x86-64 code), lstmkit::avx2 (compiled for
// AVX2 + FMA) and lstmkit::avx512 (AVX-512 with 512-bit vectors), the last two chosen at run time
// only on CPUs that have them; no include guard on purpose.
// Expects Tensor, CellConfig, Params, Masks, Saved, Activation and LN_EPS from the enclosing file.
//
// One step of one batch row is cut into the parts of lstmkit.functional.lstm_step, in its order
// and with its names, and backward into their adjoints in reverse order:
//
//   forward:  preactivation -> gates -> cell_update -> output -> carry
//   backward: carry_backward(start) -> output_backward -> cell_update_backward -> gates_backward
//             -> preactivation_backward -> carry_backward(end)
//
// Row pointers: z/a (G*H) pre-activations then activations in storage order, c (H), h (H or R).

#include "activations.h"

// Sums over a row in double with 8 independent lanes, so the compiler can vectorise them (one
// running sum is a serial chain of dependent additions); the lanes are added in a fixed order.
constexpr int LANES = 8;

// sum_k f(k) over k < n, f returning double.
template <typename F>
inline double lane_sum(int64_t n, F f) {
  double acc[LANES] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + LANES <= n; k += LANES) {
    for (int l = 0; l < LANES; ++l) acc[l] += f(k + l);
  }
  double s = 0;
  for (; k < n; ++k) s += f(k);
  for (int l = 0; l < LANES; ++l) s += acc[l];
  return s;
}

// Mean and 1/sqrt(var + eps) of x[0..n) (biased variance, two passes).
template <typename T>
inline void row_stats(const T* x, int64_t n, double& mean, double& rstd) {
  mean = lane_sum(n, [&](int64_t k) { return double(x[k]); }) / double(n);
  const double m = mean;
  const double v = lane_sum(n, [&](int64_t k) {
    const double d = double(x[k]) - m;
    return d * d;
  });
  rstd = 1.0 / std::sqrt(v / double(n) + LN_EPS);
}

// Rows per parallel chunk: about LSTMKIT_GRAIN elements of (B, G*H) work per chunk.
#ifndef LSTMKIT_GRAIN
#define LSTMKIT_GRAIN 16384
#endif
inline int64_t grain_for(int64_t row_work) {
  return std::max<int64_t>(1, LSTMKIT_GRAIN / std::max<int64_t>(1, row_work));
}

// y = k * prev + (1 - k) * y with k a per-element mask (km) or a constant (kc); zoneout (Krueger et al. 2017).
template <typename T>
inline void zoneout_mix(T* y, const T* prev, const T* km, T kc, int64_t n) {
  if (km) {
    for (int64_t j = 0; j < n; ++j) y[j] = km[j] * prev[j] + (T(1) - km[j]) * y[j];
  } else {
    for (int64_t j = 0; j < n; ++j) y[j] = kc * prev[j] + (T(1) - kc) * y[j];
  }
}

// =========================================================================== forward, one row
// z = zx + rec (zx + LN(rec) * g_hh under layer_norm), plus W_gg gates_{t-1} on i, f, o (FGR).
template <typename T>
inline void preactivation(const CellConfig& cf, int64_t H, int64_t GH, const T* zx, const T* rec, const T* fgr,
                          const T* g_hh, T* z, T* rec_hat, T* rstd_rec) {
  if (cf.layer_norm) {
    double mean, rstd;
    row_stats(rec, GH, mean, rstd);
    const T m = T(mean), s = T(rstd);
    for (int64_t k = 0; k < GH; ++k) {
      rec_hat[k] = (rec[k] - m) * s;
      z[k] = zx[k] + rec_hat[k] * g_hh[k];
    }
    *rstd_rec = s;
  } else {
    for (int64_t k = 0; k < GH; ++k) z[k] = zx[k] + rec[k];
  }
  if (cf.full_gate_recurrence) {
    for (int64_t s = 0; s < cf.n; ++s) {
      T* zg = z + cf.sigmoid_off[s];
      const T* fs = fgr + s * H;
      for (int64_t j = 0; j < H; ++j) zg[j] += fs[j];
    }
  }
}

// i, f, g: peepholes of i and f look at c_{t-1}; activations in place (o waits for c_t).
// W units from the pointers on (W = H for a whole row; H is the stride between peephole blocks).
template <typename T>
inline void gates(const CellConfig& cf, int64_t H, int64_t W, const T* peep, const T* c_prev, T* a) {
  if (cf.peephole) {
    if (cf.input_off >= 0) {
      T* ai = a + cf.input_off;
      const T* p = peep + cf.input_k * H;
      for (int64_t j = 0; j < W; ++j) ai[j] += p[j] * c_prev[j];
    }
    if (cf.forget_off >= 0) {
      T* af = a + cf.forget_off;
      const T* p = peep + cf.forget_k * H;
      for (int64_t j = 0; j < W; ++j) af[j] += p[j] * c_prev[j];
    }
  }
  if (cf.input_off >= 0) activate(cf.gate_activation, a + cf.input_off, W);
  if (cf.forget_off >= 0) activate(cf.gate_activation, a + cf.forget_off, W);
  activate(cf.candidate_activation, a + cf.candidate_off, W);
}

// c_t = f * c_{t-1} + i * g (f = 1 - i under CIFG; a removed gate is 1), then the clip.
template <typename T>
inline void cell_update(const CellConfig& cf, int64_t W, const T* a, const T* one, const T* c_prev, T* c) {
  const T* ip = cf.input_off >= 0 ? a + cf.input_off : one;
  const T* gp = a + cf.candidate_off;
  if (cf.coupled) {
    for (int64_t j = 0; j < W; ++j) c[j] = (T(1) - ip[j]) * c_prev[j] + ip[j] * gp[j];
  } else {
    const T* fp = cf.forget_off >= 0 ? a + cf.forget_off : one;
    for (int64_t j = 0; j < W; ++j) c[j] = fp[j] * c_prev[j] + ip[j] * gp[j];
  }
  if (cf.clip_on) {
    const T clip = T(cf.cell_clip);
    for (int64_t j = 0; j < W; ++j) {
      T v = c[j] < -clip ? -clip : c[j];
      c[j] = v > clip ? clip : v;
    }
  }
}

// o (its peephole looks at the new c_t), then h = o * act(c_t) (act(LN(c_t) g_c + b_c) under layer_norm).
template <typename T>
inline void output(const CellConfig& cf, int64_t H, int64_t W, const T* peep, const T* c, const T* g_c, const T* b_c,
                   const T* one, T* a, T* c_hat, T* rstd_cell, T* cell_out, T* h) {
  if (cf.output_off >= 0) {
    T* ao = a + cf.output_off;
    if (cf.peephole) {
      const T* p = peep + cf.output_k * H;
      for (int64_t j = 0; j < W; ++j) ao[j] += p[j] * c[j];
    }
    activate(cf.gate_activation, ao, W);
  }
  if (cf.layer_norm) {
    double mean, rstd;
    row_stats(c, W, mean, rstd);  // layer_norm: always a whole row, W = H
    const T m = T(mean), s = T(rstd);
    for (int64_t j = 0; j < W; ++j) {
      c_hat[j] = (c[j] - m) * s;
      cell_out[j] = c_hat[j] * g_c[j] + b_c[j];
    }
    *rstd_cell = s;
  } else {
    std::copy(c, c + W, cell_out);
  }
  activate(cf.cell_activation, cell_out, W);
  const T* op = cf.output_off >= 0 ? a + cf.output_off : one;
  for (int64_t j = 0; j < W; ++j) h[j] = op[j] * cell_out[j];
}

// The carried state: padding keeps the previous one, zoneout mixes it in; in place on `state`.
template <typename T>
inline void carry(bool valid, bool zone, const T* prev, const T* km, T kc, int64_t n, T* state) {
  if (!valid) {
    std::copy(prev, prev + n, state);
  } else if (zone) {
    zoneout_mix(state, prev, km, kc, n);
  }
}

// =========================================================================== forward, one call
template <typename T>
Saved forward_impl(const CellConfig& cf, const Tensor& zx, const Tensor& h0, const Tensor& c0, const Params& w,
                   const Masks& mk, Keep keep = {true, true}) {
  const int64_t TT = zx.size(0), B = zx.size(1), GH = zx.size(2), H = c0.size(1), R = h0.size(1);
  const int64_t nH = cf.n * H;
  const bool proj = w.w_hr.defined(), ln = cf.layer_norm, fgr = cf.full_gate_recurrence;
  const bool zone_c = mk.zc_mask.defined() || cf.zoneout_cell >= 0;
  const bool zone_h = mk.zh_mask.defined() || cf.zoneout_hidden >= 0;
  auto opts = zx.options();
  const bool all_acts = keep.save || keep.record;
  const int64_t TS = keep.save ? TT : 1, TA = all_acts ? TT : 1, TC = all_acts ? TT + 1 : 2;
  const int64_t TG = keep.save ? TT : 2;
  // step slots: saved tensors, acts, c_{t-1} / c_t, FGR's gates of step t-1 / t
  auto slot_s = [&](int64_t t) { return keep.save ? t : 0; };
  auto slot_a = [&](int64_t t) { return all_acts ? t : 0; };
  auto slot_c = [&](int64_t t) { return all_acts ? t : t % 2; };
  auto slot_g = [&](int64_t t) { return keep.save ? t : t % 2; };

  Saved sv;
  sv.hs = at::empty({TT + 1, B, R}, opts);
  sv.cs = at::empty({TC, B, H}, opts);
  sv.hs[0].copy_(h0);
  sv.cs[0].copy_(c0);
  sv.acts = at::empty({TA, B, GH}, opts);
  sv.cell_out = at::empty({TS, B, H}, opts);
  if (zone_c) sv.c_step = at::empty({TS, B, H}, opts);
  if (proj) sv.h_cell = at::empty({TS, B, H}, opts);
  if (ln) {
    sv.rec_hat = at::empty({TS, B, GH}, opts);
    sv.rstd_rec = at::empty({TS, B}, opts);
    sv.c_hat = at::empty({TS, B, H}, opts);
    sv.rstd_cell = at::empty({TS, B}, opts);
  }
  if (fgr) sv.prev_gates = at::zeros({TG, B, nH}, opts);
  Tensor rec = at::empty({B, GH}, opts);                                   // h_{t-1} W_hh^T
  Tensor fg = fgr ? at::empty({B, nH}, opts) : Tensor();                   // gates_{t-1} W_gg^T
  Tensor hin = mk.rec_mask.defined() ? at::empty({B, R}, opts) : Tensor();  // h_{t-1} * recurrent_mask
  Tensor hproj = proj ? at::empty({B, R}, opts) : Tensor();                // h_cell W_hr^T
  // Split the work over hidden units (gate columns) when a batch split would leave threads idle:
  // each thread computes the recurrent GEMM for its units' columns of every gate block, then their
  // gate and state maths, in one parallel region per step (no layer norm or FGR: they mix units).
  // With the AVX-512 panels each thread multiplies whole panels (H a multiple of their width); on
  // at::mm, with one-thread BLAS calls, only when the batch split would leave threads idle.
  const int64_t threads = at::get_num_threads();
  const GemmLib lib = bf16_panels(w.low_hh) ? GemmLib::PANEL_BF16 : step_gemm_lib(zx.scalar_type(), B, GH * R);
  const bool units_ok = threads > 1 && !ln && !fgr;
  const bool panel_units = units_ok && (lib == GemmLib::PANEL || lib == GemmLib::PANEL_BF16) &&
                           H % PANEL_WIDTH == 0 && H >= 2 * PANEL_WIDTH;
  const bool blas_units = units_ok && lib == GemmLib::ATEN && rows_gemm_available<T>() &&
                          B < threads * grain_for(GH) && H >= 8 * threads;
  const bool by_units = panel_units || blas_units;
  // units per chunk: whole panels, or at least 8 units
  const int64_t unit_step = panel_units ? PANEL_WIDTH : 1;
  const int64_t unit_grain = panel_units ? 1 : std::max<int64_t>(8, (H + threads - 1) / threads);
  const StepGemm rec_gemm(w.w_hh, blas_units ? 0 : B, TT, w.low_hh);  // h_{t-1} W_hh^T (prepared only when used)
  const std::optional<StepGemm> fgr_gemm = fgr ? std::make_optional<StepGemm>(w.w_gg, B, TT, w.low_gg) : std::nullopt;
  const std::optional<StepGemm> proj_gemm =
      proj ? std::make_optional<StepGemm>(w.w_hr, B, TT, w.low_hr) : std::nullopt;

  std::vector<T> ones(H, T(1));
  const T* one = ones.data();
  const T* zx_p = zx.data_ptr<T>();
  T* rec_p = rec.data_ptr<T>();
  T* hs_p = sv.hs.data_ptr<T>();
  T* cs_p = sv.cs.data_ptr<T>();
  T* acts_p = sv.acts.data_ptr<T>();
  T* tc_p = sv.cell_out.data_ptr<T>();
  T* cstep_p = zone_c ? sv.c_step.data_ptr<T>() : nullptr;
  T* hcell_p = proj ? sv.h_cell.data_ptr<T>() : nullptr;
  T* rech_p = ln ? sv.rec_hat.data_ptr<T>() : nullptr;
  T* rstdh_p = ln ? sv.rstd_rec.data_ptr<T>() : nullptr;
  T* chat_p = ln ? sv.c_hat.data_ptr<T>() : nullptr;
  T* rstdc_p = ln ? sv.rstd_cell.data_ptr<T>() : nullptr;
  T* pg_p = fgr ? sv.prev_gates.data_ptr<T>() : nullptr;
  const T* peep = cf.peephole ? w.w_ch.data_ptr<T>() : nullptr;
  const T* g_hh = ln ? w.ln_hh.data_ptr<T>() : nullptr;
  const T* g_c = ln ? w.ln_cw.data_ptr<T>() : nullptr;
  const T* b_c = ln ? w.ln_cb.data_ptr<T>() : nullptr;
  const T* zcm = mk.zc_mask.defined() ? mk.zc_mask.data_ptr<T>() : nullptr;
  const T* zhm = mk.zh_mask.defined() ? mk.zh_mask.data_ptr<T>() : nullptr;
  const T kc = T(cf.zoneout_cell), kh = T(cf.zoneout_hidden);

  // Units [j0, j0 + W) of row b at step t, after z = zx + rec (+ LN, FGR) is in place for them.
  // tb indexes tensors of every step (hs, masks), sb / ab / cb / gb those kept by slot (Keep).
  auto row = [&](int64_t t, int64_t b, int64_t j0, int64_t W) {
    const int64_t tb = t * B + b, sb = slot_s(t) * B + b, ab = slot_a(t) * B + b;
    const bool valid = t < mk.len[b];
    T* a = acts_p + ab * GH + j0;
    const T* c_prev = cs_p + (slot_c(t) * B + b) * H + j0;
    T* c_next = cs_p + (slot_c(t + 1) * B + b) * H + j0;
    T* c = zone_c ? cstep_p + sb * H + j0 : c_next;
    T* h = proj ? hcell_p + sb * H + j0 : hs_p + (tb + B) * R + j0;
    const T* pj = peep ? peep + j0 : nullptr;
    gates(cf, H, W, pj, c_prev, a);
    cell_update(cf, W, a, one, c_prev, c);
    output(cf, H, W, pj, c, g_c, b_c, one, a, ln ? chat_p + sb * H : nullptr, ln ? rstdc_p + sb : nullptr,
           tc_p + sb * H + j0, h);
    if (!proj) carry(valid, zone_h, hs_p + tb * R + j0, zhm ? zhm + tb * R + j0 : nullptr, kh, W, h);
    if (zone_c) std::copy(c, c + W, c_next);
    carry(valid, zone_c, c_prev, zcm ? zcm + tb * H + j0 : nullptr, kc, W, c_next);
    if (fgr && t + 1 < TT) {  // i, f, o fed to the next step
      T* pn = pg_p + (slot_g(t + 1) * B + b) * nH;
      for (int64_t s = 0; s < cf.n; ++s) std::copy(a + cf.sigmoid_off[s], a + cf.sigmoid_off[s] + H, pn + s * H);
    }
  };
  const T* w_hh_p = w.w_hh.data_ptr<T>();

  for (int64_t t = 0; t < TT; ++t) {
    const Tensor& h_prev = hin.defined() ? at::mul_out(hin, sv.hs[t], mk.rec_mask) : sv.hs[t];
    if (by_units) {
      const T* hp = h_prev.data_ptr<T>();
      if (panel_units) rec_gemm.stage(h_prev);  // bfloat16 panels: h_{t-1} rounded once for every thread
      at::parallel_for(0, H / unit_step, unit_grain, [&](int64_t u0, int64_t u1) {
        const int64_t j0 = u0 * unit_step, j1 = u1 * unit_step, W = j1 - j0;
        for (int64_t off : cf.block_off) {  // rec[:, off + j0 : off + j1] = h_prev W_hh[off + j0 : off + j1]^T
          if (panel_units) {
            rec_gemm.columns(h_prev, rec, off + j0, off + j1);
          } else {
            rows_gemm<T>(B, W, R, hp, w_hh_p + (off + j0) * R, rec_p + off + j0, GH);
          }
        }
        for (int64_t b = 0; b < B; ++b) {
          T* z = acts_p + (slot_a(t) * B + b) * GH;
          const T* zr = zx_p + (t * B + b) * GH;
          const T* rr = rec_p + b * GH;
          for (int64_t off : cf.block_off) {
            for (int64_t j = j0; j < j1; ++j) z[off + j] = zr[off + j] + rr[off + j];
          }
          row(t, b, j0, W);
        }
      });
    } else {
      const Tensor rec_now = rec_gemm(h_prev, rec);  // held: under oneDNN a new tensor every step
      const Tensor fg_now = fgr ? (*fgr_gemm)(sv.prev_gates[slot_g(t)], fg) : Tensor();
      const T* rec_t = rec_now.data_ptr<T>();
      const T* fg_p = fgr ? fg_now.data_ptr<T>() : nullptr;
      at::parallel_for(0, B, grain_for(GH), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t tb = t * B + b, sb = slot_s(t) * B + b;
          preactivation(cf, H, GH, zx_p + tb * GH, rec_t + b * GH, fgr ? fg_p + b * nH : nullptr, g_hh,
                        acts_p + (slot_a(t) * B + b) * GH, ln ? rech_p + sb * GH : nullptr,
                        ln ? rstdh_p + sb : nullptr);
          row(t, b, 0, H);
        }
      });
    }

    if (proj) {  // h_t = W_hr h_cell, then the carry of the projected state
      const Tensor h_proj = (*proj_gemm)(sv.h_cell[slot_s(t)], hproj);  // (B, P)
      const T* hq = h_proj.data_ptr<T>();
      for (int64_t b = 0; b < B; ++b) {
        const int64_t tb = t * B + b;
        T* h = hs_p + (tb + B) * R;
        std::copy(hq + b * R, hq + (b + 1) * R, h);
        carry(t < mk.len[b], zone_h, hs_p + tb * R, zhm ? zhm + tb * R : nullptr, kh, R, h);
      }
    }
  }
  return sv;
}

// ========================================================================== backward, one row
// Adjoint of output: d z_o (into dz), d cell_out (dco, kept for LN's weight gradients) and
// its share of d c_t (added to dc), from dh = d loss / d h_cell.
template <typename T>
inline void output_backward(const CellConfig& cf, int64_t H, const T* a, const T* cell_out, const T* dh,
                            const T* da, const T* dg_carry, const T* peep, const T* c_hat, T rstd_cell,
                            const T* g_c, const T* one, T* dz, T* dco, T* tmp, T* dc) {
  const T* op = cf.output_off >= 0 ? a + cf.output_off : one;
  for (int64_t j = 0; j < H; ++j) dco[j] = dh[j] * op[j];
  times_derivative(cf.cell_activation, cell_out, dco, H);
  if (cf.output_off >= 0) {
    T* dzo = dz + cf.output_off;
    for (int64_t j = 0; j < H; ++j) dzo[j] = dh[j] * cell_out[j];
    if (da) for (int64_t j = 0; j < H; ++j) dzo[j] += da[cf.output_off + j];
    if (dg_carry) for (int64_t j = 0; j < H; ++j) dzo[j] += dg_carry[cf.output_k * H + j];
    times_derivative(cf.gate_activation, op, dzo, H);
    if (cf.peephole) {
      const T* p = peep + cf.output_k * H;
      for (int64_t j = 0; j < H; ++j) dc[j] += dzo[j] * p[j];
    }
  }
  if (cf.layer_norm) {  // back through LN(c_t) * g_c + b_c
    for (int64_t j = 0; j < H; ++j) tmp[j] = dco[j] * g_c[j];
    const double m1 = lane_sum(H, [&](int64_t j) { return double(tmp[j]); });
    const double m2 = lane_sum(H, [&](int64_t j) { return double(tmp[j]) * double(c_hat[j]); });
    const T a1 = T(m1 / double(H)), a2 = T(m2 / double(H));
    for (int64_t j = 0; j < H; ++j) dc[j] += rstd_cell * (tmp[j] - a1 - c_hat[j] * a2);
  } else {
    for (int64_t j = 0; j < H; ++j) dc[j] += dco[j];
  }
}

// Adjoint of cell_update: the clip, then d i, d f, d g (before their activations, into dz) and
// the direct share of d c_{t-1} (dc_prev = dc * f).
template <typename T>
inline void cell_update_backward(const CellConfig& cf, int64_t H, const T* a, const T* one, const T* c_prev,
                                 const T* c, T* dc, T* dz, T* dc_prev) {
  if (cf.clip_on) {
    const T clip = T(cf.cell_clip);
    for (int64_t j = 0; j < H; ++j) dc[j] = (c[j] > -clip && c[j] < clip) ? dc[j] : T(0);
  }
  const T* ip = cf.input_off >= 0 ? a + cf.input_off : one;
  const T* gp = a + cf.candidate_off;
  T* dzg = dz + cf.candidate_off;
  for (int64_t j = 0; j < H; ++j) dzg[j] = dc[j] * ip[j];
  if (cf.input_off >= 0) {
    T* dzi = dz + cf.input_off;
    if (cf.coupled) {
      for (int64_t j = 0; j < H; ++j) dzi[j] = dc[j] * (gp[j] - c_prev[j]);
    } else {
      for (int64_t j = 0; j < H; ++j) dzi[j] = dc[j] * gp[j];
    }
  }
  if (cf.forget_off >= 0) {
    T* dzf = dz + cf.forget_off;
    for (int64_t j = 0; j < H; ++j) dzf[j] = dc[j] * c_prev[j];
  }
  if (cf.coupled) {
    for (int64_t j = 0; j < H; ++j) dc_prev[j] = dc[j] * (T(1) - ip[j]);
  } else {
    const T* fp = cf.forget_off >= 0 ? a + cf.forget_off : one;
    for (int64_t j = 0; j < H; ++j) dc_prev[j] = dc[j] * fp[j];
  }
}

// Adjoint of gates: the recorded gates' gradients (da) and FGR's carry join d i, d f, d g; times
// the activations' derivatives gives d z; the peepholes of i and f add to d c_{t-1}.
template <typename T>
inline void gates_backward(const CellConfig& cf, int64_t H, const T* a, const T* da, const T* dg_carry,
                           const T* peep, T* dz, T* dc_prev) {
  const int64_t offs[2] = {cf.input_off, cf.forget_off};
  const int64_t ks[2] = {cf.input_k, cf.forget_k};
  for (int q = 0; q < 2; ++q) {
    if (offs[q] < 0) continue;
    T* d = dz + offs[q];
    if (da) for (int64_t j = 0; j < H; ++j) d[j] += da[offs[q] + j];
    if (dg_carry) for (int64_t j = 0; j < H; ++j) d[j] += dg_carry[ks[q] * H + j];
    times_derivative(cf.gate_activation, a + offs[q], d, H);
    if (cf.peephole) {
      const T* p = peep + ks[q] * H;
      for (int64_t j = 0; j < H; ++j) dc_prev[j] += d[j] * p[j];
    }
  }
  T* dzg = dz + cf.candidate_off;
  if (da) for (int64_t j = 0; j < H; ++j) dzg[j] += da[cf.candidate_off + j];
  times_derivative(cf.candidate_activation, a + cf.candidate_off, dzg, H);
}

// Adjoint of preactivation: d rec (through LN(rec) * g_hh under layer_norm) and d gates_{t-1} of FGR
// (the i, f, o columns of dz).
template <typename T>
inline void preactivation_backward(const CellConfig& cf, int64_t H, int64_t GH, const T* dz, const T* rec_hat,
                                   T rstd_rec, const T* g_hh, T* tmp, T* drec, T* dS) {
  if (cf.layer_norm) {
    for (int64_t k = 0; k < GH; ++k) tmp[k] = dz[k] * g_hh[k];
    const double m1 = lane_sum(GH, [&](int64_t k) { return double(tmp[k]); });
    const double m2 = lane_sum(GH, [&](int64_t k) { return double(tmp[k]) * double(rec_hat[k]); });
    const T a1 = T(m1 / double(GH)), a2 = T(m2 / double(GH));
    for (int64_t k = 0; k < GH; ++k) drec[k] = rstd_rec * (tmp[k] - a1 - rec_hat[k] * a2);
  }
  if (cf.full_gate_recurrence) {
    for (int64_t s = 0; s < cf.n; ++s) std::copy(dz + cf.sigmoid_off[s], dz + cf.sigmoid_off[s] + H, dS + s * H);
  }
}

// Adjoint of carry, first half: d state -> the step's share (returned in d) and the kept share (keep).
template <typename T>
inline void carry_backward(bool valid, bool zone, const T* km, T kc, int64_t n, T* d, T* keep) {
  if (!valid) {
    std::copy(d, d + n, keep);
    std::fill(d, d + n, T(0));
  } else if (km) {
    for (int64_t j = 0; j < n; ++j) keep[j] = km[j] * d[j], d[j] *= T(1) - km[j];
  } else if (zone) {
    for (int64_t j = 0; j < n; ++j) keep[j] = kc * d[j], d[j] *= T(1) - kc;
  } else {
    std::fill(keep, keep + n, T(0));
  }
}

#include "backward_impl.h"
