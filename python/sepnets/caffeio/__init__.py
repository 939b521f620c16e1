"""The ground floor: everything that touches Caffe's files and binaries.

* :mod:`.env`: where the project's Caffe build is (tools, pycaffe, the CUDA
  wheels' libraries) and importing pycaffe quietly;
* :mod:`.proto`: the one ``caffe_pb2``; reading/writing net prototxts,
  caffemodels and solvers;
* :mod:`.blobs`: blob shapes and values, and checking a model against a net;
* :mod:`.pycaffe`: building pycaffe nets without Caffe aborting the process;
* :mod:`.log` / :mod:`.logdata`: the one Caffe log parser (whole files, or
  streamed line by line for progress displays) and what it yields;
* :mod:`.run`: running the ``caffe`` binary so that a kill loses nothing;
* :mod:`.snapshots`: which snapshots exist and are usable.
"""
