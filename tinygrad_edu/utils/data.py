"""`torch.utils.data`'s names over `tinygrad_edu.data` (one implementation; this face only
re-exports it).

    from tinygrad_edu.utils.data import DataLoader, TensorDataset, random_split
"""
from ..data.dataloader import DataLoader, get_worker_info
from ..data.dataset import (
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)
from ..data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from ..missing import module_getattr

__all__ = [
    "BatchSampler",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "default_collate",
    "get_worker_info",
    "random_split",
]


__getattr__ = module_getattr(__name__)
