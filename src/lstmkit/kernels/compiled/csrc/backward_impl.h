// Backward (BPTT) of one call of lstmkit's compiled kernel: walks t = T-1 .. 0 with the row adjoints of
// kernel_impl.h, one GEMM per step for d h_{t-1}, and the weight gradients with one GEMM over all steps.
// Included at the end of kernel_impl.h (once per instruction set); no include guard on purpose.

// out[k] = sum_n a[n, k] * b[n, k] (b null: sum_n a[n, k]) over n < N rows of K columns, rows
// lda / ldb apart: the per-unit weight gradients (peepholes, layer norm gains) in one pass over
// the saved steps, summed in double, split over columns.
template <typename T>
void column_dot(int64_t N, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* out) {
  at::parallel_for(0, K, 64, [&](int64_t k0, int64_t k1) {
    std::vector<double> acc(size_t(k1 - k0), 0.0);
    double* s = acc.data();
    const int64_t W = k1 - k0;
    for (int64_t n = 0; n < N; ++n) {
      const T* ar = a + n * lda + k0;
      if (b) {
        const T* br = b + n * ldb + k0;
        for (int64_t k = 0; k < W; ++k) s[k] += double(ar[k]) * double(br[k]);
      } else {
        for (int64_t k = 0; k < W; ++k) s[k] += double(ar[k]);
      }
    }
    for (int64_t k = 0; k < W; ++k) out[k0 + k] = T(s[k]);
  });
}

// Gradients of the parameters from the per-step adjoints: one GEMM over all steps for each weight.
template <typename T>
std::vector<Tensor> weight_gradients(const CellConfig& cf, const Tensor& d_hs, const Tensor& d_cs,
                                            const Saved& sv, const Params& w, const Masks& mk, const Tensor& dZ,
                                            const Tensor& dRec, const Tensor& dS, const Tensor& dcout,
                                            const Tensor& dHs, const Tensor& dh, const Tensor& dc) {
  const int64_t TT = sv.acts.size(0), B = sv.acts.size(1), GH = sv.acts.size(2);
  const int64_t H = sv.cs.size(2), R = sv.hs.size(2), nH = cf.n * H;
  std::vector<Tensor> g(NUM_GRADS);
  g[D_ZX] = dZ;
  g[D_H0] = d_hs.defined() ? dh + d_hs[0] : dh;
  g[D_C0] = d_cs.defined() ? dc + d_cs[0] : dc;
  Tensor hin = sv.hs.narrow(0, 0, TT);
  if (mk.rec_mask.defined()) hin = hin * mk.rec_mask;
  // A bfloat16 call with AVX512-BF16 takes these products in bfloat16 as well (float32 sums, one
  // rounding of the result, which is returned in bfloat16 anyway); dZ is rounded once, also for d zx.
  const bool bf16 = bf16_panels(w.low_hh);
  const Tensor dRec_w = bf16 ? dRec.to(at::kBFloat16) : dRec;
  if (bf16 && dRec.is_same(dZ)) g[D_ZX] = dRec_w;
  auto product = [&](const Tensor& a, const Tensor& b) {
    return bf16 ? at::mm(a.to(at::kBFloat16), b.to(at::kBFloat16)) : weight_matmul(a, b);
  };
  g[D_W_HH] = product(dRec_w.reshape({TT * B, GH}).t(), hin.reshape({TT * B, R}));
  if (w.w_hr.defined()) g[D_W_HR] = product(dHs.reshape({TT * B, R}).t(), sv.h_cell.reshape({TT * B, H}));
  if (cf.full_gate_recurrence) {
    g[D_W_GG] = product(dS.reshape({TT * B, nH}).t(), sv.prev_gates.reshape({TT * B, nH}));
  }
  const int64_t N = TT * B;
  const T* dz = dZ.data_ptr<T>();
  if (cf.peephole) {  // i and f saw c_{t-1}, o saw c_t (before zoneout); rows i, f, o of w_ch
    g[D_W_CH] = at::empty({nH}, dZ.options());
    T* out = g[D_W_CH].data_ptr<T>();
    const T* c_prev = sv.cs.data_ptr<T>();
    const T* c_new = sv.c_step.defined() ? sv.c_step.data_ptr<T>() : c_prev + B * H;
    if (cf.input_off >= 0) column_dot(N, H, dz + cf.input_off, GH, c_prev, H, out + cf.input_k * H);
    if (cf.forget_off >= 0) column_dot(N, H, dz + cf.forget_off, GH, c_prev, H, out + cf.forget_k * H);
    if (cf.output_off >= 0) column_dot(N, H, dz + cf.output_off, GH, c_new, H, out + cf.output_k * H);
  }
  if (cf.layer_norm) {
    g[D_LN_HH] = at::empty({GH}, dZ.options());
    g[D_LN_CW] = at::empty({H}, dZ.options());
    g[D_LN_CB] = at::empty({H}, dZ.options());
    column_dot(N, GH, dz, GH, sv.rec_hat.data_ptr<T>(), GH, g[D_LN_HH].data_ptr<T>());
    column_dot(N, H, dcout.data_ptr<T>(), H, sv.c_hat.data_ptr<T>(), H, g[D_LN_CW].data_ptr<T>());
    column_dot<T>(N, H, dcout.data_ptr<T>(), H, nullptr, 0, g[D_LN_CB].data_ptr<T>());
  }
  return g;
}

