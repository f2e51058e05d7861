// csrc/torch/registration.cpp — every schema of the dllm_kernels op library, in one place.
// Implementations register per backend (TORCH_LIBRARY_IMPL) in csrc/cpu/<op>.cpp and
// csrc/cuda/<op>.cu; fake (meta) implementations are registered from Python in dllm_kernels/ops.py.
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(dllm_kernels, m) {
  // x[transfer] = x0[transfer], in place on x.  x, x0: [B, L] int64|int32; transfer: [B, L] bool.
  m.def("commit_(Tensor(a!) x, Tensor x0, Tensor transfer) -> ()");
  // LLaDA's linear schedule. mask_index: [B, L] bool -> [B, steps] int64.
  m.def("num_transfer_tokens(Tensor mask_index, int steps) -> Tensor");
}

// A module init so that `import dllm_kernels._C` loads the library (and runs the registrations
// above); the ops themselves are reached through torch.ops.dllm_kernels, never through pybind11.
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
