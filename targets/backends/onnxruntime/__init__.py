"""The ONNX Runtime backend: an InferenceSession on one execution provider, a fallback refused (`runner`)."""
