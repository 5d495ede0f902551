"""Sizes of the demo: ``Settings.for_full()`` and the smaller ``Settings.for_quick()``."""

from dataclasses import asdict, dataclass


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
    t_train: float = 400.0     # training snapshots every `every`
    every: float = 0.2         # snapshot interval (5 LES steps)
    t_test: float = 200.0      # held-out trajectory = the long coupled run
    nseg: int = 8              # held-out forecast segments (initial states)
    horizon: float = 10.0      # lead-time horizon of the short-term error
    epochs: int = 150
    ap_k: int = 5              # a posteriori: unrolled snapshots per window
    ap_windows: int = 400      # a posteriori: windows of the training trajectory
    ap_epochs: int = 10
    threads: int = 1           # libtorch threads in both Fortran and twin runs
    tolerance: float = 0.0     # Fortran vs twin: bit for bit expected
    record_every: int = 10     # the first nn segment records every 10th closure call

    @classmethod
    def for_full(cls):
        return cls()

    @classmethod
    def for_quick(cls):
        return cls(quick=True, spinup=100.0, t_train=200.0, t_test=50.0, nseg=4,
                   horizon=5.0, epochs=100, ap_k=4, ap_windows=100, ap_epochs=3)

    @property
    def t_long(self):
        return self.t_test

    def asdict(self):
        return {**asdict(self), "t_long": self.t_long}
