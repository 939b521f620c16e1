"""A tiny CIFAR-10 net trained for a few hundred iterations on real images, which
the quant/size/pack tests share through conftest's session fixture `cifar`
(trained once per session). A helper module, not a test module, so that
conftest does not import tests; test_quant_pattern_net checks that it learns."""
import io
import os
import re
import tarfile

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
TRAIN_PER_CLASS = 40
VAL_PER_CLASS = 20
BATCH = 50
ITERS = 200


def read_cifar(archive, per_split):
    """{split: (uint8 N x 3 x 32 x 32 BGR, labels)} read with Pillow from the
    shared JPEG archive: the first `per_split[split]` images of every class."""
    from PIL import Image
    pat = re.compile(r"cifar10-jpeg/(train|test)/([a-z]+)/(\d+)\.jpg$")
    got = {s: [] for s in per_split}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            m = pat.search(member.name)
            if not m or m.group(1) not in per_split or int(m.group(3)) >= per_split[m.group(1)]:
                continue
            img = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
            arr = np.asarray(img, dtype=np.uint8)[:, :, ::-1].transpose(2, 0, 1)
            got[m.group(1)].append((m.group(2), int(m.group(3)), arr))
    out = {}
    for split, items in got.items():
        items.sort(key=lambda t: (t[1], CLASSES.index(t[0])))  # classes interleaved
        assert len(items) == per_split[split] * len(CLASSES), (split, len(items))
        out[split] = (np.stack([t[2] for t in items]),
                      np.array([CLASSES.index(t[0]) for t in items]))
    return out


def write_lmdb(path, images, labels, caffe_pb2):
    import lmdb
    with lmdb.open(str(path), map_size=1 << 26) as env, env.begin(write=True) as txn:
        for i, (img, lab) in enumerate(zip(images, labels)):
            d = caffe_pb2.Datum(channels=3, height=32, width=32, data=img.tobytes(),
                                label=int(lab))
            txn.put(f"{i:08d}".encode(), d.SerializeToString())


def cifar_net_proto(caffe, train_src, val_src):
    """train_val net: 3x3, 5x5, 3x3+BN, 1x1 convs and two FC layers."""
    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    tp = dict(scale=1 / 64.0, mean_value=[113, 122, 125])
    n.data, n.label = L.Data(source=str(train_src), backend=P.Data.LMDB, batch_size=BATCH,
                             transform_param=tp, ntop=2, include=dict(phase=caffe.TRAIN))
    train_data = str(n.to_proto())
    n.data, n.label = L.Data(source=str(val_src), backend=P.Data.LMDB, batch_size=BATCH,
                             transform_param=tp, ntop=2, include=dict(phase=caffe.TEST))

    def conv(bottom, num, k, stride=1):
        return L.Convolution(bottom, num_output=num, kernel_size=k, pad=k // 2, stride=stride,
                             weight_filler=dict(type="msra"), bias_filler=dict(type="constant"))
    n.conv1 = conv(n.data, 16, 3)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.conv2 = conv(n.pool1, 32, 5, stride=2)
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.conv3 = conv(n.relu2, 32, 3)
    n.bn3 = L.BatchNorm(n.conv3, in_place=True)
    n.scale3 = L.Scale(n.bn3, bias_term=True, in_place=True)
    n.relu3 = L.ReLU(n.scale3, in_place=True)
    n.conv4 = conv(n.relu3, 32, 1)
    n.relu4 = L.ReLU(n.conv4, in_place=True)
    n.fc5 = L.InnerProduct(n.relu4, num_output=32, weight_filler=dict(type="msra"))
    n.relu5 = L.ReLU(n.fc5, in_place=True)
    n.fc6 = L.InnerProduct(n.relu5, num_output=10, weight_filler=dict(type="msra"))
    n.loss = L.SoftmaxWithLoss(n.fc6, n.label)
    n.accuracy = L.Accuracy(n.fc6, n.label, include=dict(phase=caffe.TEST))
    # the TRAIN data layer first, as in a release train_val.prototxt
    text = str(n.to_proto())
    return train_data + text


def trained_cifar(tmp_path_factory, shared_dir, caffe):
    """Paths of the trained tiny net (train_val prototxt, caffemodel, val LMDB)."""
    from caffe.proto import caffe_pb2
    root = tmp_path_factory.mktemp("cifar_net")
    data = read_cifar(os.path.join(shared_dir, "data", "cifar10-jpeg.tar.gz"),
                      {"train": TRAIN_PER_CLASS, "test": VAL_PER_CLASS})
    write_lmdb(root / "train_lmdb", *data["train"], caffe_pb2)
    write_lmdb(root / "val_lmdb", *data["test"], caffe_pb2)
    proto = root / "train_val.prototxt"
    proto.write_text(cifar_net_proto(caffe, root / "train_lmdb", root / "val_lmdb"))
    solver = root / "solver.prototxt"
    solver.write_text(f'net: "{proto}"\nbase_lr: 0.01\nmomentum: 0.9\nweight_decay: 0.0005\n'
                      f'lr_policy: "fixed"\nmax_iter: {ITERS}\ndisplay: 0\nrandom_seed: 7\n'
                      'snapshot_after_train: false\ntest_initialization: false\n'
                      'solver_mode: CPU\n')
    s = caffe.SGDSolver(str(solver))
    s.step(ITERS)
    model = root / "trained.caffemodel"
    s.net.save(str(model))
    return dict(root=root, prototxt=str(proto), model=str(model),
                val_lmdb=str(root / "val_lmdb"), val_images=len(data["test"][1]))


def evaluate(caffe, prototxt, model, batches):
    """Mean TEST accuracy of a model over `batches` batches (pycaffe)."""
    net = caffe.Net(prototxt, caffe.TEST, weights=model)
    # forward() returns views of the net's blobs: take each value at once
    return float(np.mean([float(net.forward()["accuracy"]) for _ in range(batches)]))
