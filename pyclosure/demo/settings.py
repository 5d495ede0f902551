"""Sizes of the demo: ``Settings.for_full()`` and the smaller ``Settings.for_quick()``."""

from dataclasses import asdict, dataclass

#: The engines the coupled runs can call: the file they load, the bridge's name for the engine,
#: and what runs the same file in Python (the twin of the Fortran run and of the replay).
ENGINES = {
    "pt2": ("closure.pt2", "aotinductor", "Python's AOTInductor loader"),
    "native": ("closure.nnp", "native", "the native kernels' cffi twin"),
}


@dataclass
class Settings:
    """Sizes and lengths of one demo run (times in model time units)."""

    quick: bool = False
    n_dns: int = 4096
    n_les: int = 128
    length: float = 100.0
    nu: float = 0.02
    dt_les: float = 0.04
    spinup: float = 200.0
    t_train: float = 400.0  # training snapshots every `every`
    every: float = 0.2  # snapshot interval (5 LES steps)
    t_test: float = 200.0  # held-out trajectory = the long coupled run
    nseg: int = 8  # held-out forecast segments (initial states)
    horizon: float = 10.0  # lead-time horizon of the short-term error
    epochs: int = 150
    ap_k: int = 5  # a posteriori: unrolled snapshots per window
    ap_windows: int = 400  # a posteriori: windows of the training trajectory
    ap_epochs: int = 10
    threads: int = 1  # libtorch threads in both Fortran and twin runs
    tolerance: float = 0.0  # Fortran vs twin: bit for bit expected
    record_every: int = 10  # the first nn segment records every 10th closure call
    engine: str = "pt2"  # what the coupled runs call: an ENGINES key

    @classmethod
    def for_full(cls):
        return cls()

    @classmethod
    def for_quick(cls):
        return cls(
            quick=True,
            spinup=100.0,
            t_train=200.0,
            t_test=50.0,
            nseg=4,
            horizon=5.0,
            epochs=100,
            ap_k=4,
            ap_windows=100,
            ap_epochs=3,
        )

    @property
    def t_long(self):
        return self.t_test

    @property
    def package(self):
        """The file every coupled run loads (``closure.pt2`` or ``closure.nnp``)."""
        return ENGINES[self.engine][0]

    @property
    def engine_name(self):
        """The bridge's name for the engine (``aotinductor`` or ``native``)."""
        return ENGINES[self.engine][1]

    @property
    def python_runner(self):
        """What runs the same file in Python, in words."""
        return ENGINES[self.engine][2]

    def asdict(self):
        return {**asdict(self), "t_long": self.t_long, "package": self.package}
