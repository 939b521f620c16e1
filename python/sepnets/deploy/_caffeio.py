"""The one place this package imports the rest of sepnets from: Caffe I/O
(caffeio/), sizes and packing (compress/), the catalog and CIFAR-10 helpers,
so that deploy/ depends on a short, named list of the project's pieces.
"""
from .. import REPO_ROOT
from ..caffeio.blobs import BPC, model_arrays
from ..caffeio.env import caffe_tool, import_caffe
from ..caffeio.proto import caffe_pb2, in_phase, read_caffemodel, read_prototxt
from ..caffeio.pycaffe import open_net, set_net_params
from ..cli import input_shape, parser
from ..compress.model_summary import paper_size
from ..compress.sizes import MB, is_baked_binary
from ..errors import UserError
from ..fileio import refuse_overwrite, require_file, write_bytes_atomic, write_text_atomic

__all__ = ["REPO_ROOT", "caffe_tool", "import_caffe", "input_shape", "parser", "UserError",
           "refuse_overwrite", "require_file", "write_bytes_atomic", "write_text_atomic",
           "BPC", "MB", "caffe_pb2", "in_phase", "paper_size",
           "is_baked_binary", "model_arrays", "open_net", "read_caffemodel", "read_prototxt",
           "set_net_params", "pack_sepnet", "catalog", "bake", "cifar10_classes",
           "cifar10_gcn"]


def pack_sepnet(net, model, net_path, model_path, bq=False):
    """The .sepnet file's bytes for a model (sepnets.compress.pack_model)."""
    from ..compress.pack_model import pack
    return pack(net, model, net_path, model_path, bq)


def catalog():
    """Every generated net (sepnets.netgen.catalog)."""
    from ..netgen.catalog import catalog as _catalog
    return _catalog()


def bake(w, alpha):
    """alpha_c * sign(w_c) as the release stores it (sepnets.compress.binarize)."""
    from ..compress.binarize import bake as _bake
    return _bake(w, alpha)


def cifar10_classes():
    """The CIFAR-10 class names in label order."""
    from ..data.cifar10_sources import CLASSES
    return list(CLASSES)


def cifar10_gcn(images, scale):
    """Global contrast normalization exactly as data preparation applies it."""
    from ..data.cifar10 import gcn
    return gcn(images, scale)
