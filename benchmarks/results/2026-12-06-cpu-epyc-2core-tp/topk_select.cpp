#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>
int main() {
  const int V = 126464, k = 50, R = 200;
  std::mt19937 g(1); std::normal_distribution<float> n(0, 3);
  std::vector<float> v(V); for (auto& x : v) x = n(g);
  std::vector<float> tmp; double s = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < R; ++r) { tmp.assign(v.begin(), v.end());
    std::nth_element(tmp.begin(), tmp.begin() + (k - 1), tmp.end(), std::greater<float>()); s += tmp[k-1]; }
  auto t1 = std::chrono::steady_clock::now();
  for (int r = 0; r < R; ++r) { tmp.assign(v.begin(), v.end());
    std::partial_sort(tmp.begin(), tmp.begin() + k, tmp.end(), std::greater<float>()); s += tmp[k-1]; }
  auto t2 = std::chrono::steady_clock::now();
  printf("nth_element %.1f us  partial_sort %.1f us per row (V=%d k=%d) %f\n",
    std::chrono::duration<double, std::micro>(t1 - t0).count() / R,
    std::chrono::duration<double, std::micro>(t2 - t1).count() / R, V, k, s);
}
