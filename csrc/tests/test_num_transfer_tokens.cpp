// Native test of dllm::cpu::num_transfer_tokens_rows against the closed form, strided masks too.
#include "check.h"
#include "dllm/cpu/num_transfer_tokens.h"

using namespace dllm_test;

int main() {
  std::mt19937_64 rng(20261123);
  for (const Shape s : test_shapes()) {
    for (const int64_t steps : {1, 3, 8, 64, 1000}) {
      for (const int64_t col_stride : {1, 3}) {
        const auto m = random_mask(rng, s.B * s.L * col_stride, 0.7);
        std::vector<int64_t> out(s.B * steps, -1);
        dllm::cpu::num_transfer_tokens_rows(
            dllm::view2d(reinterpret_cast<const uint8_t*>(m.data()), s.L * col_stride, col_stride),
            dllm::view2d(out.data(), steps, 1), s.L, steps, 0, s.B);
        bool ok = true;
        for (int64_t b = 0; b < s.B; ++b) {
          int64_t masked = 0, total = 0;
          for (int64_t l = 0; l < s.L; ++l) masked += m[b * s.L * col_stride + l * col_stride];
          for (int64_t i = 0; i < steps; ++i) {
            const int64_t want = masked / steps + (i < masked % steps ? 1 : 0);
            ok &= out[b * steps + i] == want;
            total += out[b * steps + i];
          }
          ok &= total == masked;
        }
        CHECK(ok, "B=%lld L=%lld steps=%lld stride=%lld", (long long)s.B, (long long)s.L,
              (long long)steps, (long long)col_stride);
      }
    }
  }
  return report("num_transfer_tokens_cpu");
}
