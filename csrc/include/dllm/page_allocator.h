// dllm/page_allocator.h — host-side page bookkeeping of a paged KV cache: which physical pages
// each sequence owns, shared prompts (fork) with reference counts, and copy-on-write. Plain C++,
// no torch; bound to Python with pybind11 as dllm_kernels.PageAllocator. The specification is
// dllm_kernels/reference/page_allocator.py (same pages handed out in the same order).
//
// Cost: every call is O(pages touched) with no allocation beyond the returned lists; the pool's
// state is num_pages * 4 bytes of reference counts plus a free stack.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dllm {

// Thrown for an unknown sequence id (Python: KeyError).
struct UnknownSequence : std::out_of_range {
  using std::out_of_range::out_of_range;
};
// Thrown when the pool has too few free pages; the allocator is left unchanged (Python:
// RuntimeError).
struct OutOfPages : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class PageAllocator {
 public:
  PageAllocator(int64_t num_pages, int64_t page_size)
      : num_pages_(num_pages), page_size_(page_size) {
    if (num_pages < 1 || page_size < 1 || num_pages > INT32_MAX)
      throw std::invalid_argument(msg("__init__", "num_pages and page_size must be >= 1, got " +
                                                      std::to_string(num_pages) + ", " +
                                                      std::to_string(page_size)));
    ref_.assign(num_pages, 0);
    free_.reserve(num_pages);
    for (int64_t p = num_pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
  }

  int64_t num_pages() const { return num_pages_; }
  int64_t page_size() const { return page_size_; }
  int64_t num_free_pages() const { return static_cast<int64_t>(free_.size()); }

  // seq_id holds pages for num_tokens tokens in total (created if new; never shrinks).
  void reserve(int64_t seq_id, int64_t num_tokens) {
    if (num_tokens < 0)
      throw std::invalid_argument(
          msg("reserve", "num_tokens must be >= 0, got " + std::to_string(num_tokens)));
    auto it = seqs_.find(seq_id);
    const int64_t have = it == seqs_.end() ? 0 : static_cast<int64_t>(it->second.size());
    const int64_t need = (num_tokens + page_size_ - 1) / page_size_ - have;
    std::vector<int32_t> fresh = take(need > 0 ? need : 0, "reserve");
    std::vector<int32_t>& pages = seqs_[seq_id];
    pages.insert(pages.end(), fresh.begin(), fresh.end());
  }

  const std::vector<int32_t>& pages(int64_t seq_id) const { return get(seq_id, "pages"); }

  // dst shares all of src's pages (reference counted, read-only until made writable).
  void fork(int64_t src_seq_id, int64_t dst_seq_id) {
    const std::vector<int32_t>& src = get(src_seq_id, "fork");
    if (seqs_.count(dst_seq_id))
      throw std::invalid_argument(
          msg("fork", "destination sequence id " + std::to_string(dst_seq_id) + " already exists"));
    for (const int32_t p : src) ++ref_[p];
    std::vector<int32_t> copy = src;  // src may move when the map rehashes
    seqs_.emplace(dst_seq_id, std::move(copy));
  }

  void free(int64_t seq_id) {
    const std::vector<int32_t>& pages = get(seq_id, "free");
    for (const int32_t p : pages) release(p);
    seqs_.erase(seq_id);
  }

  // Makes the pages covering tokens [start, end) private to seq_id; returns the (src, dst) page
  // copies the caller must perform on the cache tensors (cache_copy_pages_).
  std::vector<std::pair<int32_t, int32_t>> writable(int64_t seq_id, int64_t start, int64_t end) {
    std::vector<int32_t>& pages = get_mut(seq_id, "writable");
    const int64_t reserved = static_cast<int64_t>(pages.size()) * page_size_;
    if (start < 0 || start > end || end > reserved)
      throw std::invalid_argument(
          msg("writable", "token range [" + std::to_string(start) + ", " + std::to_string(end) +
                              ") outside the " + std::to_string(reserved) + " reserved tokens"));
    std::vector<std::pair<int32_t, int32_t>> copies;
    if (start == end) return copies;
    std::vector<int64_t> shared;
    for (int64_t i = start / page_size_; i <= (end - 1) / page_size_; ++i)
      if (ref_[pages[i]] > 1) shared.push_back(i);
    const std::vector<int32_t> fresh = take(static_cast<int64_t>(shared.size()), "writable");
    for (size_t j = 0; j < shared.size(); ++j) {
      int32_t& page = pages[shared[j]];
      copies.emplace_back(page, fresh[j]);
      --ref_[page];  // still > 0: another sequence holds it
      page = fresh[j];
    }
    return copies;
  }

  int32_t refcount(int64_t page) const {
    if (page < 0 || page >= num_pages_)
      throw std::out_of_range(msg("refcount", "page " + std::to_string(page) + " outside [0, " +
                                                  std::to_string(num_pages_) + ")"));
    return ref_[page];
  }

 private:
  static std::string msg(const char* method, const std::string& what) {
    return std::string("dllm_kernels.PageAllocator.") + method + ": " + what;
  }

  std::vector<int32_t> take(int64_t n, const char* method) {
    if (n > static_cast<int64_t>(free_.size()))
      throw OutOfPages(msg(method, "out of pages: needs " + std::to_string(n) + ", " +
                                       std::to_string(free_.size()) + " free of " +
                                       std::to_string(num_pages_)));
    std::vector<int32_t> out(n);
    for (int64_t i = 0; i < n; ++i) {
      out[i] = free_.back();
      free_.pop_back();
      ref_[out[i]] = 1;
    }
    return out;
  }

  void release(int32_t page) {
    if (--ref_[page] == 0) free_.push_back(page);
  }

  const std::vector<int32_t>& get(int64_t seq_id, const char* method) const {
    const auto it = seqs_.find(seq_id);
    if (it == seqs_.end())
      throw UnknownSequence(msg(method, "unknown sequence id " + std::to_string(seq_id)));
    return it->second;
  }
  std::vector<int32_t>& get_mut(int64_t seq_id, const char* method) {
    return const_cast<std::vector<int32_t>&>(get(seq_id, method));
  }

  int64_t num_pages_, page_size_;
  std::vector<int32_t> ref_;   // [num_pages] reference counts (0 = free)
  std::vector<int32_t> free_;  // free page ids, the next one to hand out last
  std::unordered_map<int64_t, std::vector<int32_t>> seqs_;
};

}  // namespace dllm
