"""Single-image 3D mesh reconstruction trained from silhouettes (Kato et al. 2018, §3.1).

:mod:`.dataset` reads and writes the paper's dataset files, :mod:`.shapes` generates procedural
shape classes, :mod:`.model` is the encoder-decoder, :mod:`.train` its training loop (one process
or DDP under ``torchrun``), :mod:`.evaluate` the voxel IoU protocol with its two baselines. The
commands are in :mod:`meshopt_cli.commands.reconstruct`.
"""
