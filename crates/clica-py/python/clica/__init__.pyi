"""Type stubs of the clica package (its functions and classes live in the extension clica._clica)."""

import os
from typing import Any, Iterator, Literal, Mapping, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = npt.ArrayLike
"""A 2-D array: float32 or float64 (read in place), in any memory order; other real dtypes are converted."""

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Config = Union[str, os.PathLike, Mapping[str, Any], Sequence[Union[str, os.PathLike, Mapping[str, Any]]]]
"""A TOML file path, a dict of the same tables, or a list of them layered in order."""
Overrides = Union[Sequence[str], Mapping[str, Any]]
"""``["train.steps=500", ...]`` or ``{"train.steps": 500, ...}``, as ``clica train --set``."""

class Scores(TypedDict):
    """The scores of ``clica eval``; the MCC entries are None when z_hat is narrower than z."""

    r2: float
    r2_held_out: float
    mcc_pearson: Optional[float]
    mcc_spearman: Optional[float]
    assignment: Optional[list[int]]

def evaluate(z: ArrayLike, z_hat: ArrayLike) -> Scores:
    """Every score of representation z_hat (n × m) of latents z (n × d), as ``clica eval``.

    Raises ValueError for empty or non-finite inputs, different row counts, fewer than 4 rows.
    """

def r2(z: ArrayLike, z_hat: ArrayLike) -> float:
    """In-sample R² of the affine fit z_hat → z (scikit-learn's LinearRegression + r2_score)."""

def r2_held_out(z: ArrayLike, z_hat: ArrayLike) -> float:
    """R² of the affine fit on the first half of the rows, scored on the second half."""

def mcc(z: ArrayLike, z_hat: ArrayLike, correlation: Literal["pearson", "spearman"] = "pearson") -> float:
    """Mean |correlation| under the best one-to-one matching of z's dimensions to z_hat's columns."""

class Prior:
    """A latent prior of ``clica sample``: a space, a marginal p(z) and a conditional p(z̃ | z)."""

    def __init__(
        self,
        space: Literal["sphere", "box", "unbounded"] = "sphere",
        dim: int = 10,
        *,
        marginal: Literal["uniform", "normal", "laplace", "gennorm"] = "uniform",
        conditional: Literal["vmf", "normal", "laplace", "gennorm"] = "vmf",
        concentration: float = 1.0,
        radius: float = 1.0,
        low: float = 0.0,
        high: float = 1.0,
        marginal_scale: float = 1.0,
        beta: float = 3.0,
    ) -> None: ...
    @property
    def dim(self) -> int: ...
    def sample_marginal(self, n: int, seed: int = 0) -> F64:
        """n draws z ~ p(z): the z.npy of ``clica sample --n n --seed seed``."""
    def sample_conditional(self, z: ArrayLike, seed: int = 0) -> F64:
        """One draw z̃ ~ p(z̃ | z) per row of z: for z = sample_marginal(n, seed), the z_tilde.npy of ``clica sample``."""
    def sample(self, n: int, seed: int = 0) -> Tuple[F64, F64]:
        """(z, z_tilde): both files of ``clica sample --n n --seed seed``."""
    def config(self) -> dict[str, Any]:
        """The parameters as ``clica sample`` records them."""
    def describe(self) -> str: ...

class Mixing:
    """The paper's invertible MLP mixing g, the network ``clica mix --seed seed`` builds."""

    def __init__(
        self,
        dim: int,
        layers: int = 3,
        seed: int = 0,
        *,
        activation: Literal["leaky_relu", "relu", "elu", "softplus", "smooth_leaky_relu"] = "leaky_relu",
        cond_pool: int = 25000,
        cond_ratio: float = 0.0,
    ) -> None: ...
    @property
    def dim(self) -> int: ...
    @property
    def layers(self) -> int: ...
    @property
    def fingerprint(self) -> str:
        """The network's stable identity, as ``clica mix`` prints it."""
    @property
    def weights(self) -> list[F64]: ...
    def forward(self, z: ArrayLike) -> F64:
        """x = g(z) row by row: the x.npy of ``clica mix``."""
    def inverse(self, x: ArrayLike) -> F64:
        """The exact inverse z = g⁻¹(x) (ValueError for a non-invertible activation)."""
    def config(self) -> dict[str, Any]: ...

class Batches(Iterator[Tuple[F32, F32, F64]]):
    """The iterator of ``Data.batches``: (x, x_tilde, z) per step."""

    def __iter__(self) -> "Batches": ...
    def __next__(self) -> Tuple[F32, F32, F64]: ...
    def __len__(self) -> int: ...

class Data:
    """The data-generating process of a run configuration (prior and mixing, as ``clica train`` builds them)."""

    def __init__(self, config: Optional[Config] = None, overrides: Optional[Overrides] = None) -> None: ...
    def batches(self, steps: Optional[int] = None, batch: Optional[int] = None) -> Batches:
        """(x, x_tilde, z) for `steps` steps of `batch` anchors; by default the trainer's own batches, in order."""
    def sample(self, n: int, stream: str = "eval") -> Tuple[F64, F64]:
        """(x, z): n fresh latents and their observations, from the seed's named stream."""
    @property
    def fingerprint(self) -> str: ...
    @property
    def latent_dim(self) -> int: ...
    @property
    def observation_dim(self) -> int: ...
    @property
    def seed(self) -> int: ...
    def config_toml(self) -> str: ...

class Encoder:
    """A finished run's encoder, rebuilt from its folder (config.toml, encoder.safetensors) as ``clica encode`` does."""

    def __init__(self, run: Union[str, os.PathLike]) -> None: ...
    def encode(self, x: ArrayLike, batch: int = 512) -> F32:
        """The representation (float32, rows × output_dim) of rows of observations; `batch` rows per pass (0: all)."""
    @property
    def input_shape(self) -> list[int]: ...
    @property
    def output_dim(self) -> int: ...
    @property
    def describe(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...

def train(
    config: Optional[Config] = None,
    out: Union[str, os.PathLike, None] = None,
    overrides: Optional[Overrides] = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train as ``clica train`` does and return its summary (summary.json as a dict).

    Ctrl-C stops the run after its step with a checkpoint, then raises KeyboardInterrupt.
    """

def resume(
    dir: Union[str, os.PathLike],
    config: Optional[Config] = None,
    overrides: Optional[Overrides] = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Continue the run in `dir` from its checkpoint, as ``clica train --resume dir``."""
