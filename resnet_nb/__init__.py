"""resnet_nb: the package behind resnet-book (He et al. 2015, CIFAR-10, reproduced)."""

__version__ = "0.1.0"
