"""Turning the data researchers actually have (CIFAR-10 archives or folders,
ImageNet class folders) into the LMDBs and mean files the Caffe nets read.

Modules: ``datum_lmdb`` (Datum/BlobProto records and atomic LMDB writing),
``cifar10_sources`` (reading every CIFAR-10 distribution), ``cifar10``
(the three preprocessing versions and the prepare_cifar10 command),
``image_repair`` (deciding which ImageNet files OpenCV would misread and
re-encoding them), ``imagenet`` (the prepare_imagenet command around
Caffe's convert_imageset and compute_image_mean) and ``trial_run`` (a few
``caffe train`` iterations of a train_val prototxt on prepared data).
"""
