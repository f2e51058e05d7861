"""Integrations with other libraries, each importing its library lazily (optional extras).

- dllm_kernels.integrations.transformers: the "dllm_kernels" attention implementation for
  transformers models (bidirectional, paged cache), used by dllm_kernels.generate.
"""
