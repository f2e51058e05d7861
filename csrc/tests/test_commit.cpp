// Native test of dllm::cpu::commit_rows: contiguous and strided views against a direct loop.
#include <cstring>

#include "check.h"
#include "dllm/cpu/commit.h"

using namespace dllm_test;

int main() {
  std::mt19937_64 rng(20261123);
  for (const Shape s : test_shapes()) {
    for (const int64_t pad : {0, 5}) {  // pad > 0: x is a column slice of a wider row
      const int64_t row = s.L + pad;
      auto x = random_tokens(rng, s.B * row, 126464);
      const auto x0 = random_tokens(rng, s.B * s.L, 126464);
      const auto t = random_mask(rng, s.B * s.L, 0.3);
      auto want = x;
      for (int64_t b = 0; b < s.B; ++b)
        for (int64_t l = 0; l < s.L; ++l)
          if (t[b * s.L + l]) want[b * row + pad + l] = x0[b * s.L + l];
      dllm::cpu::commit_rows<int64_t>(dllm::view2d(x.data() + pad, row, 1),
                                      dllm::view2d(x0.data(), s.L, 1),
                                      dllm::view2d(reinterpret_cast<const uint8_t*>(t.data()), s.L, 1),
                                      s.L, 0, s.B);
      CHECK(x == want, "B=%lld L=%lld pad=%lld", (long long)s.B, (long long)s.L, (long long)pad);
    }
  }
  // Row ranges: two halves give the same result as one call.
  auto x = random_tokens(rng, 6 * 9, 100);
  auto y = x;
  const auto x0 = random_tokens(rng, 6 * 9, 100);
  const auto t = random_mask(rng, 6 * 9, 0.5);
  const auto tv = dllm::view2d(reinterpret_cast<const uint8_t*>(t.data()), 9, 1);
  dllm::cpu::commit_rows<int64_t>(dllm::view2d(x.data(), 9, 1), dllm::view2d(x0.data(), 9, 1), tv, 9, 0, 6);
  dllm::cpu::commit_rows<int64_t>(dllm::view2d(y.data(), 9, 1), dllm::view2d(x0.data(), 9, 1), tv, 9, 0, 2);
  dllm::cpu::commit_rows<int64_t>(dllm::view2d(y.data(), 9, 1), dllm::view2d(x0.data(), 9, 1), tv, 9, 2, 6);
  CHECK(x == y, "split rows");
  return report("commit_cpu");
}
