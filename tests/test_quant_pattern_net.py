"""The tiny CIFAR-10 net the quant/size/pack tests share (tiny_cifar_net,
conftest's `cifar` fixture) really learned something."""
from tiny_cifar_net import BATCH, evaluate


def test_tiny_net_learned_from_real_images(cifar, caffe):
    """The fixture is a trained model, not noise: well above 10% on held-out images."""
    acc = evaluate(caffe, cifar["prototxt"], cifar["model"], cifar["val_images"] // BATCH)
    print(f"tiny CIFAR net: val accuracy {acc:.3f} on {cifar['val_images']} test images")
    assert acc > 0.2
