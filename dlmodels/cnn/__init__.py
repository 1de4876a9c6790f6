"""Convolutional networks on NHWC images ``[N, H, W, C] -> logits [N, n_classes]``, built from
``dlmodels.nn``: LeNet-5, AlexNet, VGG, ResNet, and a plain conv-pool classifier (``convnet``).

Every ``apply(params, x, *, key=None, train=False, return_features=False)``; with
``return_features=True`` it returns ``(logits, features)``, a dict of intermediate maps (the first
convolution's output is ``features["c1"]`` in LeNet-5, ``"conv1"`` in AlexNet,
``"block1_conv1"`` in VGG and ``"stem"`` in ResNet).
"""

from dlmodels.cnn.alexnet import alexnet
from dlmodels.cnn.convnet import convnet
from dlmodels.cnn.lenet import lenet5
from dlmodels.cnn.resnet import resnet
from dlmodels.cnn.shapes import count_params
from dlmodels.cnn.vgg import VGG11, VGG13, VGG16, VGG19, vgg

FIRST_CONV = {"lenet5": "c1", "alexnet": "conv1", "vgg": "block1_conv1", "resnet": "stem",
              "convnet": "conv_0"}

__all__ = ["lenet5", "alexnet", "convnet", "vgg", "resnet", "count_params", "VGG11", "VGG13", "VGG16",
           "VGG19", "FIRST_CONV"]
