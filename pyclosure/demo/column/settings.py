"""Sizes of the column example: ``Settings.for_full()`` and the smaller ``Settings.for_quick()``."""

from dataclasses import asdict, dataclass, field


@dataclass
class Settings:
    """Sizes of one run of the column example (times in seconds)."""

    quick: bool = False
    nlev: int = 30
    nband: int = 16  # spectral bands of the scheme
    dt: float = 21600.0  # 6 hours
    chs: float = 10.0  # surface sensible heat exchange, W m-2 K-1
    rh0: float = 0.8  # relative humidity of the coupled runs
    ts_range: tuple = (285.0, 305.0)
    # training data: scheme-driven runs at several humidities, states every `train_every` steps
    train_rh0: tuple = (0.6, 0.7, 0.8, 0.9)
    train_columns: int = 48  # columns per training run (surface temperatures drawn at random)
    train_steps: int = 1200
    train_every: int = 20
    jitter: float = 1.5  # K: a smooth random perturbation added to a copy of each state
    hidden: int = 128
    epochs: int = 100
    batch_size: int = 512
    # coupled runs
    ncol: int = 32
    nproma: int = 8
    nsteps: int = 1600  # 400 days
    every: int = 50
    record_every: int = 97  # replay sample of the emulator's calls (6400 calls)
    perturb_dts: float = 10.0  # the perturbed run: surface this much warmer ...
    perturb_rh0: float = 0.97  # ... and this moist
    guard_quantile: float = 0.999
    # cost per block
    bench_ncol: int = 128
    bench_nproma: tuple = (1, 8, 32, 128)
    bench_rounds: int = 9
    engines: tuple = field(default=("nnp", "pt", "pt2"))

    @classmethod
    def for_full(cls):
        return cls()

    @classmethod
    def for_quick(cls, pt2=True):
        """A short version (the tests): fewer training states and epochs, shorter runs."""
        return cls(
            quick=True,
            train_rh0=(0.7, 0.9),
            train_columns=24,
            train_steps=600,
            train_every=10,
            epochs=60,
            hidden=64,
            batch_size=256,
            record_every=61,
            engines=("nnp", "pt", "pt2") if pt2 else ("nnp", "pt"),
        )

    def asdict(self):
        return asdict(self)
