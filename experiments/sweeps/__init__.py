"""Hyper-parameter sweeps on Ray Tune: the configs (*.yaml) and the code behind
`python -m experiments.sweep CONFIG` (see docs/sweeps.md).

    config.py    read and check a sweep config (YAML or Python); no Ray needed
    setups.py    the experiments a sweep can run: what one trial trains, from its parameters
    trial.py     one trial on a Ray worker: tg.train.fit, reporting and checkpointing each epoch
    results.py   the results table (Markdown, HTML, CSV) and the TensorBoard hparams view
"""
