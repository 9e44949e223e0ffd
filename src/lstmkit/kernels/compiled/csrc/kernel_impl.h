// The forward and backward loops of lstmkit's compiled kernel. lstm.cpp includes this file twice,
// inside namespace lstmkit::generic (baseline x86-64 code) and inside lstmkit::avx2 (compiled for
// AVX2 + FMA, chosen at run time only on CPUs that have both); no include guard on purpose.
// Expects Tensor, OptTensor, Config and LN_EPS from the enclosing file.

#include "activations.h"

// Mean and 1/sqrt(var + eps) of x[0..n) (biased variance, two passes).
template <typename T>
inline void row_stats(const T* x, int64_t n, double& mean, double& rstd) {
  double s = 0;
  for (int64_t k = 0; k < n; ++k) s += x[k];
  mean = s / double(n);
  double v = 0;
  for (int64_t k = 0; k < n; ++k) {
    double d = double(x[k]) - mean;
    v += d * d;
  }
  rstd = 1.0 / std::sqrt(v / double(n) + LN_EPS);
}

inline int64_t grain_for(int64_t row_work) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, row_work)); }

// ------------------------------------------------------------------------------------ forward
template <typename T>
std::vector<Tensor> forward_impl(const Config& cf, const Tensor& zx, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_hh, const Tensor& w_hr, const Tensor& w_ch, const Tensor& w_gg,
                                 const Tensor& ln_hh, const Tensor& ln_cw, const Tensor& ln_cb,
                                 const Tensor& rec_mask, const Tensor& zc_mask, const Tensor& zh_mask,
                                 const std::vector<int64_t>& len) {
  const int64_t TT = zx.size(0), B = zx.size(1), GH = zx.size(2), H = c0.size(1), R = h0.size(1);
  const int64_t n = cf.n, nH = cf.n * H;
  const bool proj = w_hr.defined();
  const bool zone_c = zc_mask.defined() || cf.zc_p >= 0;
  auto opts = zx.options();

  Tensor hs = at::empty({TT + 1, B, R}, opts);  // h_0 .. h_T (states after zoneout and padding)
  Tensor cs = at::empty({TT + 1, B, H}, opts);  // c_0 .. c_T
  hs[0].copy_(h0);
  cs[0].copy_(c0);
  Tensor acts = at::empty({TT, B, GH}, opts);                             // gate activations
  Tensor tc = at::empty({TT, B, H}, opts);                                // act(c_t) or act(LN(c_t))
  Tensor cstep = zone_c ? at::empty({TT, B, H}, opts) : Tensor();        // c_t before zoneout
  Tensor hpre = proj ? at::empty({TT, B, H}, opts) : Tensor();           // h_t before projection
  Tensor rec_hat = cf.ln ? at::empty({TT, B, GH}, opts) : Tensor();      // normalised rec
  Tensor rstd_hh = cf.ln ? at::empty({TT, B}, opts) : Tensor();
  Tensor xhat_c = cf.ln ? at::empty({TT, B, H}, opts) : Tensor();        // normalised c_t
  Tensor rstd_c = cf.ln ? at::empty({TT, B}, opts) : Tensor();
  Tensor pg = cf.fgr ? at::zeros({TT, B, nH}, opts) : Tensor();          // i, f, o of step t-1
  Tensor rec = at::empty({B, GH}, opts);
  Tensor fg = cf.fgr ? at::empty({B, nH}, opts) : Tensor();
  Tensor hin = rec_mask.defined() ? at::empty({B, R}, opts) : Tensor();
  Tensor hproj = proj ? at::empty({B, R}, opts) : Tensor();
  // rec = h W_hh^T with W_hh packed once (MKL, float32) or a transposed copy (R, G*H)
  const PackedRight rec_gemm(w_hh, /*trans=*/true, B, GH, R);
  Tensor w_gg_t = cf.fgr ? w_gg.t().contiguous() : Tensor();
  Tensor w_hr_t = proj ? w_hr.t().contiguous() : Tensor();

  std::vector<T> ones(H, T(1));
  const T* one = ones.data();
  const T* zx_p = zx.data_ptr<T>();
  const T* rec_p = rec.data_ptr<T>();
  const T* fg_p = cf.fgr ? fg.data_ptr<T>() : nullptr;
  T* hs_p = hs.data_ptr<T>();
  T* cs_p = cs.data_ptr<T>();
  T* acts_p = acts.data_ptr<T>();
  T* tc_p = tc.data_ptr<T>();
  T* cstep_p = zone_c ? cstep.data_ptr<T>() : nullptr;
  T* hpre_p = proj ? hpre.data_ptr<T>() : nullptr;
  T* rech_p = cf.ln ? rec_hat.data_ptr<T>() : nullptr;
  T* rstdh_p = cf.ln ? rstd_hh.data_ptr<T>() : nullptr;
  T* xhc_p = cf.ln ? xhat_c.data_ptr<T>() : nullptr;
  T* rstdc_p = cf.ln ? rstd_c.data_ptr<T>() : nullptr;
  T* pg_p = cf.fgr ? pg.data_ptr<T>() : nullptr;
  const T* pw = cf.peephole ? w_ch.data_ptr<T>() : nullptr;
  const T* g_hh = cf.ln ? ln_hh.data_ptr<T>() : nullptr;
  const T* g_c = cf.ln ? ln_cw.data_ptr<T>() : nullptr;
  const T* b_c = cf.ln ? ln_cb.data_ptr<T>() : nullptr;
  const T* zcm = zc_mask.defined() ? zc_mask.data_ptr<T>() : nullptr;
  const T* zhm = zh_mask.defined() ? zh_mask.data_ptr<T>() : nullptr;
  const T kc = T(cf.zc_p), kh = T(cf.zh_p);
  const T clip = T(cf.clip);

  for (int64_t t = 0; t < TT; ++t) {
    Tensor h_prev = hs[t];
    if (hin.defined()) {
      at::mul_out(hin, h_prev, rec_mask);
      rec_gemm.mm(rec, hin);
    } else {
      rec_gemm.mm(rec, h_prev);
    }
    if (cf.fgr) at::mm_out(fg, pg[t], w_gg_t);

    at::parallel_for(0, B, grain_for(GH), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t tb = t * B + b;
        const bool valid = t < len[b];
        const T* zr = zx_p + tb * GH;
        const T* rr = rec_p + b * GH;
        T* a = acts_p + tb * GH;
        const T* cp = cs_p + tb * H;
        T* cn = cs_p + (tb + B) * H;
        T* cst = zone_c ? cstep_p + tb * H : cn;
        // pre-activations z = zx + rec (normalised under layer_norm)
        if (cf.ln) {
          double mean, rstd;
          row_stats(rr, GH, mean, rstd);
          T* rh = rech_p + tb * GH;
          const T m = T(mean), s = T(rstd);
          for (int64_t k = 0; k < GH; ++k) {
            rh[k] = (rr[k] - m) * s;
            a[k] = zr[k] + rh[k] * g_hh[k];
          }
          rstdh_p[tb] = s;
        } else {
          for (int64_t k = 0; k < GH; ++k) a[k] = zr[k] + rr[k];
        }
        if (cf.fgr) {
          const T* fr = fg_p + b * nH;
          for (int64_t s = 0; s < n; ++s) {
            T* ag = a + cf.sig_off[s];
            const T* fs = fr + s * H;
            for (int64_t j = 0; j < H; ++j) ag[j] += fs[j];
          }
        }
        if (cf.peephole) {  // i and f look at c_{t-1}
          if (cf.off_i >= 0) {
            T* ai = a + cf.off_i;
            const T* p = pw + cf.sig_i * H;
            for (int64_t j = 0; j < H; ++j) ai[j] += p[j] * cp[j];
          }
          if (cf.off_f >= 0) {
            T* af = a + cf.off_f;
            const T* p = pw + cf.sig_f * H;
            for (int64_t j = 0; j < H; ++j) af[j] += p[j] * cp[j];
          }
        }
        if (cf.off_i >= 0) activate(cf.gact, a + cf.off_i, H);
        if (cf.off_f >= 0) activate(cf.gact, a + cf.off_f, H);
        activate(cf.cact, a + cf.off_g, H);
        // c_t = f * c_{t-1} + i * g  (f = 1 - i under CIFG; a removed gate is 1)
        const T* ip = cf.off_i >= 0 ? a + cf.off_i : one;
        const T* gp = a + cf.off_g;
        if (cf.coupled) {
          for (int64_t j = 0; j < H; ++j) cst[j] = (T(1) - ip[j]) * cp[j] + ip[j] * gp[j];
        } else {
          const T* fp = cf.off_f >= 0 ? a + cf.off_f : one;
          for (int64_t j = 0; j < H; ++j) cst[j] = fp[j] * cp[j] + ip[j] * gp[j];
        }
        if (cf.clip_on) {
          for (int64_t j = 0; j < H; ++j) {
            T v = cst[j] < -clip ? -clip : cst[j];
            cst[j] = v > clip ? clip : v;
          }
        }
        if (cf.off_o >= 0) {  // o looks at the new c_t
          T* ao = a + cf.off_o;
          if (cf.peephole) {
            const T* p = pw + cf.sig_o * H;
            for (int64_t j = 0; j < H; ++j) ao[j] += p[j] * cst[j];
          }
          activate(cf.gact, ao, H);
        }
        // h_t = o * act(c_t)  (act(LN(c_t)) under layer_norm)
        T* tcr = tc_p + tb * H;
        if (cf.ln) {
          double mean, rstd;
          row_stats(cst, H, mean, rstd);
          T* xh = xhc_p + tb * H;
          const T m = T(mean), s = T(rstd);
          for (int64_t j = 0; j < H; ++j) {
            xh[j] = (cst[j] - m) * s;
            tcr[j] = xh[j] * g_c[j] + b_c[j];
          }
          rstdc_p[tb] = s;
        } else {
          std::copy(cst, cst + H, tcr);
        }
        activate(cf.oact, tcr, H);
        const T* op = cf.off_o >= 0 ? a + cf.off_o : one;
        if (proj) {
          T* hp = hpre_p + tb * H;
          for (int64_t j = 0; j < H; ++j) hp[j] = op[j] * tcr[j];
        } else {
          const T* hp = hs_p + tb * R;
          T* hn = hs_p + (tb + B) * R;
          if (!valid) {
            std::copy(hp, hp + R, hn);
          } else if (zhm) {
            const T* k = zhm + tb * R;
            for (int64_t j = 0; j < H; ++j) hn[j] = k[j] * hp[j] + (T(1) - k[j]) * (op[j] * tcr[j]);
          } else if (cf.zh_p >= 0) {
            for (int64_t j = 0; j < H; ++j) hn[j] = kh * hp[j] + (T(1) - kh) * (op[j] * tcr[j]);
          } else {
            for (int64_t j = 0; j < H; ++j) hn[j] = op[j] * tcr[j];
          }
        }
        // the carried cell state: zoneout, and padding keeps c_{t-1}
        if (!valid) {
          std::copy(cp, cp + H, cn);
        } else if (zcm) {
          const T* k = zcm + tb * H;
          for (int64_t j = 0; j < H; ++j) cn[j] = k[j] * cp[j] + (T(1) - k[j]) * cst[j];
        } else if (cf.zc_p >= 0) {
          for (int64_t j = 0; j < H; ++j) cn[j] = kc * cp[j] + (T(1) - kc) * cst[j];
        }
        if (cf.fgr && t + 1 < TT) {  // gates fed to the next step
          T* pn = pg_p + (tb + B) * nH;
          for (int64_t s = 0; s < n; ++s) std::copy(a + cf.sig_off[s], a + cf.sig_off[s] + H, pn + s * H);
        }
      }
    });

    if (proj) {
      at::mm_out(hproj, hpre[t], w_hr_t);  // (B, P)
      const T* hq = hproj.data_ptr<T>();
      for (int64_t b = 0; b < B; ++b) {
        const int64_t tb = t * B + b;
        const T* hp = hs_p + tb * R;
        T* hn = hs_p + (tb + B) * R;
        const T* q = hq + b * R;
        if (t >= len[b]) {
          std::copy(hp, hp + R, hn);
        } else if (zhm) {
          const T* k = zhm + tb * R;
          for (int64_t j = 0; j < R; ++j) hn[j] = k[j] * hp[j] + (T(1) - k[j]) * q[j];
        } else if (cf.zh_p >= 0) {
          for (int64_t j = 0; j < R; ++j) hn[j] = kh * hp[j] + (T(1) - kh) * q[j];
        } else {
          std::copy(q, q + R, hn);
        }
      }
    }
  }
  return {hs, cs, acts, tc, cstep, hpre, rec_hat, rstd_hh, xhat_c, rstd_c, pg};
}

