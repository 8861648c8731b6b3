"""Neural-network building blocks, like `torch.nn`: Module, layers, losses, init, functional."""
from . import functional, init
from .layers import (GELU, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d,
                     Dropout, Flatten, Identity, LayerNorm, LeakyReLU, Linear, LogSoftmax,
                     MaxPool2d, ReLU, Sigmoid, Softmax, Tanh)
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss,
                   l1_penalty, l2_penalty)
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = [
    "functional", "init", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential",
    "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d",
    "BatchNorm2d", "LayerNorm", "Dropout", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU",
    "Softmax", "LogSoftmax", "Flatten", "Identity", "CrossEntropyLoss", "NLLLoss", "BCELoss",
    "BCEWithLogitsLoss", "MSELoss", "L1Loss", "l1_penalty", "l2_penalty",
]
