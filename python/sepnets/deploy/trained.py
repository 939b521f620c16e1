"""The trained models kept in ``models/`` and the net each one runs with.

``models/<name>/<name>.caffemodel`` is a trained model of the project, with a
``readme.md`` saying which generated net (``prototxt/<folder>/``) it was
trained with. ``NETS`` below is that pairing, the one place the code reads it
from: the size report and the tests take every model through the train_val of
its net (its TEST data layer gives the input shape and the preprocessing).
``tests/test_export_onnx.py`` checks that the table covers exactly the folders
in ``models/`` and names the net each readme names.

The generated train_vals are the nets the models were trained in, with one
difference: the ``*-ste-m20-bn`` models and ``cifar10-sepnet-b-ste-bn`` were
trained with ``train_mode: STE`` (and pattern lr_mult 20), the generated nets
have ``train_mode: FIXED``. The models hold no alpha blob, so the FIXED layer computes alpha =
mean |W_c| exactly as STE's forward does: the same net at inference.
"""
import os
from dataclasses import dataclass

from . import _caffeio as io

MODELS_DIR = "models"

#: model name (its folder in models/) -> the folder of its net in prototxt/
NETS = {
    "cifar10-resnet20-8000": "cifar10-resnet20",
    "cifar10-resnet20-8000-bipattern-offset0.07": "cifar10-resnet20-fix-pattern",
    "cifar10-resnet20-12000": "cifar10-resnet20",
    "cifar10-resnet20-12000-bipattern-offset0.04": "cifar10-resnet20-fix-pattern",
    "cifar10-resnet20-12000-refined": "cifar10-resnet20-fix-pattern",
    "cifar10-resnet20-ste-m20-bn": "cifar10-resnet20-pattern-mean",
    "cifar10-resnet32-ste-m20-bn": "cifar10-resnet32-pattern-mean",
    "cifar10-resnet44-ste-m20-bn": "cifar10-resnet44-pattern-mean",
    "cifar10-sepnet-r-8000": "cifar10-sepnet-r",
    "cifar10-sepnet-b-ste-bn": "cifar10-sepnet-b",
}


@dataclass(frozen=True)
class TrainedModel:
    name: str
    net: str            # folder under prototxt/

    @property
    def caffemodel(self):
        """Path relative to the repository root."""
        return f"{MODELS_DIR}/{self.name}/{self.name}.caffemodel"

    @property
    def train_val(self):
        """Path relative to the repository root."""
        return f"prototxt/{self.net}/train_val.prototxt"

    def path(self, rel):
        return os.path.join(io.REPO_ROOT, rel)


def model_folders():
    """Names of the folders in models/ that hold a caffemodel of their name."""
    root = os.path.join(io.REPO_ROOT, MODELS_DIR)
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root)
                  if os.path.isfile(os.path.join(root, d, f"{d}.caffemodel")))


def model(name):
    """The TrainedModel `name` (one clear error if the table or the files lack it)."""
    if name not in NETS:
        raise io.UserError(f"{MODELS_DIR}/{name}", "no net is known for this model; add "
                           "it to NETS in python/sepnets/deploy/trained.py (its readme "
                           "names the prototxt/ folder)")
    m = TrainedModel(name, NETS[name])
    for rel, what in ((m.caffemodel, "caffemodel"), (m.train_val, "prototxt")):
        io.require_file(m.path(rel), what)
    return m


def trained_models():
    """Every model in models/, each with its net, sorted by name."""
    return [model(name) for name in model_folders()]