// ----------------------------------------------------------------------------------- backward
template <typename T>
std::vector<Tensor> backward_impl(const Config& cf, const Tensor& d_hs, const Tensor& d_cs, const Tensor& d_acts,
                                  const Tensor& hs, const Tensor& cs, const Tensor& acts, const Tensor& tc,
                                  const Tensor& cstep, const Tensor& hpre, const Tensor& rec_hat,
                                  const Tensor& rstd_hh, const Tensor& xhat_c, const Tensor& rstd_c, const Tensor& pg,
                                  const Tensor& w_hh, const Tensor& w_hr, const Tensor& w_ch, const Tensor& w_gg,
                                  const Tensor& ln_hh, const Tensor& ln_cw, const Tensor& rec_mask,
                                  const Tensor& zc_mask, const Tensor& zh_mask, const std::vector<int64_t>& len) {
  const int64_t TT = acts.size(0), B = acts.size(1), GH = acts.size(2), H = cs.size(2), R = hs.size(2);
  const int64_t n = cf.n, nH = cf.n * H;
  const bool proj = w_hr.defined();
  auto opts = acts.options();

  Tensor dZ = at::empty({TT, B, GH}, opts);                         // d loss / d z, every step
  Tensor dRec = cf.ln ? at::empty({TT, B, GH}, opts) : dZ;          // d loss / d rec (before LN)
  Tensor dS = cf.fgr ? at::empty({TT, B, nH}, opts) : Tensor();     // dZ of the n gates i, f, o
  Tensor dcout = cf.ln ? at::empty({TT, B, H}, opts) : Tensor();    // d loss / d LN(c_t)
  Tensor dHs = proj ? at::empty({TT, B, R}, opts) : Tensor();       // d loss / d (projected h_t)
  Tensor dhp = proj ? at::empty({B, H}, opts) : Tensor();           // d loss / d h_t before projection
  Tensor dh = at::zeros({B, R}, opts);                              // carried d loss / d h_t
  Tensor dc = at::zeros({B, H}, opts);                              // carried d loss / d c_t
  Tensor dh_rec = at::empty({B, R}, opts);                          // dRec_t W_hh
  Tensor dh_direct = at::empty({B, R}, opts);                       // zoneout / padding path
  Tensor dgc = cf.fgr ? at::zeros({B, nH}, opts) : Tensor();        // carried d loss / d gates_t

  const T* dhs_p = d_hs.defined() ? d_hs.data_ptr<T>() : nullptr;
  const T* dcs_p = d_cs.defined() ? d_cs.data_ptr<T>() : nullptr;
  const T* dacts_p = d_acts.defined() ? d_acts.data_ptr<T>() : nullptr;
  const T* cs_p = cs.data_ptr<T>();
  const T* acts_p = acts.data_ptr<T>();
  const T* tc_p = tc.data_ptr<T>();
  const T* cstep_p = cstep.defined() ? cstep.data_ptr<T>() : nullptr;
  const T* rech_p = cf.ln ? rec_hat.data_ptr<T>() : nullptr;
  const T* rstdh_p = cf.ln ? rstd_hh.data_ptr<T>() : nullptr;
  const T* xhc_p = cf.ln ? xhat_c.data_ptr<T>() : nullptr;
  const T* rstdc_p = cf.ln ? rstd_c.data_ptr<T>() : nullptr;
  const T* pw = cf.peephole ? w_ch.data_ptr<T>() : nullptr;
  const T* g_hh = cf.ln ? ln_hh.data_ptr<T>() : nullptr;
  const T* g_c = cf.ln ? ln_cw.data_ptr<T>() : nullptr;
  const T* zcm = zc_mask.defined() ? zc_mask.data_ptr<T>() : nullptr;
  const T* zhm = zh_mask.defined() ? zh_mask.data_ptr<T>() : nullptr;
  const T* rm = rec_mask.defined() ? rec_mask.data_ptr<T>() : nullptr;
  T* dZ_p = dZ.data_ptr<T>();
  T* dRec_p = dRec.data_ptr<T>();
  T* dS_p = cf.fgr ? dS.data_ptr<T>() : nullptr;
  T* dcout_p = cf.ln ? dcout.data_ptr<T>() : nullptr;
  T* dHs_p = proj ? dHs.data_ptr<T>() : nullptr;
  T* dhp_p = proj ? dhp.data_ptr<T>() : nullptr;
  T* dh_p = dh.data_ptr<T>();
  T* dc_p = dc.data_ptr<T>();
  T* dhr_p = dh_rec.data_ptr<T>();
  T* dhd_p = dh_direct.data_ptr<T>();
  T* dgc_p = cf.fgr ? dgc.data_ptr<T>() : nullptr;
  const bool zone_c = zcm || cf.zc_p >= 0;
  const bool zone_h = zhm || cf.zh_p >= 0;
  const T kc = T(cf.zc_p), kh = T(cf.zh_p);
  const T clip = T(cf.clip);
  std::vector<T> ones(H, T(1));
  const T* one = ones.data();
  const PackedRight back_gemm(w_hh, /*trans=*/false, B, R, GH);  // dRec_t (B, G*H) @ W_hh (G*H, R)

  for (int64_t t = TT - 1; t >= 0; --t) {
    // dh = d loss / d h_t (state after zoneout and padding); split into the step's share and
    // the direct path to h_{t-1} (zoneout keeps, padding copies).
    for (int64_t b = 0; b < B; ++b) {
      const int64_t tb = t * B + b;
      const bool valid = t < len[b];
      T* d = dh_p + b * R;
      T* dd = dhd_p + b * R;
      if (dhs_p) {
        const T* g = dhs_p + (tb + B) * R;
        for (int64_t j = 0; j < R; ++j) d[j] += g[j];
      }
      if (!valid) {
        std::copy(d, d + R, dd);
        std::fill(d, d + R, T(0));
      } else if (zhm) {
        const T* k = zhm + tb * R;
        for (int64_t j = 0; j < R; ++j) dd[j] = k[j] * d[j], d[j] *= T(1) - k[j];
      } else if (zone_h) {
        for (int64_t j = 0; j < R; ++j) dd[j] = kh * d[j], d[j] *= T(1) - kh;
      } else {
        std::fill(dd, dd + R, T(0));
      }
      if (proj) std::copy(d, d + R, dHs_p + tb * R);
    }
    if (proj) at::mm_out(dhp, dh, w_hr);  // (B, H)
    const T* dhv_base = proj ? dhp_p : dh_p;

    at::parallel_for(0, B, grain_for(GH), [&](int64_t b0, int64_t b1) {
      std::vector<T> scratch(4 * H + GH);
      T* s0 = scratch.data();  // d loss / d c_t (carried state)
      T* dcs = s0 + H;         // d loss / d c_t of the step (before zoneout mixing)
      T* s1 = dcs + H;
      T* s2 = s1 + H;
      T* s3 = s2 + H;  // GH
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t tb = t * B + b;
        T* dz = dZ_p + tb * GH;
        T* dcn = dc_p + b * H;
        for (int64_t j = 0; j < H; ++j) s0[j] = dcn[j];
        if (dcs_p) {
          const T* g = dcs_p + (tb + B) * H;
          for (int64_t j = 0; j < H; ++j) s0[j] += g[j];
        }
        if (t >= len[b]) {  // padding: the state passes through, the step gets nothing
          std::fill(dz, dz + GH, T(0));
          if (cf.ln) {
            std::fill(dRec_p + tb * GH, dRec_p + (tb + 1) * GH, T(0));
            std::fill(dcout_p + tb * H, dcout_p + (tb + 1) * H, T(0));
          }
          if (cf.fgr) std::fill(dS_p + tb * nH, dS_p + (tb + 1) * nH, T(0));
          std::copy(s0, s0 + H, dcn);
          continue;
        }
        const T* a = acts_p + tb * GH;
        const T* da = dacts_p ? dacts_p + tb * GH : nullptr;
        const T* dg_carry = cf.fgr ? dgc_p + b * nH : nullptr;
        const T* cp = cs_p + tb * H;
        const T* cst = zone_c ? cstep_p + tb * H : cs_p + (tb + B) * H;
        const T* tcr = tc_p + tb * H;
        const T* dhv = dhv_base + b * H;
        const T* ip = cf.off_i >= 0 ? a + cf.off_i : one;
        const T* gp = a + cf.off_g;
        const T* op = cf.off_o >= 0 ? a + cf.off_o : one;
        if (zcm) {
          const T* k = zcm + tb * H;
          for (int64_t j = 0; j < H; ++j) dcs[j] = (T(1) - k[j]) * s0[j];
        } else if (zone_c) {
          for (int64_t j = 0; j < H; ++j) dcs[j] = (T(1) - kc) * s0[j];
        } else {
          std::copy(s0, s0 + H, dcs);
        }
        // output gate and the cell activation
        T* dco = cf.ln ? dcout_p + tb * H : s1;
        for (int64_t j = 0; j < H; ++j) dco[j] = dhv[j] * op[j];
        times_derivative(cf.oact, tcr, dco, H);
        T* dzo = cf.off_o >= 0 ? dz + cf.off_o : nullptr;
        if (dzo) {
          for (int64_t j = 0; j < H; ++j) dzo[j] = dhv[j] * tcr[j];
          if (da) for (int64_t j = 0; j < H; ++j) dzo[j] += da[cf.off_o + j];
          if (dg_carry) for (int64_t j = 0; j < H; ++j) dzo[j] += dg_carry[cf.sig_o * H + j];
          times_derivative(cf.gact, op, dzo, H);
        }
        if (cf.ln) {  // back through LN(c_t) * g + b
          const T* xh = xhc_p + tb * H;
          const T s = rstdc_p[tb];
          double m1 = 0, m2 = 0;
          for (int64_t j = 0; j < H; ++j) {
            s2[j] = dco[j] * g_c[j];
            m1 += s2[j];
            m2 += s2[j] * xh[j];
          }
          const T a1 = T(m1 / double(H)), a2 = T(m2 / double(H));
          for (int64_t j = 0; j < H; ++j) dcs[j] += s * (s2[j] - a1 - xh[j] * a2);
        } else {
          for (int64_t j = 0; j < H; ++j) dcs[j] += dco[j];
        }
        if (cf.peephole && dzo) {
          const T* p = pw + cf.sig_o * H;
          for (int64_t j = 0; j < H; ++j) dcs[j] += dzo[j] * p[j];
        }
        if (cf.clip_on) {
          for (int64_t j = 0; j < H; ++j) dcs[j] = (cst[j] > -clip && cst[j] < clip) ? dcs[j] : T(0);
        }
        // candidate, input, forget
        T* dzg = dz + cf.off_g;
        for (int64_t j = 0; j < H; ++j) dzg[j] = dcs[j] * ip[j];
        if (da) for (int64_t j = 0; j < H; ++j) dzg[j] += da[cf.off_g + j];
        times_derivative(cf.cact, gp, dzg, H);
        T* dzi = cf.off_i >= 0 ? dz + cf.off_i : nullptr;
        if (dzi) {
          if (cf.coupled) {
            for (int64_t j = 0; j < H; ++j) dzi[j] = dcs[j] * (gp[j] - cp[j]);
          } else {
            for (int64_t j = 0; j < H; ++j) dzi[j] = dcs[j] * gp[j];
          }
          if (da) for (int64_t j = 0; j < H; ++j) dzi[j] += da[cf.off_i + j];
          if (dg_carry) for (int64_t j = 0; j < H; ++j) dzi[j] += dg_carry[cf.sig_i * H + j];
          times_derivative(cf.gact, ip, dzi, H);
        }
        T* dzf = cf.off_f >= 0 ? dz + cf.off_f : nullptr;
        const T* fp = cf.off_f >= 0 ? a + cf.off_f : one;
        if (dzf) {
          for (int64_t j = 0; j < H; ++j) dzf[j] = dcs[j] * cp[j];
          if (da) for (int64_t j = 0; j < H; ++j) dzf[j] += da[cf.off_f + j];
          if (dg_carry) for (int64_t j = 0; j < H; ++j) dzf[j] += dg_carry[cf.sig_f * H + j];
          times_derivative(cf.gact, fp, dzf, H);
        }
        // d loss / d c_{t-1}
        if (cf.coupled) {
          for (int64_t j = 0; j < H; ++j) dcn[j] = dcs[j] * (T(1) - ip[j]);
        } else {
          for (int64_t j = 0; j < H; ++j) dcn[j] = dcs[j] * fp[j];
        }
        if (zcm) {
          const T* k = zcm + tb * H;
          for (int64_t j = 0; j < H; ++j) dcn[j] += k[j] * s0[j];
        } else if (zone_c) {
          for (int64_t j = 0; j < H; ++j) dcn[j] += kc * s0[j];
        }
        if (cf.peephole) {
          if (dzi) {
            const T* p = pw + cf.sig_i * H;
            for (int64_t j = 0; j < H; ++j) dcn[j] += dzi[j] * p[j];
          }
          if (dzf) {
            const T* p = pw + cf.sig_f * H;
            for (int64_t j = 0; j < H; ++j) dcn[j] += dzf[j] * p[j];
          }
        }
        if (cf.ln) {  // back through LN(rec) * g_hh
          const T* rh = rech_p + tb * GH;
          const T s = rstdh_p[tb];
          T* dr = dRec_p + tb * GH;
          double m1 = 0, m2 = 0;
          for (int64_t k = 0; k < GH; ++k) {
            s3[k] = dz[k] * g_hh[k];
            m1 += s3[k];
            m2 += s3[k] * rh[k];
          }
          const T a1 = T(m1 / double(GH)), a2 = T(m2 / double(GH));
          for (int64_t k = 0; k < GH; ++k) dr[k] = s * (s3[k] - a1 - rh[k] * a2);
        }
        if (cf.fgr) {
          T* ds = dS_p + tb * nH;
          for (int64_t s = 0; s < n; ++s) std::copy(dz + cf.sig_off[s], dz + cf.sig_off[s] + H, ds + s * H);
        }
      }
    });

    // d loss / d h_{t-1} = (dRec_t W_hh) * mask + direct path
    back_gemm.mm(dh_rec, dRec[t]);
    for (int64_t b = 0; b < B; ++b) {
      T* d = dh_p + b * R;
      const T* g = dhr_p + b * R;
      const T* dd = dhd_p + b * R;
      if (rm) {
        const T* m = rm + b * R;
        for (int64_t j = 0; j < R; ++j) d[j] = g[j] * m[j] + dd[j];
      } else {
        for (int64_t j = 0; j < R; ++j) d[j] = g[j] + dd[j];
      }
    }
    if (cf.fgr) at::mm_out(dgc, dS[t], w_gg);  // d loss / d gates_{t-1}
  }

  Tensor d_h0 = d_hs.defined() ? dh + d_hs[0] : dh;
  Tensor d_c0 = d_cs.defined() ? dc + d_cs[0] : dc;
  Tensor hin = hs.narrow(0, 0, TT);
  if (rec_mask.defined()) hin = hin * rec_mask;
  Tensor d_w_hh = dRec.reshape({TT * B, GH}).t().mm(hin.reshape({TT * B, R}));
  Tensor d_w_hr, d_w_ch, d_w_gg, d_ln_hh, d_ln_cw, d_ln_cb;
  if (proj) d_w_hr = dHs.reshape({TT * B, R}).t().mm(hpre.reshape({TT * B, H}));
  if (cf.fgr) d_w_gg = dS.reshape({TT * B, nH}).t().mm(pg.reshape({TT * B, nH}));
  if (cf.peephole) {
    std::vector<Tensor> parts;
    Tensor c_prev = cs.narrow(0, 0, TT);
    Tensor c_new = cstep.defined() ? cstep : cs.narrow(0, 1, TT);
    if (cf.off_i >= 0) parts.push_back((dZ.narrow(2, cf.off_i, H) * c_prev).sum({0, 1}));
    if (cf.off_f >= 0) parts.push_back((dZ.narrow(2, cf.off_f, H) * c_prev).sum({0, 1}));
    if (cf.off_o >= 0) parts.push_back((dZ.narrow(2, cf.off_o, H) * c_new).sum({0, 1}));
    d_w_ch = at::cat(parts);
  }
  if (cf.ln) {
    d_ln_hh = (dZ * rec_hat).sum({0, 1});
    d_ln_cw = (dcout * xhat_c).sum({0, 1});
    d_ln_cb = dcout.sum({0, 1});
  }
  return {dZ, d_h0, d_c0, d_w_hh, d_w_hr, d_w_ch, d_w_gg, d_ln_hh, d_ln_cw, d_ln_cb};
}

