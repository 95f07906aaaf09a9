"""Turn models into deployable artifacts (ONNX files) and describe them by their facts.

Exporters produce files; they never run them for timing (that is `targets`).
"""
