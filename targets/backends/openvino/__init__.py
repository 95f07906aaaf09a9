"""OpenVINO backend: the ONNX artifact read and compiled by OpenVINO's CPU plugin (extra `speedproof[openvino]`)."""
