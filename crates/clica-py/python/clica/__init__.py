"""clica: Contrastive Learning Inverts the Data Generating Process (Zimmermann et al., 2021).

The exact latent samplers, the paper's invertible mixing networks, R²/MCC identifiability
scores and the contrastive trainer of the Rust project clica, numpy in and out. Every
function gives the numbers the ``clica`` command-line tool gives for the same arguments and
seed, because the same Rust code computes them.

>>> import clica
>>> prior = clica.Prior("sphere", 10, conditional="vmf", concentration=10.0)
>>> z, z_tilde = prior.sample(4096, seed=1)      # clica sample --n 4096 --seed 1
>>> g = clica.Mixing(10, layers=3, seed=1)       # clica mix --seed 1
>>> scores = clica.evaluate(z, g.forward(z))     # clica eval
>>> sorted(scores)
['assignment', 'mcc_pearson', 'mcc_spearman', 'r2', 'r2_held_out']
"""

from ._clica import (
    Batches,
    Data,
    Encoder,
    Mixing,
    Prior,
    __version__,
    evaluate,
    mcc,
    r2,
    r2_held_out,
    resume,
    train,
)

__all__ = [
    "Batches",
    "Data",
    "Encoder",
    "Mixing",
    "Prior",
    "__version__",
    "evaluate",
    "mcc",
    "r2",
    "r2_held_out",
    "resume",
    "train",
]
