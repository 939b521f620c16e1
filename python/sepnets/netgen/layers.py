"""Building blocks shared by the generators: a thin layer over ``caffe.NetSpec``.

It adds what every net here needs and NetSpec cannot say directly:

* TRAIN/TEST twins (the two Data layers; BatchNorm with use_global_stats
  false/true) share one layer name and top, which NetSpec's one-key-per-top
  model cannot hold: the builder emits the TRAIN layer and inserts its TEST
  twin right after it when the net is serialised.
* Layer names that differ from their top (``loss1/loss`` writes ``loss1/loss1``).
* The choice, per convolution, between a full-precision ``Convolution``, a
  ``BinaryPatternConvolution`` (MEAN or OFFSET scale) and a frozen stock
  ``Convolution`` (the release's ``*_fix_*_pattern`` files). The generators tag
  each convolution with a *role*; a :class:`Binarize` rule names the roles it
  binarizes, so one generator yields the full net and all its pattern variants.
* One builder writes both the train_val net (Data layers, losses, accuracies)
  and the deploy net (an Input layer and a Softmax ``prob``), so the two cannot
  drift apart.
"""
from dataclasses import dataclass, field

from google.protobuf import text_format

from ..caffeio.env import import_caffe

MSRA = dict(type="msra")
XAVIER = dict(type="xavier")


def constant(value):
    return dict(type="constant", value=value)


def gaussian(std):
    return dict(type="gaussian", std=std)


@dataclass(frozen=True)
class Dataset:
    """Where a dataset's LMDBs live (relative to the repo root) and how Caffe
    feeds them: the same preprocessing for every net of a dataset keeps the
    size/accuracy comparisons fair."""
    name: str
    train_source: str
    test_source: str
    crop: int
    num_classes: int
    test_images: int
    train_mean_file: str = None
    test_mean_file: str = None
    mean_value: tuple = ()

    @property
    def input_shape(self):
        return (3, self.crop, self.crop)

    def paths(self):
        """Every file or folder the train_val nets of this dataset read."""
        return [p for p in (self.train_source, self.test_source, self.train_mean_file,
                            self.test_mean_file) if p]


# CIFAR-10 as the release's data version 3 (4-pixel padding + GCN, random 32x32
# crops of the padded 40x40 training images, hence separate train/test means).
CIFAR10 = Dataset("cifar10", "data/cifar10/v3/train_lmdb", "data/cifar10/v3/test_lmdb",
                  crop=32, num_classes=10, test_images=10000,
                  train_mean_file="data/cifar10/v3/mean_train.binaryproto",
                  test_mean_file="data/cifar10/v3/mean_test.binaryproto")
# ImageNet (ILSVRC-2012) with the per-channel BGR means of the release's GoogLeNet.
IMAGENET = Dataset("imagenet", "data/ilsvrc12/train_lmdb", "data/ilsvrc12/val_lmdb",
                   crop=224, num_classes=1000, test_images=50000, mean_value=(104, 117, 123))


@dataclass(frozen=True)
class Binarize:
    """Which convolutions carry binary patterns and how they are written.

    ``layer_type`` "pattern": ``BinaryPatternConvolution`` in FIXED train mode
    with ``scale_mode`` MEAN (a learned alpha per filter, bound to mean |W_c|)
    or OFFSET (the release's constant ``offset``); "fix": a stock Convolution
    whose weights are frozen (lr_mult 0), for weights binarized offline.
    """
    roles: frozenset
    layer_type: str = "pattern"
    scale_mode: str = "MEAN"
    offset: float = None

    def __post_init__(self):
        if self.layer_type not in ("pattern", "fix"):
            raise ValueError(f"unknown layer_type {self.layer_type!r}")
        if self.scale_mode not in ("MEAN", "OFFSET"):
            raise ValueError(f"unknown scale_mode {self.scale_mode!r}")
        if self.scale_mode == "OFFSET" and not (self.offset and self.offset > 0):
            raise ValueError("OFFSET needs an offset > 0")


FROZEN = dict(lr_mult=0, decay_mult=0)


