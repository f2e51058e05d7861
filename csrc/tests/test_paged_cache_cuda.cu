// Native test of the CUDA paged-cache copies (dllm/cuda/cache_*.cuh) against the CPU ones
// (dllm/cpu/cache_*.h):
// bf16-sized (2-byte) elements with 16-byte vectors (D = 128) and the element path (D = 5, a
// strided source); write, gather with padding, page copies. Needs a GPU (else exit 77).
#include <algorithm>
#include <numeric>

#include "check.h"
#include "cuda_test_util.cuh"
#include "dllm/cpu/cache_copy_pages.h"
#include "dllm/cpu/cache_gather.h"
#include "dllm/cpu/cache_write.h"
#include "dllm/cuda/cache_copy_pages.cuh"
#include "dllm/cuda/cache_gather.cuh"
#include "dllm/cuda/cache_write.cuh"

using namespace dllm_test;
using E = uint16_t;

static void run(std::mt19937_64& rng, int64_t P, int64_t S, int64_t H, int64_t D, int64_t src_dim_stride) {
  const int64_t token = H * D, page = S * token, N = 37;
  std::uniform_int_distribution<int> bits(1, 65535);
  std::vector<E> kc(P * page), vc(P * page), k(N * H * D * src_dim_stride), v(k.size());
  for (auto* vec : {&kc, &vc, &k, &v})
    for (auto& x : *vec) x = static_cast<E>(bits(rng));
  std::vector<int64_t> perm(P * S);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int64_t> slots(perm.begin(), perm.begin() + N);
  slots[3] = -1;
  slots[10] = P * S + 4;  // out of range: skipped by both

  DeviceBuffer<E> dkc(kc), dvc(vc), dk(k), dv(v);
  DeviceBuffer<int64_t> ds(slots);
  const int64_t ts = token * src_dim_stride;  // token stride of the source
  auto cache = [&](E* p) { return dllm::PagedCacheView<E>{p, page, token, D}; };
  auto src = [&](const E* p) {
    return dllm::TokenView<const E>{p, N, 0, ts, D * src_dim_stride, src_dim_stride};
  };
  CUDA_OK(dllm::cuda::cache_write<E>(cache(dkc.ptr), cache(dvc.ptr), src(dk.ptr), src(dv.ptr),
                                     dllm::view2d<const int64_t>(ds.ptr, 0, 1), N, S, P * S, H, D, nullptr));
  dllm::cpu::cache_write_tokens<E>(cache(kc.data()), cache(vc.data()), src(k.data()), src(v.data()),
                                   dllm::view2d<const int64_t>(slots.data(), 0, 1), S, P * S, H, D, 0, N);
  CUDA_OK(cudaDeviceSynchronize());
  CHECK(dkc.to_host() == kc && dvc.to_host() == vc, "write P=%lld D=%lld stride=%lld",
        (long long)P, (long long)D, (long long)src_dim_stride);

  // Gather 3 rows through a table over the first pages, lengths {S + 1, 0, 2S}, max_len 2S + 3.
  const int64_t B = 3, max_pages = 2, max_len = 2 * S + 3;
  std::vector<int32_t> table = {1, 4, 0, 0, 2, 3}, lens = {int32_t(S + 1), 0, int32_t(2 * S)};
  DeviceBuffer<int32_t> dt(table), dl(lens);
  std::vector<E> ko(B * max_len * token, 7), vo(ko.size(), 7);
  DeviceBuffer<E> dko(ko), dvo(vo);
  auto ccache = [&](const E* p) { return dllm::PagedCacheView<const E>{p, page, token, D}; };
  CUDA_OK(dllm::cuda::cache_gather<E>(ccache(dkc.ptr), ccache(dvc.ptr),
                                      dllm::view2d<const int32_t>(dt.ptr, max_pages, 1), dl.ptr, 1,
                                      dko.ptr, dvo.ptr, B, max_len, P, max_pages, S, H, D, nullptr));
  dllm::cpu::cache_gather_tokens<E>(ccache(kc.data()), ccache(vc.data()),
                                    dllm::view2d<const int32_t>(table.data(), max_pages, 1),
                                    lens.data(), 1, ko.data(), vo.data(), max_len, P, max_pages, S, H, D, 0, B * max_len);
  CUDA_OK(cudaDeviceSynchronize());
  CHECK(dko.to_host() == ko && dvo.to_host() == vo, "gather D=%lld", (long long)D);

  std::vector<int64_t> pairs = {0, 5, 2, 1, 4, 3};
  DeviceBuffer<int64_t> dp(pairs);
  CUDA_OK(dllm::cuda::cache_copy_pages<E>(cache(dkc.ptr), cache(dvc.ptr),
                                          dllm::view2d<const int64_t>(dp.ptr, 2, 1), 3, P, S, H, D, nullptr));
  dllm::cpu::cache_copy_page_slots<E>(cache(kc.data()), cache(vc.data()),
                                      dllm::view2d<const int64_t>(pairs.data(), 2, 1), P, S, H, D, 0, 3 * S);
  CUDA_OK(cudaDeviceSynchronize());
  CHECK(dkc.to_host() == kc && dvc.to_host() == vc, "copy pages D=%lld", (long long)D);
}

int main() {
  require_gpu("cache_cuda");
  std::mt19937_64 rng(20261123);
  run(rng, 16, 16, 4, 128, 1);  // 16-byte vectors
  run(rng, 16, 16, 32, 128, 1);
  run(rng, 20, 1, 3, 5, 1);     // odd head_dim: elements
  run(rng, 12, 8, 2, 64, 2);    // strided source head_dim: elements
  return report("cache_cuda");
}
