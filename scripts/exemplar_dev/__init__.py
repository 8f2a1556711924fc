"""Development tooling for comfyui-exemplar: host bootstrap, tiny models, workflow conversion.

Never imported by the pack itself; used by the demo, the tests and the benchmarks.
"""
