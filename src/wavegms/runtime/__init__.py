"""Ways to execute a trained network fast: exact rewrites, exported graphs, their runtimes.

One idea per module: ``decoder_rewrite`` (exact cheaper TAEF2 decoder), ``soft_mask`` (the
soft-mask path in a recordable form), ``traced`` (TorchScript), ``onnx_graph`` (ONNX export and
its cache), ``export_child`` (that export in a child process, for a graph built in the
background; the child runs ``export_main``), ``onnx_session`` and ``openvino_session``
(the runtimes that run that export).
Nothing here changes a model; everything is checked against the eager model.
"""
