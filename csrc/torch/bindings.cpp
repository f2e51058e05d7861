// csrc/torch/bindings.cpp — the Python module dllm_kernels._C: pybind11 for host-side objects
// only (the page allocator) and a host query (which CPU instruction sets the kernels use). Tensor
// ops are not bound here: they are torch custom ops (registration.cpp), reached through
// torch.ops.dllm_kernels.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "dllm/cpu/block_attention.h"
#include "dllm/cpu/denoise_step.h"
#include "dllm/page_allocator.h"

namespace py = pybind11;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "dllm_kernels native module: host objects (PageAllocator); ops live in torch.ops.dllm_kernels";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const dllm::UnknownSequence& e) {
      PyErr_SetString(PyExc_KeyError, e.what());
    } catch (const dllm::OutOfPages& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  m.def(
      "cpu_features",
      [] {
        py::dict f;
#ifdef DLLM_ATTN_X86
        f["avx2"] = dllm::cpu::attn_has_avx2();
        f["avx512f"] = dllm::cpu::attn_has_avx512();
        f["amx_bf16"] = dllm::cpu::attn_has_amx();  // CPU support and the OS grant of tile state
#else
        f["avx2"] = f["avx512f"] = f["amx_bf16"] = false;
#endif
        // The vector kernel denoise_step runs now (DLLM_KERNELS_SIMD=generic|avx2 caps it).
        f["denoise_step"] = dllm::cpu::simd::level_name(dllm::cpu::simd::level());
        return f;
      },
      "Instruction sets the CPU kernels can use here (chosen at run time).");
  using A = dllm::PageAllocator;
  py::class_<A>(m, "PageAllocator",
                "Pages of a paged KV cache: reserve / pages / fork / free / writable (copy-on-write).\n"
                "slot = page * page_size + offset. Spec: dllm_kernels.reference.PageAllocator.")
      .def(py::init<int64_t, int64_t>(), py::arg("num_pages"), py::arg("page_size"))
      .def_property_readonly("num_pages", &A::num_pages)
      .def_property_readonly("page_size", &A::page_size)
      .def_property_readonly("num_free_pages", &A::num_free_pages)
      .def("reserve", &A::reserve, py::arg("seq_id"), py::arg("num_tokens"),
           "Make seq_id hold pages for num_tokens tokens in total (grows, never shrinks).")
      .def("pages", [](const A& a, int64_t seq_id) { return a.pages(seq_id); }, py::arg("seq_id"),
           "Physical page ids of seq_id in logical order.")
      .def("fork", &A::fork, py::arg("src_seq_id"), py::arg("dst_seq_id"),
           "dst shares all of src's pages (reference counted).")
      .def("free", &A::free, py::arg("seq_id"), "Release seq_id's pages; unknown ids raise KeyError.")
      .def("writable", &A::writable, py::arg("seq_id"), py::arg("start"), py::arg("end"),
           "Make the pages covering tokens [start, end) private; returns (src, dst) page copies.")
      .def("refcount", &A::refcount, py::arg("page"))
      .def("__repr__", [](const A& a) {
        return "PageAllocator(num_pages=" + std::to_string(a.num_pages()) +
               ", page_size=" + std::to_string(a.page_size()) +
               ", free=" + std::to_string(a.num_free_pages()) + ")";
      });
}