@dataclass
class NetBuilder:
    """Accumulates one net; call the layer methods in file order, then
    :meth:`to_proto`. In deploy mode, losses and accuracies are dropped and
    :meth:`prob` adds the Softmax; in train_val mode :meth:`prob` does nothing.
    """
    name: str
    dataset: Dataset
    deploy: bool
    binarize: Binarize = None
    pattern_layers: list = field(default_factory=list)

    def __post_init__(self):
        caffe = import_caffe()
        self.L, self.P, self.pb = caffe.layers, caffe.params, caffe.proto.caffe_pb2
        self.n = caffe.NetSpec()
        self._names = {}   # NetSpec key -> layer name, where they differ
        self._twins = {}   # NetSpec key -> LayerParameter -> its TEST twin
        self.label = None

    # -- plumbing ---------------------------------------------------------
    def _add(self, key, top, name=None):
        if key in self.n.tops:
            raise ValueError(f"{self.name}: duplicate top/layer key {key!r}")
        self.n[key] = top
        if name and name != key:
            self._names[key] = name
        return top

    def to_proto(self):
        net = self.n.to_proto()
        out = self.pb.NetParameter(name=self.name)
        for layer in net.layer:
            key = layer.name
            layer.name = self._names.get(key, key)
            out.layer.add().CopyFrom(layer)
            if key in self._twins:
                out.layer.add().CopyFrom(self._twins[key](layer))
        return out

    def _test_twin(self, edit):
        def twin(layer):
            t = self.pb.LayerParameter()
            t.CopyFrom(layer)
            t.include[0].phase = self.pb.TEST
            edit(t)
            return t
        return twin

    # -- data -------------------------------------------------------------
    def data(self, train_batch, test_batch):
        """Input (deploy) or TRAIN/TEST Data layers; returns the data top."""
        ds, L = self.dataset, self.L
        if self.deploy:
            return self._add("data", L.Input(shape=dict(dim=[1, *ds.input_shape])))
        tf = dict(mirror=True, crop_size=ds.crop)
        if ds.train_mean_file:
            tf["mean_file"] = ds.train_mean_file
        if ds.mean_value:
            tf["mean_value"] = list(ds.mean_value)
        data, label = L.Data(ntop=2, include=dict(phase=self.pb.TRAIN), transform_param=tf,
                             data_param=dict(source=ds.train_source, batch_size=train_batch,
                                             backend=self.P.Data.LMDB))

        def edit(t):
            t.transform_param.mirror = False
            if ds.test_mean_file:
                t.transform_param.mean_file = ds.test_mean_file
            t.data_param.source = ds.test_source
            t.data_param.batch_size = test_batch
        self._twins["data"] = self._test_twin(edit)
        self._add("data", data)
        self.label = self._add("label", label)
        return data

    # -- parameter layers -------------------------------------------------
    def conv(self, bottom, name, nout, kernel, stride=None, pad=None, group=None, bias=True,
             weight_filler=None, bias_filler=None, lr=((1, 1), (2, 0)), role=None, top=None):
        """A convolution; binarized when ``role`` is one the Binarize rule names.

        ``stride``/``pad``/``group`` left None are not written (Caffe defaults),
        so generated files can match released ones field for field.
        ``lr`` gives (lr_mult, decay_mult) for weights and bias; None writes
        no ``param`` entries.
        """
        cp = dict(num_output=nout, kernel_size=kernel)
        for k, v in (("stride", stride), ("pad", pad), ("group", group)):
            if v is not None:
                cp[k] = v
        if not bias:
            cp["bias_term"] = False
        if weight_filler:
            cp["weight_filler"] = weight_filler
        if bias and bias_filler:
            cp["bias_filler"] = bias_filler
        specs = None
        if lr is not None:
            specs = [dict(lr_mult=lr[0][0], decay_mult=lr[0][1])]
            if bias:
                specs.append(dict(lr_mult=lr[1][0], decay_mult=lr[1][1]))
        b, L = self.binarize, self.L
        if b is not None and role is not None and role in b.roles:
            self.pattern_layers.append(name)
            bias_spec = ([specs[1]] if specs else [{}]) if bias else []
            if b.layer_type == "fix":
                layer = L.Convolution(bottom, param=[FROZEN] + bias_spec, convolution_param=cp)
            else:
                bpp = self.pb.BinaryPatternParameter
                bp = dict(scale_mode=getattr(bpp, b.scale_mode), train_mode=bpp.FIXED)
                if b.scale_mode == "OFFSET":
                    bp["offset"] = b.offset
                if kernel == 1:
                    bp["allow_1x1"] = True
                alpha = [dict(lr_mult=1, decay_mult=0)] if b.scale_mode == "MEAN" else []
                layer = L.BinaryPatternConvolution(bottom, param=[FROZEN] + bias_spec + alpha,
                                                   convolution_param=cp, binary_pattern_param=bp)
        elif specs is None:
            layer = L.Convolution(bottom, convolution_param=cp)
        else:
            layer = L.Convolution(bottom, param=specs, convolution_param=cp)
        return self._add(top or name, layer, name)

    def fc(self, bottom, name, nout, weight_filler, bias_filler, lr=((1, 1), (2, 0)), top=None):
        ip = dict(num_output=nout, weight_filler=weight_filler, bias_filler=bias_filler)
        kw = {} if lr is None else dict(param=[dict(lr_mult=lr[0][0], decay_mult=lr[0][1]),
                                               dict(lr_mult=lr[1][0], decay_mult=lr[1][1])])
        return self._add(top or name, self.L.InnerProduct(bottom, inner_product_param=ip, **kw),
                         name)

    def bn(self, top, bn_name, scale_name):
        """BatchNorm (statistics never learned by SGD) + Scale, in place.

        train_val: a TRAIN layer with batch statistics and its TEST twin with
        the global ones, as the release writes them; deploy: the TEST one.
        """
        frozen3 = [FROZEN, FROZEN, FROZEN]
        L = self.L
        if self.deploy:
            t = L.BatchNorm(top, in_place=True, param=frozen3,
                            batch_norm_param=dict(use_global_stats=True))
        else:
            t = L.BatchNorm(top, in_place=True, param=frozen3, include=dict(phase=self.pb.TRAIN),
                            batch_norm_param=dict(use_global_stats=False))

            def edit(layer):
                layer.batch_norm_param.use_global_stats = True
            self._twins[bn_name] = self._test_twin(edit)
        self._add(bn_name, t)
        return self._add(scale_name, L.Scale(t, in_place=True, scale_param=dict(bias_term=True)))

    # -- parameter-free layers --------------------------------------------
    def relu(self, top, name):
        return self._add(name, self.L.ReLU(top, in_place=True))

    def dropout(self, top, name, ratio):
        return self._add(name, self.L.Dropout(top, in_place=True,
                                              dropout_param=dict(dropout_ratio=ratio)))

    def pool(self, bottom, name, pool, kernel=None, stride=None, pad=None, global_pooling=False,
             top=None):
        pp = dict(pool=getattr(self.P.Pooling, pool))
        for k, v in (("kernel_size", kernel), ("stride", stride), ("pad", pad)):
            if v is not None:
                pp[k] = v
        if global_pooling:
            pp["global_pooling"] = True
        return self._add(top or name, self.L.Pooling(bottom, pooling_param=pp), name)

    def lrn(self, bottom, name, local_size=5, alpha=0.0001, beta=0.75):
        return self._add(name, self.L.LRN(bottom, lrn_param=dict(
            local_size=local_size, alpha=alpha, beta=beta)))

    def concat(self, name, *bottoms):
        return self._add(name, self.L.Concat(*bottoms))

    def eltsum(self, name, *bottoms):
        return self._add(name, self.L.Eltwise(*bottoms, eltwise_param=dict(
            operation=self.P.Eltwise.SUM)))

    # -- heads ------------------------------------------------------------
    def loss(self, score, name, top=None, loss_weight=None):
        if self.deploy:
            return None
        kw = {} if loss_weight is None else dict(loss_weight=loss_weight)
        return self._add(top or name, self.L.SoftmaxWithLoss(score, self.label, **kw), name)

    def accuracy(self, score, name, top, top_k=None, test_only=False):
        if self.deploy:
            return None
        kw = {}
        if top_k is not None:
            kw["accuracy_param"] = dict(top_k=top_k)
        if test_only:
            kw["include"] = dict(phase=self.pb.TEST)
        return self._add(top, self.L.Accuracy(score, self.label, **kw), name)

    def prob(self, score):
        if not self.deploy:
            return None
        return self._add("prob", self.L.Softmax(score))


def render(net, what, generator):
    """Text of a generated prototxt, with a header saying where it comes from."""
    head = [f"# {what}",
            f"# Generated by tools/gen_prototxt.py ({generator}); edit the generator, "
            "not this file.",
            "# Paths are relative to the repository root: run caffe from there."]
    return "\n".join(head) + "\n" + text_format.MessageToString(net)
