"""Reference paths that need torch or TensorFlow (x86 only): PyTorch eager steps, torch.onnx
exports, onnxruntime's and TensorFlow's own int8 files."""
