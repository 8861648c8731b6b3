"""Optimizers like torch.optim, to read in order of increasing complexity:
SGD, Adagrad, RMSprop, Adadelta, Adam/AdamW; then lr_scheduler for learning-rate schedules."""
from tinygrad_edu.optim import lr_scheduler
from tinygrad_edu.optim.adadelta import Adadelta
from tinygrad_edu.optim.adagrad import Adagrad
from tinygrad_edu.optim.adam import Adam, AdamW
from tinygrad_edu.optim.optimizer import Optimizer
from tinygrad_edu.optim.rmsprop import RMSprop
from tinygrad_edu.optim.sgd import SGD

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
