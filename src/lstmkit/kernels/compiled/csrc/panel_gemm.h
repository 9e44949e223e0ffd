// A small float32 GEMM for the per-step products of the recurrence, C (M, N) = A (M, K) @ W^T with
// W (N, K) row-major, on AVX-512 (compiled for it, chosen at run time only on CPUs that have it).
//
// Why: a step's product is small (M = batch rows, e.g. 16 x 128 @ 128 x 512), and a library call
// per step spends as long on its own set-up (descriptors, allocation of the result) as on the
// arithmetic. Here W is packed once per call into panels of 16 columns (panel p holds
// W[16 p + j][k] at [k * 16 + j], zero past N), and each step runs register tiles of up to
// 8 rows x 48 columns straight into the caller's buffer, with no allocation.
//
// Included once by lstm.cpp inside namespace lstmkit (x86-64 GCC/Clang builds only, where
// LSTMKIT_HAVE_AVX512 is 1); <ATen/Parallel.h> and <immintrin.h> first.

namespace panel {

constexpr int64_t WIDTH = 16;  // floats per panel (one 512-bit register)
constexpr int ROWS = 8;        // rows per register tile
constexpr int PANELS = 3;      // panels per register tile: 24 accumulators, 3 weight vectors, 1 broadcast

// W (N, K) packed into ceil(N / 16) panels of K x 16 floats.
struct PackedWeight {
  Tensor buf;
  int64_t N = 0, K = 0, panels = 0;

  PackedWeight() = default;
  explicit PackedWeight(const Tensor& weight) {
    const Tensor w = weight.contiguous();
    N = w.size(0), K = w.size(1), panels = (N + WIDTH - 1) / WIDTH;
    buf = at::empty({panels * K * WIDTH}, w.options());
    const float* src = w.data_ptr<float>();
    float* dst = buf.data_ptr<float>();
    if (N % WIDTH != 0) std::fill(dst + (panels - 1) * K * WIDTH, dst + panels * K * WIDTH, 0.0f);  // padding
    for (int64_t p = 0; p < panels; ++p) {
      for (int64_t j = 0; j < WIDTH && p * WIDTH + j < N; ++j) {
        const float* row = src + (p * WIDTH + j) * K;
        float* col = dst + p * K * WIDTH + j;
        for (int64_t k = 0; k < K; ++k) col[k * WIDTH] = row[k];
      }
    }
  }
  const float* panel(int64_t p) const { return buf.data_ptr<float>() + p * K * WIDTH; }
};

// One register tile: MR rows of A times NP panels, stored into C (masked past column N).
template <int MR, int NP>
__attribute__((target("avx512f"))) inline void tile(int64_t K, const float* a, int64_t lda, const float* w,
                                                    int64_t wstride, float* c, int64_t ldc, int64_t n0, int64_t N) {
  __m512 acc[MR][NP];
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < NP; ++q) acc[r][q] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < K; ++k) {
    __m512 b[NP];
    for (int q = 0; q < NP; ++q) b[q] = _mm512_loadu_ps(w + q * wstride + k * WIDTH);
    for (int r = 0; r < MR; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * lda + k]);
      for (int q = 0; q < NP; ++q) acc[r][q] = _mm512_fmadd_ps(x, b[q], acc[r][q]);
    }
  }
  for (int q = 0; q < NP; ++q) {
    const int64_t n = n0 + q * WIDTH;
    const int64_t left = N - n;
    const __mmask16 mask = left >= WIDTH ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    for (int r = 0; r < MR; ++r) _mm512_mask_storeu_ps(c + r * ldc + n, mask, acc[r][q]);
  }
}

template <int NP>
__attribute__((target("avx512f"))) inline void rows_tile(int64_t mr, int64_t K, const float* a, int64_t lda,
                                                         const float* w, int64_t wstride, float* c, int64_t ldc,
                                                         int64_t n0, int64_t N) {
  switch (mr) {
    case 8: tile<8, NP>(K, a, lda, w, wstride, c, ldc, n0, N); break;
    case 7: tile<7, NP>(K, a, lda, w, wstride, c, ldc, n0, N); break;
    case 6: tile<6, NP>(K, a, lda, w, wstride, c, ldc, n0, N); break;
    case 5: tile<5, NP>(K, a, lda, w, wstride, c, ldc, n0, N); break;
    case 4: tile<4, NP>(K, a, lda, w, wstride, c, ldc, n0, N); break;
    case 3: tile<3, NP>(K, a, lda, w, wstride, c, ldc, n0, N); break;
    case 2: tile<2, NP>(K, a, lda, w, wstride, c, ldc, n0, N); break;
    default: tile<1, NP>(K, a, lda, w, wstride, c, ldc, n0, N); break;
  }
}

