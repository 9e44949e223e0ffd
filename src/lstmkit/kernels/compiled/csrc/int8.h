// int8 inference products of lstmkit.interop.quantize, one call each from Python.
//
// int8_linear: y = x W^T + b with W = scale[:, None] * q (q (N, K) int8, one scale per output
// channel). Each row of x is quantised on the fly, symmetric, s = max|x_row| / 127 (1 for a zero
// row), q_x = round_half_even(x / s) clamped to [-127, 127]; the int8 x int8 product accumulates in
// int32 (at::_int_mm), and y = (acc * s) * scale[n] + b[n] in float32: the same operations, in the
// same order, as lstmkit.interop.quantize.int8_linear, which is the reference and the fallback.
//
// int8_rows: rows of an int8 table by index (nn.Embedding's lookup), y = q[t] * scale[t].
#pragma once

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>

namespace lstmkit {

constexpr float kInt8Max = 127.0f;

// x (M, K) -> q (M, K) int8 and s (M,), x ~ s[:, None] * q.
inline void quantize_rows_into(const float* x, int64_t M, int64_t K, int8_t* q, float* s) {
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x + m * K;
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
    const float scale = amax > 0.0f ? amax / kInt8Max : 1.0f;
    s[m] = scale;
    int8_t* out = q + m * K;
    for (int64_t k = 0; k < K; ++k) {
      const float r = std::nearbyint(row[k] / scale);
      out[k] = static_cast<int8_t>(std::min(kInt8Max, std::max(-kInt8Max, r)));
    }
  }
}

inline at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scale,
                              const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "int8_linear: x must be float32, got ", x.scalar_type());
  TORCH_CHECK(q.dim() == 2 && q.scalar_type() == at::kChar, "int8_linear: weights must be (N, K) int8");
  const int64_t N = q.size(0), K = q.size(1);
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == K, "int8_linear: x must end in ", K, " features, got ", x.sizes());
  TORCH_CHECK(scale.numel() == N && scale.scalar_type() == at::kFloat, "int8_linear: scale must be (N,) float32");
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias) TORCH_CHECK(bias->numel() == N && bias->scalar_type() == at::kFloat, "int8_linear: bias must be (N,)");
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = N;
  const at::Tensor x2 = x.reshape({-1, K}).contiguous();
  const int64_t M = x2.size(0);
  at::Tensor y = at::empty({M, N}, x.options());
  if (M == 0) return y.view(shape);
  at::Tensor qx = at::empty({M, K}, x.options().dtype(at::kChar));
  at::Tensor sx = at::empty({M}, x.options());
  quantize_rows_into(x2.data_ptr<float>(), M, K, qx.data_ptr<int8_t>(), sx.data_ptr<float>());
  const at::Tensor sc = scale.contiguous();
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  const float* sp = sc.data_ptr<float>();
  const float* bp = has_bias ? b.data_ptr<float>() : nullptr;
  const float* sxp = sx.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  if (K == 1) {  // the outer product, exact in int32 (torch's CPU _int_mm mis-sums a single column)
    const at::Tensor qc = q.contiguous();
    const int8_t* wq = qc.data_ptr<int8_t>();
    const int8_t* xq = qx.data_ptr<int8_t>();
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        const float v = static_cast<float>(static_cast<int32_t>(xq[m]) * static_cast<int32_t>(wq[n])) * sxp[m] * sp[n];
        yp[m * N + n] = has_bias ? v + bp[n] : v;
      }
    return y.view(shape);
  }
  const at::Tensor acc = at::_int_mm(qx, q.t()).contiguous();  // (M, N) int32
  const int32_t* ap = acc.data_ptr<int32_t>();
  for (int64_t m = 0; m < M; ++m) {
    const float s = sxp[m];
    const int32_t* a = ap + m * N;
    float* out = yp + m * N;
    if (has_bias) {
      for (int64_t n = 0; n < N; ++n) out[n] = static_cast<float>(a[n]) * s * sp[n] + bp[n];
    } else {
      for (int64_t n = 0; n < N; ++n) out[n] = static_cast<float>(a[n]) * s * sp[n];
    }
  }
  return y.view(shape);
}

inline at::Tensor int8_rows(const at::Tensor& index, const at::Tensor& q, const at::Tensor& scale) {
  TORCH_CHECK(index.scalar_type() == at::kLong || index.scalar_type() == at::kInt,
              "int8_rows: indices must be int64 or int32, got ", index.scalar_type());
  TORCH_CHECK(q.dim() == 2 && q.scalar_type() == at::kChar, "int8_rows: the table must be (V, E) int8");
  const int64_t V = q.size(0), E = q.size(1);
  TORCH_CHECK(scale.numel() == V && scale.scalar_type() == at::kFloat, "int8_rows: scale must be (V,) float32");
  const at::Tensor idx = index.to(at::kLong).contiguous();
  std::vector<int64_t> shape(idx.sizes().begin(), idx.sizes().end());
  shape.push_back(E);
  at::Tensor y = at::empty(shape, scale.options());
  const int64_t n = idx.numel();
  const int64_t* ip = idx.data_ptr<int64_t>();
  const at::Tensor qc = q.contiguous(), sc = scale.contiguous();
  const int8_t* qp = qc.data_ptr<int8_t>();
  const float* sp = sc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = ip[i];
    TORCH_CHECK_INDEX(t >= -V && t < V, "index ", t, " is out of range for a table of ", V, " rows");
    if (t < 0) t += V;
    const int8_t* row = qp + t * E;
    for (int64_t e = 0; e < E; ++e) yp[i * E + e] = static_cast<float>(row[e]) * sp[t];
  }
  return y;
}

}  // namespace lstmkit
