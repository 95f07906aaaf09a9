"""ONNX Runtime GenAI backend: a decoder folder (`genai_config.json` + `model.onnx`) timed one generation
phase at a time (extra `speedproof[llm]`)."""
