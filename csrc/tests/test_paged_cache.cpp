// Native test of the CPU paged-cache copies (dllm/cpu/cache_*.h): write tokens into slots,
// gather them back through a block table, copy pages; against direct index arithmetic.
#include "check.h"
#include "dllm/cpu/cache_copy_pages.h"
#include "dllm/cpu/cache_gather.h"
#include "dllm/cpu/cache_write.h"

using namespace dllm_test;

int main() {
  std::mt19937_64 rng(20261123);
  constexpr int64_t P = 12, S = 4, H = 3, D = 5;  // odd sizes on purpose
  const int64_t token = H * D, page = S * token;
  std::vector<float> kc(P * page), vc(P * page);
  for (size_t i = 0; i < kc.size(); ++i) kc[i] = vc[i] = -1.0f - static_cast<float>(i);
  // 2 rows x 7 tokens, row 1 padded after 5 tokens; row 0 on pages {3, 9}, row 1 on {0, 7}.
  const int64_t B = 2, L = 7, pages[B][2] = {{3, 9}, {0, 7}}, lens[B] = {7, 5};
  std::vector<float> k(B * L * token), v(B * L * token);
  std::uniform_real_distribution<float> u(1.0f, 2.0f);
  for (auto& x : k) x = u(rng);
  for (auto& x : v) x = u(rng);
  std::vector<int64_t> slots(B * L);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < L; ++i)
      slots[b * L + i] = i < lens[b] ? pages[b][i / S] * S + i % S : -1;

  using E = uint32_t;  // fp32 moved as 4-byte words
  const dllm::PagedCacheView<E> kv{reinterpret_cast<E*>(kc.data()), page, token, D};
  const dllm::PagedCacheView<E> vv{reinterpret_cast<E*>(vc.data()), page, token, D};
  const dllm::TokenView<const E> kt{reinterpret_cast<const E*>(k.data()), L, L * token, token, D, 1};
  const dllm::TokenView<const E> vt{reinterpret_cast<const E*>(v.data()), L, L * token, token, D, 1};
  dllm::cpu::cache_write_tokens<E>(kv, vv, kt, vt, dllm::view2d<const int64_t>(slots.data(), L, 1),
                                   S, P * S, H, D, 0, B * L);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < lens[b]; ++i)
      for (int64_t j = 0; j < token; ++j)
        CHECK(kc[(pages[b][i / S] * S + i % S) * token + j] == k[(b * L + i) * token + j] &&
                  vc[(pages[b][i / S] * S + i % S) * token + j] == v[(b * L + i) * token + j],
              "write b=%lld i=%lld", (long long)b, (long long)i);
  CHECK(kc[(7 * S + 1) * token] == -1.0f - static_cast<float>((7 * S + 1) * token), "padding written");

  // Gather with max_len 8: row 0 reads back 7 tokens and one zero row, row 1 five and zeros.
  const int64_t max_len = 8;
  std::vector<int32_t> table = {3, 9, 0, 7}, kv_lens = {7, 5};
  std::vector<float> ko(B * max_len * token, 9.0f), vo(B * max_len * token, 9.0f);
  const dllm::PagedCacheView<const E> kcv{reinterpret_cast<const E*>(kc.data()), page, token, D};
  const dllm::PagedCacheView<const E> vcv{reinterpret_cast<const E*>(vc.data()), page, token, D};
  dllm::cpu::cache_gather_tokens<E>(kcv, vcv, dllm::view2d<const int32_t>(table.data(), 2, 1),
                                    kv_lens.data(), 1, reinterpret_cast<E*>(ko.data()),
                                    reinterpret_cast<E*>(vo.data()), max_len, P, 2, S, H, D, 0,
                                    B * max_len);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < max_len; ++i)
      for (int64_t j = 0; j < token; ++j) {
        const float want_k = i < lens[b] ? k[(b * L + i) * token + j] : 0.0f;
        const float want_v = i < lens[b] ? v[(b * L + i) * token + j] : 0.0f;
        CHECK(ko[(b * max_len + i) * token + j] == want_k && vo[(b * max_len + i) * token + j] == want_v,
              "gather b=%lld i=%lld", (long long)b, (long long)i);
      }

  // Copy pages 3 -> 5 and 9 -> 2.
  const std::vector<float> before = kc;
  std::vector<int64_t> pairs = {3, 5, 9, 2};
  dllm::cpu::cache_copy_page_slots<E>(kv, vv, dllm::view2d<const int64_t>(pairs.data(), 2, 1), P, S,
                                      H, D, 0, 2 * S);
  for (int64_t j = 0; j < page; ++j) {
    CHECK(kc[5 * page + j] == before[3 * page + j] && kc[2 * page + j] == before[9 * page + j],
          "copy j=%lld", (long long)j);
    CHECK(kc[3 * page + j] == before[3 * page + j], "copy source changed j=%lld", (long long)j);
  }
  return report("cache_cpu");
}