// C[:, 16 p0 : 16 p1] = A @ W[16 p0 : 16 p1]^T for A (M, K; lda) and C (M, N; ldc).
__attribute__((target("avx512f"))) inline void gemm_panels(int64_t M, const float* a, int64_t lda,
                                                           const PackedWeight& w, float* c, int64_t ldc, int64_t p0,
                                                           int64_t p1) {
  const int64_t wstride = w.K * WIDTH;
  for (int64_t p = p0; p < p1; p += PANELS) {
    const int64_t np = std::min<int64_t>(PANELS, p1 - p);
    for (int64_t m = 0; m < M; m += ROWS) {
      const int64_t mr = std::min<int64_t>(ROWS, M - m);
      const float* ap = a + m * lda;
      float* cp = c + m * ldc;
      if (np == 3) {
        rows_tile<3>(mr, w.K, ap, lda, w.panel(p), wstride, cp, ldc, p * WIDTH, w.N);
      } else if (np == 2) {
        rows_tile<2>(mr, w.K, ap, lda, w.panel(p), wstride, cp, ldc, p * WIDTH, w.N);
      } else {
        rows_tile<1>(mr, w.K, ap, lda, w.panel(p), wstride, cp, ldc, p * WIDTH, w.N);
      }
    }
  }
}

// C (M, N) = A (M, K) @ W^T, both contiguous; the panels split over threads when the work is large.
inline void gemm(int64_t M, const float* a, const PackedWeight& w, float* c) {
  const int64_t groups = (w.panels + PANELS - 1) / PANELS;
  const int64_t work = M * w.K * PANELS * WIDTH;  // multiply-adds per group of panels
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 19) / std::max<int64_t>(1, work));
  at::parallel_for(0, groups, grain, [&](int64_t q0, int64_t q1) {
    gemm_panels(M, a, w.K, w, c, w.N, PANELS * q0, std::min(PANELS * q1, w.panels));
  });
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

// ------------------------------------------------------------------ bfloat16 inputs, float32 sums
// The same panels for a bfloat16 weight on CPUs with AVX512-BF16: vdpbf16ps multiplies pairs of
// bfloat16 values and adds both products to a float32 lane, so panel p holds, for each pair of
// k (k = 2 q, 2 q + 1), the 16 columns' two values side by side: W[16 p + j][2 q + e] at
// [(q * 16 + j) * 2 + e] (zero past N and past an odd K). A is rounded to bfloat16 (round to
// nearest even) into a buffer of pairs first; products and sums stay float32, C is float32.

bool cpu_has_avx512_bf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

// float -> bfloat16 bits, round to nearest even (NaN kept a NaN).
inline uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// W (N, K) bfloat16 in ceil(N / 16) panels of ceil(K / 2) pairs x 16 columns.
struct PackedWeightBf16 {
  Tensor buf;
  int64_t N = 0, K = 0, pairs = 0, panels = 0;

  PackedWeightBf16() = default;
  explicit PackedWeightBf16(const Tensor& weight) {
    const Tensor w = weight.contiguous();
    N = w.size(0), K = w.size(1), pairs = (K + 1) / 2, panels = (N + WIDTH - 1) / WIDTH;
    buf = at::zeros({panels * pairs * WIDTH * 2}, w.options().dtype(at::kShort));
    const uint16_t* src = reinterpret_cast<const uint16_t*>(w.data_ptr());
    uint16_t* dst = reinterpret_cast<uint16_t*>(buf.data_ptr());
    for (int64_t n = 0; n < N; ++n) {
      const int64_t p = n / WIDTH, j = n % WIDTH;
      uint16_t* col = dst + p * pairs * WIDTH * 2 + j * 2;
      for (int64_t k = 0; k < K; ++k) col[(k / 2) * WIDTH * 2 + (k % 2)] = src[n * K + k];
    }
  }
  const uint16_t* panel(int64_t p) const {
    return reinterpret_cast<const uint16_t*>(buf.data_ptr()) + p * pairs * WIDTH * 2;
  }
};

// a (M, K) float rows, lda apart -> out (M, pairs) pairs of bfloat16, zero past K.
inline void round_rows(int64_t M, int64_t K, const float* a, int64_t lda, uint32_t* out) {
  const int64_t pairs = (K + 1) / 2;
  for (int64_t m = 0; m < M; ++m) {
    const float* r = a + m * lda;
    uint32_t* o = out + m * pairs;
    for (int64_t q = 0; q < pairs; ++q) {
      const uint32_t lo = bf16_bits(r[2 * q]);
      const uint32_t hi = 2 * q + 1 < K ? bf16_bits(r[2 * q + 1]) : 0u;
      o[q] = lo | (hi << 16);
    }
  }
}

