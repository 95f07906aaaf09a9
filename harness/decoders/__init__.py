"""Generative decoders: their sources (Hugging Face folders, ONNX Runtime GenAI folders, the decoder zoo), the
builds that make ONNX decoders of them with ONNX Runtime GenAI's model builder, the recipes on them, and the
verify job that times them phase by phase (prefill, time to first token, time per token)."""
