"""Deploying trained nets outside this project's Caffe: ONNX export that keeps
pattern signs as low-bit integers, an onnxruntime/Caffe inference runtime, the
training-time preprocessing, and an image classifier.

Everything this package needs from the rest of ``sepnets`` comes through
``_caffeio`` (one shim), so a restructuring of the other modules changes one
file here.
"""