template <int MR, int NP>
__attribute__((target("avx512f,avx512bf16"))) inline void tile_bf16(int64_t pairs, const uint32_t* a, const uint16_t* w,
                                                                    int64_t wstride, float* c, int64_t ldc, int64_t n0,
                                                                    int64_t N) {
  __m512 acc[MR][NP];
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < NP; ++q) acc[r][q] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < pairs; ++k) {
    __m512bh b[NP];
    for (int q = 0; q < NP; ++q) b[q] = (__m512bh)_mm512_loadu_si512(w + q * wstride + k * WIDTH * 2);
    for (int r = 0; r < MR; ++r) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(int(a[r * pairs + k]));
      for (int q = 0; q < NP; ++q) acc[r][q] = _mm512_dpbf16_ps(acc[r][q], x, b[q]);
    }
  }
  for (int q = 0; q < NP; ++q) {
    const int64_t n = n0 + q * WIDTH;
    const int64_t left = N - n;
    const __mmask16 mask = left >= WIDTH ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    for (int r = 0; r < MR; ++r) _mm512_mask_storeu_ps(c + r * ldc + n, mask, acc[r][q]);
  }
}

template <int NP>
__attribute__((target("avx512f,avx512bf16"))) inline void rows_tile_bf16(int64_t mr, int64_t pairs, const uint32_t* a,
                                                                         const uint16_t* w, int64_t wstride, float* c,
                                                                         int64_t ldc, int64_t n0, int64_t N) {
  switch (mr) {
    case 8: tile_bf16<8, NP>(pairs, a, w, wstride, c, ldc, n0, N); break;
    case 7: tile_bf16<7, NP>(pairs, a, w, wstride, c, ldc, n0, N); break;
    case 6: tile_bf16<6, NP>(pairs, a, w, wstride, c, ldc, n0, N); break;
    case 5: tile_bf16<5, NP>(pairs, a, w, wstride, c, ldc, n0, N); break;
    case 4: tile_bf16<4, NP>(pairs, a, w, wstride, c, ldc, n0, N); break;
    case 3: tile_bf16<3, NP>(pairs, a, w, wstride, c, ldc, n0, N); break;
    case 2: tile_bf16<2, NP>(pairs, a, w, wstride, c, ldc, n0, N); break;
    default: tile_bf16<1, NP>(pairs, a, w, wstride, c, ldc, n0, N); break;
  }
}

// C[:, 16 p0 : 16 p1] = A @ W[16 p0 : 16 p1]^T for A (M, pairs) already rounded and C (M, N; ldc).
__attribute__((target("avx512f,avx512bf16"))) inline void gemm_panels_bf16(int64_t M, const uint32_t* a,
                                                                          const PackedWeightBf16& w, float* c,
                                                                          int64_t ldc, int64_t p0, int64_t p1) {
  const int64_t wstride = w.pairs * WIDTH * 2;
  for (int64_t p = p0; p < p1; p += PANELS) {
    const int64_t np = std::min<int64_t>(PANELS, p1 - p);
    for (int64_t m = 0; m < M; m += ROWS) {
      const int64_t mr = std::min<int64_t>(ROWS, M - m);
      const uint32_t* ap = a + m * w.pairs;
      float* cp = c + m * ldc;
      if (np == 3) {
        rows_tile_bf16<3>(mr, w.pairs, ap, w.panel(p), wstride, cp, ldc, p * WIDTH, w.N);
      } else if (np == 2) {
        rows_tile_bf16<2>(mr, w.pairs, ap, w.panel(p), wstride, cp, ldc, p * WIDTH, w.N);
      } else {
        rows_tile_bf16<1>(mr, w.pairs, ap, w.panel(p), wstride, cp, ldc, p * WIDTH, w.N);
      }
    }
  }
}

// C (M, N) = A (M, pairs, rounded) @ W^T; the panels split over threads when the work is large.
inline void gemm_bf16(int64_t M, const uint32_t* a, const PackedWeightBf16& w, float* c) {
  const int64_t groups = (w.panels + PANELS - 1) / PANELS;
  const int64_t work = M * w.K * PANELS * WIDTH / 2;  // two-product instructions per group of panels
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 19) / std::max<int64_t>(1, work));
  at::parallel_for(0, groups, grain, [&](int64_t q0, int64_t q1) {
    gemm_panels_bf16(M, a, w, c, w.N, PANELS * q0, std::min(PANELS * q1, w.panels));
  });
}

}  // namespace panel
