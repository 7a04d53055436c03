"""representation_probe's SLURM launcher (launcher.py). It lives here because Hydra loads launchers only from
the `hydra_plugins` namespace."""
