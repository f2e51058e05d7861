// Native test of dllm::PageAllocator (the Python property tests compare it with the reference).
#include <vector>

#include "check.h"
#include "dllm/page_allocator.h"

using namespace dllm_test;

int main() {
  dllm::PageAllocator a(8, 4);
  a.reserve(1, 9);
  CHECK((a.pages(1) == std::vector<int32_t>{0, 1, 2}) && a.num_free_pages() == 5, "reserve");
  a.fork(1, 2);
  CHECK(a.refcount(0) == 2 && a.num_free_pages() == 5, "fork shares");
  const auto copies = a.writable(2, 5, 9);
  CHECK(
      copies.size() == 2 && copies[0] == std::make_pair(1, 3) && copies[1] == std::make_pair(2, 4),
      "copy-on-write pairs");
  CHECK((a.pages(2) == std::vector<int32_t>{0, 3, 4}) &&
            (a.pages(1) == std::vector<int32_t>{0, 1, 2}),
        "copy-on-write pages");
  bool threw = false;
  try {
    a.reserve(3, 100);
  } catch (const dllm::OutOfPages&) {
    threw = true;
  }
  CHECK(threw && a.num_free_pages() == 3, "out of pages leaves the state unchanged");
  a.free(1);
  a.free(2);
  CHECK(a.num_free_pages() == 8, "all pages back");
  threw = false;
  try {
    a.free(2);
  } catch (const dllm::UnknownSequence&) {
    threw = true;
  }
  CHECK(threw, "double free throws");
  return report("page_allocator");
}
