// dllm/cpu/math.h — small branch-free math for CPU loops that must vectorise (shared by the
// sampling and attention kernels).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace dllm::cpu {

// exp(x) for x <= 0 (x = -inf gives 0): Cody-Waite range reduction + degree-6 polynomial, ~1 ulp,
// branch-free so that loops over it vectorise.
inline float exp_nonpos(float x) {
  // Below -80 the result (< 2e-35) is flushed to 0: it cannot move a sum that holds exp(0) = 1,
  // and it keeps 2^n a normal float.
  x = std::max(x, -80.0f);
  // Round to nearest by the 1.5 * 2^23 trick: plain float adds, so the loop vectorises.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &p, sizeof(bits));
  bits += static_cast<int32_t>(n) * (1 << 23);  // n may be negative: no shift of a negative
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return x <= -80.0f ? 0.0f : out;
}

}  // namespace dllm::cpu
