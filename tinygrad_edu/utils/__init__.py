"""`torch.utils`'s face: `tinygrad_edu.utils.data` (datasets, samplers, DataLoader) and
`tinygrad_edu.utils.tensorboard` (SummaryWriter), so `torch.utils.data.DataLoader` ports by
changing the import. The implementations live in `tinygrad_edu.data` and `tinygrad_edu.logging`.
"""
from . import data

__all__ = ["data"]
