// csrc/tests/check.h — a minimal test harness for the torch-free core: CHECK records failures,
// report() prints "N passed, M failed" and gives the process exit code.
#pragma once

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

namespace dllm_test {

inline int& passed() {
  static int n = 0;
  return n;
}
inline int& failed() {
  static int n = 0;
  return n;
}

#define CHECK(cond, ...)                                            \
  do {                                                              \
    if (cond) {                                                     \
      ++dllm_test::passed();                                        \
    } else {                                                        \
      ++dllm_test::failed();                                        \
      std::printf("FAIL %s:%d: %s -- ", __FILE__, __LINE__, #cond); \
      std::printf(__VA_ARGS__);                                     \
      std::printf("\n");                                            \
    }                                                               \
  } while (0)

inline int report(const char* name) {
  std::printf("%s: %d passed, %d failed\n", name, passed(), failed());
  return failed() == 0 ? 0 : 1;
}

// Random token ids in [0, vocab) and a random mask with P(true) = p, from a fixed seed.
inline std::vector<int64_t> random_tokens(std::mt19937_64& rng, size_t n, int64_t vocab) {
  std::uniform_int_distribution<int64_t> dist(0, vocab - 1);
  std::vector<int64_t> v(n);
  for (auto& t : v) t = dist(rng);
  return v;
}

inline std::vector<char> random_mask(std::mt19937_64& rng, size_t n, double p) {
  std::bernoulli_distribution dist(p);
  std::vector<char> v(n);
  for (auto& m : v) m = dist(rng) ? 1 : 0;
  return v;
}

// Shapes every op is tested on: odd sizes, a single element, block sizes around 32.
struct Shape {
  int64_t B, L;
};
inline const std::vector<Shape>& test_shapes() {
  static const std::vector<Shape> shapes = {{1, 1}, {1, 7}, {2, 32}, {3, 33}, {4, 320}, {2, 4099}};
  return shapes;
}

}  // namespace dllm_test
