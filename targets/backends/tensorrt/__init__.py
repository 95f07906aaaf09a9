"""The TensorRT backend: an engine built from the ONNX artifact on the GPU that runs it and cached
(`engines`), timed with CUDA events (`runner`), and what TensorRT chose for each layer (`inspection`)."""
