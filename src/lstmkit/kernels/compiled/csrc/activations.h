// Activations of lstmkit's compiled kernel and their derivatives, applied in place over arrays.
//
// Codes are lstm.cpp's Activation (lstmkit.kernels.compiled.ACTIVATION_CODES), checked once where the
// config is unpacked; an unknown code reaching these switches is a bug and raises. Every derivative is written in terms of
// the activation's output y (all the kernel stores), e.g. sigmoid' = y (1 - y), tanh' = 1 - y^2.
//
// float uses a branch-free exp (range reduction to 2^n * e^r, polynomial for e^r) that the
// compiler can vectorise; double uses the C library for full precision.
//
// Included by kernel_impl.h inside one namespace per instruction set (no include guard on purpose);
// <cmath>, <cstdint> and <cstring> must already be included.

// e^x for float, |relative error| ~ 2 ulp over [-87, 88] (inputs are clamped to that range).
inline float exp_fast(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float shift = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  float n = (x * 1.44269504088896341f + shift) - shift;  // n = round(x / ln 2)
  float r = x - n * 0.693359375f;  // ln 2 split in two parts for an exact reduction
  r = r - n * -2.12194440e-4f;
  // e^r on |r| <= ln(2) / 2, degree-6 minimax-style polynomial
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline float exp_any(float x) { return exp_fast(x); }
inline double exp_any(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid_one(T x) {
  return T(1) / (T(1) + exp_any(-x));
}

inline float tanh_one(float x) {
  float a = x < 0.0f ? -x : x;
  float e = exp_fast(-2.0f * a);
  float t = (1.0f - e) / (1.0f + e);
  return x < 0.0f ? -t : t;
}
inline double tanh_one(double x) { return std::tanh(x); }

// x[k] = act(x[k]) for k < n; the switch sits outside the loops so each loop vectorises.
template <typename T>
inline void activate(Activation code, T* __restrict x, int64_t n) {
  switch (code) {
    case SIGMOID:
      for (int64_t k = 0; k < n; ++k) x[k] = sigmoid_one(x[k]);
      break;
    case HARD_SIGMOID:  // relu6(x + 3) / 6
      for (int64_t k = 0; k < n; ++k) {
        T v = x[k] + T(3);
        v = v < T(0) ? T(0) : v;
        v = v > T(6) ? T(6) : v;
        x[k] = v / T(6);
      }
      break;
    case TANH:
      for (int64_t k = 0; k < n; ++k) x[k] = tanh_one(x[k]);
      break;
    case IDENTITY:
      break;
    case RELU:
      for (int64_t k = 0; k < n; ++k) x[k] = x[k] > T(0) ? x[k] : T(0);
      break;
    case SOFTSIGN:
      for (int64_t k = 0; k < n; ++k) x[k] = x[k] / (T(1) + (x[k] < T(0) ? -x[k] : x[k]));
      break;
    default:
      TORCH_CHECK(false, "lstmkit kernel: unknown activation code ", code);
  }
}

// d[k] *= act'(.) where y = act(.) is the stored output.
template <typename T>
inline void times_derivative(Activation code, const T* __restrict y, T* __restrict d, int64_t n) {
  switch (code) {
    case SIGMOID:
      for (int64_t k = 0; k < n; ++k) d[k] *= y[k] * (T(1) - y[k]);
      break;
    case HARD_SIGMOID:
      for (int64_t k = 0; k < n; ++k) d[k] = (y[k] > T(0) && y[k] < T(1)) ? d[k] / T(6) : T(0);
      break;
    case TANH:
      for (int64_t k = 0; k < n; ++k) d[k] *= T(1) - y[k] * y[k];
      break;
    case IDENTITY:
      break;
    case RELU:
      for (int64_t k = 0; k < n; ++k) d[k] = y[k] > T(0) ? d[k] : T(0);
      break;
    case SOFTSIGN:
      for (int64_t k = 0; k < n; ++k) {
        T m = T(1) - (y[k] < T(0) ? -y[k] : y[k]);
        d[k] *= m * m;
      }
      break;
    default:
      TORCH_CHECK(false, "lstmkit kernel: unknown activation code ", code);
  }
}

