// Branch-free exp, log1p, tanh and sigmoid that the compiler vectorises inside a loop (libm's are
// scalar calls). Accuracy: a few ulp over the ranges the sLSTM uses (float64 within 1e-15 relative,
// float32 within 1e-7), with inf for overflow and NaN carried through.
//
// exp: x = n ln2 + r, |r| <= ln2 / 2 (n rounded with the 1.5 * 2^p trick, so that no float -> int
// conversion is needed), e^r by its Taylor polynomial (degree 12 in float64, 7 in float32), and
// 2^n written into the exponent bits. Results below the smallest normal number are returned as 0.
// log1p(u) for u in [0, 1]: 2 atanh(s) with s = u / (2 + u) in [0, 1/3], an odd series in s.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

// Inlined into the callers compiled for each instruction set (see slstm.cpp).
#define LSTMKIT_INLINE inline __attribute__((always_inline))

namespace lstmkit_families {

template <typename T>
struct ExpTraits;

template <>
struct ExpTraits<double> {
  using Int = int64_t;
  static constexpr double lo = -708.0, hi = 709.7, under = -708.39, over = 709.78;
  static constexpr double round = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  static constexpr int mantissa = 52, bias = 1023;
};

template <>
struct ExpTraits<float> {
  using Int = int32_t;
  static constexpr float lo = -87.3f, hi = 88.7f, under = -87.33f, over = 88.72f;
  static constexpr float round = 12582912.0f;  // 1.5 * 2^23
  static constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187045e-06f;
  static constexpr int mantissa = 23, bias = 127;
};

template <typename T>
LSTMKIT_INLINE T exp_poly(T r);

template <>
LSTMKIT_INLINE double exp_poly(double r) {
  double p = 1.0 / 479001600.0;  // 1 / 12!
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  return p * r + 1.0;
}

template <>
LSTMKIT_INLINE float exp_poly(float r) {
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  return p * r + 1.0f;
}

template <typename T>
LSTMKIT_INLINE T vexp(T x) {
  using E = ExpTraits<T>;
  using Int = typename E::Int;
  const T xc = x < E::lo ? E::lo : (x > E::hi ? E::hi : x);
  const T k = xc * T(1.4426950408889634) + E::round;  // n + 1.5 * 2^p, n = round(x / ln2)
  const T n = k - E::round;
  const T r = (xc - n * E::ln2_hi) - n * E::ln2_lo;
  Int kb, rb;
  const T round = E::round;
  std::memcpy(&kb, &k, sizeof(T));
  std::memcpy(&rb, &round, sizeof(T));
  const Int bits = (kb - rb + Int(E::bias)) << E::mantissa;  // 2^n
  T scale;
  std::memcpy(&scale, &bits, sizeof(T));
  const T y = exp_poly(r) * scale;
  const T inf = std::numeric_limits<T>::infinity();
  return x > E::over ? inf : (x < E::under ? T(0) : (x != x ? x : y));
}

template <typename T>
LSTMKIT_INLINE T vlog1p_unit(T u) {  // log(1 + u) for u in [0, 1]
  const T s = u / (T(2) + u), s2 = s * s;
  constexpr int terms = sizeof(T) == 8 ? 19 : 9;  // s^(2 terms + 1) / (2 terms + 1) below the ulp
  T p = T(1) / T(2 * terms + 1);
#pragma GCC unroll 32  // fully: the caller's loop is the one to vectorise
  for (int k = terms - 1; k >= 0; --k) p = p * s2 + T(1) / T(2 * k + 1);
  return T(2) * s * p;
}

template <typename T>
LSTMKIT_INLINE T vsigmoid(T x) {
  return T(1) / (T(1) + vexp(-x));
}

template <typename T>
LSTMKIT_INLINE T vtanh(T x) {
  const T a = x < T(0) ? -x : x;
  const T e = vexp(T(-2) * a);
  const T t = (T(1) - e) / (T(1) + e);
  return x < T(0) ? -t : t;
}

}  // namespace lstmkit_families