// The gradients backward returns, in the order of BackwardSlot.
template <typename T>
std::vector<Tensor> backward_impl(const CellConfig& cf, const Tensor& d_hs, const Tensor& d_cs, const Tensor& d_acts,
                                  const Saved& sv, const Params& w, const Masks& mk) {
  const int64_t TT = sv.acts.size(0), B = sv.acts.size(1), GH = sv.acts.size(2);
  const int64_t H = sv.cs.size(2), R = sv.hs.size(2), nH = cf.n * H;
  const bool proj = w.w_hr.defined(), ln = cf.layer_norm, fgr = cf.full_gate_recurrence;
  auto opts = sv.acts.options();

  Tensor dZ = at::empty({TT, B, GH}, opts);                        // d loss / d z, every step
  Tensor dRec = ln ? at::empty({TT, B, GH}, opts) : dZ;            // d loss / d rec (before LN)
  Tensor dS = fgr ? at::empty({TT, B, nH}, opts) : Tensor();       // d loss / d z of i, f, o (FGR)
  Tensor dcout = ln ? at::empty({TT, B, H}, opts) : Tensor();      // d loss / d (LN(c_t) g_c + b_c)
  Tensor dHs = proj ? at::empty({TT, B, R}, opts) : Tensor();      // d loss / d (projected h_t)
  Tensor dhp = proj ? at::empty({B, H}, opts) : Tensor();          // d loss / d h_cell
  Tensor dh = at::zeros({B, R}, opts);                             // carried d loss / d h_t
  Tensor dc = at::zeros({B, H}, opts);                             // carried d loss / d c_t
  Tensor dh_rec = at::empty({B, R}, opts);                         // dRec_t W_hh
  Tensor dh_keep = at::empty({B, R}, opts);                        // zoneout / padding path of h
  Tensor dgc = fgr ? at::zeros({B, nH}, opts) : Tensor();          // carried d loss / d gates_t (FGR)
  const int64_t threads = at::get_num_threads(), stride = 4 * H + GH;
  Tensor scratch = at::empty({threads, stride}, opts);             // one row per thread, reused every step

  const T* dhs_p = d_hs.defined() ? d_hs.data_ptr<T>() : nullptr;
  const T* dcs_p = d_cs.defined() ? d_cs.data_ptr<T>() : nullptr;
  const T* dacts_p = d_acts.defined() ? d_acts.data_ptr<T>() : nullptr;
  const T* cs_p = sv.cs.data_ptr<T>();
  const T* acts_p = sv.acts.data_ptr<T>();
  const T* tc_p = sv.cell_out.data_ptr<T>();
  const T* cstep_p = sv.c_step.defined() ? sv.c_step.data_ptr<T>() : nullptr;
  const T* rech_p = ln ? sv.rec_hat.data_ptr<T>() : nullptr;
  const T* rstdh_p = ln ? sv.rstd_rec.data_ptr<T>() : nullptr;
  const T* chat_p = ln ? sv.c_hat.data_ptr<T>() : nullptr;
  const T* rstdc_p = ln ? sv.rstd_cell.data_ptr<T>() : nullptr;
  const T* peep = cf.peephole ? w.w_ch.data_ptr<T>() : nullptr;
  const T* g_hh = ln ? w.ln_hh.data_ptr<T>() : nullptr;
  const T* g_c = ln ? w.ln_cw.data_ptr<T>() : nullptr;
  const T* zcm = mk.zc_mask.defined() ? mk.zc_mask.data_ptr<T>() : nullptr;
  const T* zhm = mk.zh_mask.defined() ? mk.zh_mask.data_ptr<T>() : nullptr;
  const T* rm = mk.rec_mask.defined() ? mk.rec_mask.data_ptr<T>() : nullptr;
  T* dZ_p = dZ.data_ptr<T>();
  T* dRec_p = dRec.data_ptr<T>();
  T* dS_p = fgr ? dS.data_ptr<T>() : nullptr;
  T* dcout_p = ln ? dcout.data_ptr<T>() : nullptr;
  T* dHs_p = proj ? dHs.data_ptr<T>() : nullptr;
  T* dh_p = dh.data_ptr<T>();
  T* dc_p = dc.data_ptr<T>();
  T* dhk_p = dh_keep.data_ptr<T>();
  T* dgc_p = fgr ? dgc.data_ptr<T>() : nullptr;
  T* scratch_p = scratch.data_ptr<T>();
  const bool zone_c = zcm || cf.zoneout_cell >= 0;
  const bool zone_h = zhm || cf.zoneout_hidden >= 0;
  const T kc = T(cf.zoneout_cell), kh = T(cf.zoneout_hidden);
  std::vector<T> ones(H, T(1));
  const T* one = ones.data();
  const StepGemm back_gemm(w.w_hh.t(), B, TT, transposed(w.low_hh));  // dRec_t (B, G*H) @ W_hh (G*H, R)
  const std::optional<StepGemm> proj_gemm =
      proj ? std::make_optional<StepGemm>(w.w_hr.t(), B, TT, transposed(w.low_hr)) : std::nullopt;
  const std::optional<StepGemm> fgr_gemm =
      fgr ? std::make_optional<StepGemm>(w.w_gg.t(), B, TT, transposed(w.low_gg)) : std::nullopt;

  for (int64_t t = TT - 1; t >= 0; --t) {
    // adjoint of the hidden state's carry: the step's share stays in dh, the kept share goes to dh_keep
    for (int64_t b = 0; b < B; ++b) {
      const int64_t tb = t * B + b;
      T* d = dh_p + b * R;
      if (dhs_p) {
        const T* g = dhs_p + (tb + B) * R;
        for (int64_t j = 0; j < R; ++j) d[j] += g[j];
      }
      carry_backward(t < mk.len[b], zone_h, zhm ? zhm + tb * R : nullptr, kh, R, d, dhk_p + b * R);
      if (proj) std::copy(d, d + R, dHs_p + tb * R);
    }
    const Tensor dh_cell_now = proj ? (*proj_gemm)(dh, dhp) : dh;  // d h_cell = d h_t W_hr, (B, H)
    const T* dh_cell = dh_cell_now.data_ptr<T>();

    at::parallel_for(0, B, grain_for(GH), [&](int64_t b0, int64_t b1) {
      const int64_t tid = at::get_thread_num();
      std::vector<T> spare(tid < threads ? 0 : stride);  // only if the thread pool grew under us
      T* s = tid < threads ? scratch_p + tid * stride : spare.data();
      T* dcs = s;          // d loss / d c_t of the step (H)
      T* keep = s + H;     // the share of d c_t that zoneout or padding carries to c_{t-1} (H)
      T* dco_tmp = keep + H;
      T* tmp = dco_tmp + H;  // H, then G*H
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t tb = t * B + b;
        const bool valid = t < mk.len[b];
        T* dz = dZ_p + tb * GH;
        T* dc_prev = dc_p + b * H;  // in: d loss / d c_t carried; out: d loss / d c_{t-1}
        std::copy(dc_prev, dc_prev + H, dcs);
        if (dcs_p) {
          const T* g = dcs_p + (tb + B) * H;
          for (int64_t j = 0; j < H; ++j) dcs[j] += g[j];
        }
        carry_backward(valid, zone_c, zcm ? zcm + tb * H : nullptr, kc, H, dcs, keep);
        if (!valid) {  // padding: the state passes through, the step gets nothing
          std::fill(dz, dz + GH, T(0));
          if (ln) {
            std::fill(dRec_p + tb * GH, dRec_p + (tb + 1) * GH, T(0));
            std::fill(dcout_p + tb * H, dcout_p + (tb + 1) * H, T(0));
          }
          if (fgr) std::fill(dS_p + tb * nH, dS_p + (tb + 1) * nH, T(0));
          std::copy(keep, keep + H, dc_prev);
          continue;
        }
        const T* a = acts_p + tb * GH;
        const T* da = dacts_p ? dacts_p + tb * GH : nullptr;
        const T* dg_carry = fgr ? dgc_p + b * nH : nullptr;
        const T* c_prev = cs_p + tb * H;
        const T* c = zone_c ? cstep_p + tb * H : cs_p + (tb + B) * H;
        T* dco = ln ? dcout_p + tb * H : dco_tmp;
        output_backward(cf, H, a, tc_p + tb * H, dh_cell + b * H, da, dg_carry, peep, ln ? chat_p + tb * H : nullptr,
                        ln ? rstdc_p[tb] : T(0), g_c, one, dz, dco, tmp, dcs);
        cell_update_backward(cf, H, a, one, c_prev, c, dcs, dz, dc_prev);
        gates_backward(cf, H, a, da, dg_carry, peep, dz, dc_prev);
        preactivation_backward(cf, H, GH, dz, ln ? rech_p + tb * GH : nullptr, ln ? rstdh_p[tb] : T(0), g_hh, tmp,
                               dRec_p + tb * GH, fgr ? dS_p + tb * nH : nullptr);
        if (zone_c) for (int64_t j = 0; j < H; ++j) dc_prev[j] += keep[j];
      }
    });

    // d loss / d h_{t-1} = (dRec_t W_hh) * recurrent_mask + the kept share
    const Tensor dh_rec_now = back_gemm(dRec[t], dh_rec);  // held: under oneDNN a new tensor every step
    const T* dhr_p = dh_rec_now.data_ptr<T>();
    for (int64_t b = 0; b < B; ++b) {
      T* d = dh_p + b * R;
      const T* g = dhr_p + b * R;
      const T* k = dhk_p + b * R;
      if (rm) {
        const T* m = rm + b * R;
        for (int64_t j = 0; j < R; ++j) d[j] = g[j] * m[j] + k[j];
      } else {
        for (int64_t j = 0; j < R; ++j) d[j] = g[j] + k[j];
      }
    }
    if (fgr) dgc.copy_((*fgr_gemm)(dS[t], dgc));  // d loss / d gates_{t-1}
  }
  return weight_gradients<T>(cf, d_hs, d_cs, sv, w, mk, dZ, dRec, dS, dcout, dHs, dh, dc);
}
