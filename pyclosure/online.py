"""Online training: train a closure while the host model runs, from Fortran, C or Python.

The host creates a trainer bound to its loaded model (``nn_train_create`` in Fortran,
``nnc_train_create`` in C, :class:`pyclosure.bridge.Trainer` in Python) from a
*training spec*, calls ``nn_train_step(trainer, inputs, targets)`` on batches made
from its own arrays, and ``nn_train_sync(trainer, model)`` to put the new weights into
the running model. The step runs this module's :class:`OnlineTrainer` in a Python
interpreter embedded in the host process, on zero-copy views of the host's arrays.

The training spec
-----------------
A spec is ``"FILE.py:FUNCTION"`` (``"FILE.py"`` means the function ``spec``) or
``"package.module:FUNCTION"``; the default is :func:`default_spec`. The function takes
a :class:`SpecContext` (the model file, its engine and contract, the host's options) and
returns a :class:`TrainingSpec` (or a dict with its fields)::

    import torch
    from pyclosure.online import TrainingSpec

    def spec(ctx):
        closure = torch.jit.load(ctx.model_path)          # or build and load your nn.Module
        return TrainingSpec(closure, torch.optim.AdamW(closure.parameters(), lr=ctx.get("lr", 1e-3)))

The module must have the parameter names and shapes of the network the model file runs
(its ``state_dict`` names), so that a sync can hand the weights over by name. Anything
pyclosure's training stack offers works inside: constrained closures, Lipschitz layers,
stochastic heads with their Gaussian NLL as ``loss``, a posteriori losses.

Data parallel
-------------
With ``rank``, ``size`` and ``rendezvous`` options every rank's trainer joins one
``torch.distributed`` group, starts from rank 0's weights and averages the gradients of
each step over the ranks, so all ranks keep the same weights. The ranks first agree that
each built its spec: a rank whose spec failed reports its own message, the others report
which rank failed, and nobody waits forever.

The group's backend (:func:`dist_backend`) is gloo where torch has no CUDA, and
``"cpu:gloo,cuda:nccl"`` where it has: CPU tensors (the ranks' agreement, a CPU module)
go through gloo and CUDA tensors (a module the spec put on a GPU, its gradients and
loss) through NCCL, in the same group. Every rank picks the same backend without asking
the others, whether or not its own spec built. The NCCL path has not been run in this
project's tests, which have no GPU; gloo with two ranks is tested.
"""

import dataclasses
import hashlib
import importlib
import importlib.util
import io
import json
import math
import os
import pathlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
from torch import nn

from .errors import (
    ArgumentCountError,
    ArgumentError,
    DtypeError,
    FileAccessError,
    NonFiniteError,
    ShapeError,
    TrainingError,
)

#: Seconds a rank waits for the others (at creation and in each step) before it gives up.
DIST_TIMEOUT = 120


@dataclasses.dataclass
class SpecContext:
    """What a spec function is told.

    Attributes
    ----------
    model_path : str
        The model file the trainer is bound to.
    engine : str
        ``"torchscript"``, ``"aotinductor"`` or ``"native"``.
    contract : dict or None
        The model's embedded contract.
    options : dict of str
        The host's ``key=value`` options (all of them, as strings).
    rank, size : int
        This process's rank and the number of ranks (0 and 1 without data parallelism).
    """

    model_path: str
    engine: str
    contract: dict | None
    options: dict
    rank: int = 0
    size: int = 1

    def get(self, key, default):
        """Option ``key`` converted to the type of ``default`` (``default`` when absent)."""
        if key not in self.options:
            return default
        try:
            return type(default)(self.options[key])
        except ValueError as exc:
            raise ArgumentError(
                f"option {key}={self.options[key]!r} is not a {type(default).__name__}"
            ) from exc


def mse(prediction, target):
    """Mean squared error over everything (several outputs: summed over outputs)."""
    if isinstance(prediction, (tuple, list)):
        return sum(torch.mean((p - t) ** 2) for p, t in zip(prediction, target))
    return torch.mean((prediction - target) ** 2)


@dataclasses.dataclass
class TrainingSpec:
    """What a spec function returns.

    Attributes
    ----------
    module : nn.Module
        The network to train (a TorchScript module works too).
    optimizer : torch.optim.Optimizer
        Over ``module``'s parameters.
    loss : callable
        ``loss(prediction, target) -> scalar tensor``; with several outputs both are tuples.
    scheduler : optional
        A learning-rate scheduler, stepped after every optimiser step.
    max_grad_norm : float, optional
        Clip the gradient norm to this before each step.
    prepare : callable, optional
        ``prepare(inputs, targets) -> (inputs, targets)`` (lists of tensors, batch first):
        turns what the host passes into the module's inputs and the loss's targets, inside
        the step. For example, the host passes its companion high-resolution state as the
        target and ``prepare`` coarse-grains it into the subgrid flux (see
        :mod:`pyclosure.demo.online`). The host's arrays are checked before it (dtype,
        columns), the module's outputs against the prepared targets after it.
    """

    module: nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable = mse
    scheduler: Any = None
    max_grad_norm: float | None = None
    prepare: Callable | None = None


def default_spec(ctx):
    """The default: train the model file's own network (a TorchScript ``.pt``) with Adam on MSE.

    Options: ``lr`` (1e-3), ``weight_decay`` (0). A ``.pt2`` package or a native program
    holds no trainable network: give those a spec that builds the module they were
    exported from.
    """
    if ctx.engine != "torchscript":
        raise ArgumentError(
            f"the default spec trains TorchScript models; '{ctx.model_path}' runs on the "
            f'{ctx.engine} engine: give a spec ("file.py:function") that builds the module it '
            "was exported from"
        )
    module = torch.jit.load(ctx.model_path)
    optimizer = torch.optim.Adam(
        module.parameters(), lr=ctx.get("lr", 1e-3), weight_decay=ctx.get("weight_decay", 0.0)
    )
    return TrainingSpec(module, optimizer)


def weights_spec(ctx):
    """The model file's TorchScript network with the weights in option ``weights`` (a file a
    sync saved, see ``versions``); replay uses it to put a recorded weight version into a
    model (no training: SGD with learning rate 0)."""
    if "weights" not in ctx.options:
        raise ArgumentError("weights_spec needs the option weights=FILE")
    module = default_spec(ctx).module
    module.load_state_dict(torch.load(ctx.options["weights"], weights_only=True))
    return TrainingSpec(module, torch.optim.SGD(module.parameters(), lr=0.0))


def read_versions(folder, programs=False):
    """{SHA-256 of the weights: path} of the weight versions a run saved in ``folder``
    (``versions=``), each file checked against its listed SHA-256.

    With ``programs`` the paths are the native programs the syncs put into a native-engine
    model (``weights-v<N>.nnp``), still keyed by the weights' SHA-256 (what records name).
    """
    folder = pathlib.Path(folder)
    try:
        listed = json.loads((folder / "versions.json").read_text())["versions"]
    except (OSError, ValueError, KeyError) as exc:
        raise FileAccessError(f"cannot read the weight versions in '{folder}': {exc}") from exc
    out = {}
    for v in listed:
        if programs and "program" not in v:
            raise FileAccessError(
                f"weight version {v['version']} in '{folder}' has no native program: the run's "
                "model was not a native (.nnp) one"
            )
        name, sha = (v["program"], v["program_sha256"]) if programs else (v["file"], v["sha256"])
        path = folder / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FileAccessError(
                f"weight version {v['version']}: cannot read '{path}': {exc.strerror}"
            ) from exc
        if hashlib.sha256(data).hexdigest() != sha:
            raise FileAccessError(f"weight version {v['version']}: '{path}' does not have its listed SHA-256")
        out[v["sha256"]] = path
    return out


def dist_backend():
    """The torch.distributed backend of data-parallel training: ``"cpu:gloo,cuda:nccl"`` when
    torch has CUDA and NCCL (each tensor goes through the backend of its device), else ``"gloo"``."""
    import torch.distributed as dist

    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def load_spec(spec):
    """The spec function named by ``spec`` (see the module docstring); default_spec for ""."""
    if not spec:
        return default_spec
    target, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "spec")
    if target.endswith(".py") or os.sep in target:
        path = pathlib.Path(target)
        if not path.is_file():
            raise FileAccessError(f"training spec file '{target}' does not exist")
        mod_spec = importlib.util.spec_from_file_location(f"pyclosure_spec_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise FileAccessError(f"training spec module '{target}' cannot be imported: {exc}") from exc
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ArgumentError(f"training spec '{spec}': '{target}' has no function '{name}'")
    return fn


def _as_spec(made, where):
    if isinstance(made, dict):
        made = TrainingSpec(**made)
    if not isinstance(made, TrainingSpec):
        raise ArgumentError(f"training spec {where} returned {type(made).__name__}, not a TrainingSpec")
    if not isinstance(made.module, nn.Module):
        raise ArgumentError(
            f"training spec {where}: module is a {type(made.module).__name__}, not an nn.Module"
        )
    return made


class OnlineTrainer:
    """One trainer: a spec's module, optimiser and loss, stepped on batches from the host.

    Parameters
    ----------
    spec : str
        The training spec (see the module docstring); "" for :func:`default_spec`.
    ctx : SpecContext
        Passed to the spec function. With ``ctx.size > 1`` the trainer joins the
        data-parallel group at ``ctx.options["rendezvous"]``.
    """

    def __init__(self, spec, ctx):
        self.ctx, self.steps, self.version, self.group = ctx, 0, 0, None
        failure = None
        try:
            self.spec = _as_spec(load_spec(spec)(ctx), repr(spec or "default_spec"))
        except Exception as exc:  # noqa: BLE001 (reported after the ranks agree, below)
            failure = exc
        if ctx.size > 1:
            self._join(failure)
        if failure is not None:
            raise failure
        self.module = self.spec.module
        self.module.train()
        params = [p for p in self.module.parameters() if p.requires_grad]
        if not params:
            raise ArgumentError("the spec's module has no trainable parameters")
        self.dtype, self.device = params[0].dtype, params[0].device

    def _join(self, failure):
        """Join the group; all ranks learn whether every rank built its spec."""
        import torch.distributed as dist

        where = self.ctx.options.get("rendezvous")
        if not where:
            raise ArgumentError(
                "data-parallel training (size > 1) needs rendezvous=FILE, a path all ranks share"
            )
        dist.init_process_group(
            dist_backend(),
            init_method=f"file://{os.path.abspath(where)}",
            rank=self.ctx.rank,
            world_size=self.ctx.size,
            timeout=timedelta(seconds=DIST_TIMEOUT),
        )
        self.group = dist.group.WORLD
        ok = torch.tensor([0 if failure else 1], dtype=torch.int32)
        flags = [torch.zeros_like(ok) for _ in range(self.ctx.size)]
        dist.all_gather(flags, ok)
        bad = [r for r, f in enumerate(flags) if int(f) == 0]
        if bad and failure is None:
            dist.destroy_process_group()
            raise TrainingError(
                f"rank(s) {', '.join(map(str, bad))} could not build the training spec; see their messages"
            )
        if bad:
            dist.destroy_process_group()
            return
        for p in self.spec.module.state_dict().values():  # everyone starts from rank 0's weights
            dist.broadcast(p, src=0)

    def _check(self, inputs, targets, show):
        contract = self.ctx.contract or {}
        declared = contract.get("inputs")
        if declared is not None and len(inputs) != len(declared):
            raise ArgumentCountError(f"the model takes {len(declared)} input(s), got {len(inputs)}")
        outs = contract.get("outputs")
        if outs is not None and len(targets) != len(outs):
            raise ArgumentCountError(
                f"the model gives {len(outs)} output(s): give as many targets, got {len(targets)}"
            )
        for what, arrays in (("input", inputs), ("target", targets)):
            for i, t in enumerate(arrays):
                if t.dtype != self.dtype:
                    raise DtypeError(
                        f"{what} {i + 1} is {str(t.dtype)[6:]}; the trainer's module is {str(self.dtype)[6:]}"
                    )
                if t.dim() < 1 or t.shape[0] != inputs[0].shape[0]:
                    raise ShapeError(
                        f"{what} {i + 1} has shape {show(t.shape)}: every array needs the same number "
                        f"of columns as input 1 ({inputs[0].shape[0]})"
                    )

    def step(self, inputs, targets, show=tuple):
        """One optimiser step on ``inputs`` (batch first) against ``targets``; the loss before it.

        ``show`` turns a torch shape into the caller's notation for messages.
        Raises ShapeError, DtypeError, ArgumentCountError, NonFiniteError (the step is
        then not applied), or whatever the module, loss or optimiser raises.
        """
        self._check(inputs, targets, show)
        if self.spec.prepare is not None:
            inputs, targets = (list(a) for a in self.spec.prepare(list(inputs), list(targets)))
        if self.device.type != "cpu":  # the host's arrays are in its memory; the spec put the module there
            inputs, targets = [t.to(self.device) for t in inputs], [t.to(self.device) for t in targets]
        opt = self.spec.optimizer
        opt.zero_grad(set_to_none=True)
        out = self.module(*inputs)
        preds = out if isinstance(out, (tuple, list)) else (out,)
        for i, (p, t) in enumerate(zip(preds, targets)):
            if p.shape != t.shape:
                raise ShapeError(
                    f"target {i + 1}: expected shape {show(p.shape)} (the module's output), got "
                    f"{show(t.shape)}"
                )
        loss = self.spec.loss(
            out, targets[0] if len(targets) == 1 and not isinstance(out, (tuple, list)) else tuple(targets)
        )
        loss.backward()
        value = loss.detach().reshape(1).double()
        if self.group is not None:
            self._average(value)
        if not math.isfinite(float(value)):
            opt.zero_grad(set_to_none=True)
            raise NonFiniteError(
                f"the loss is {float(value)} at step {self.steps + 1}: the step was not applied"
            )
        if self.spec.max_grad_norm:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.spec.max_grad_norm)
        opt.step()
        if self.spec.scheduler is not None:
            self.spec.scheduler.step()
        self.steps += 1
        return float(value)

    def _average(self, value):
        """Average the loss and every gradient over the ranks (the gradient of the mean loss)."""
        import torch.distributed as dist

        dist.all_reduce(value)
        value /= self.ctx.size
        for p in self.module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.ctx.size

    def weights(self):
        """The current weights by name: detached, dense, on the CPU."""
        return {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}

    def native_program(self):
        """The bytes of a native program with the current weights and the model's contract."""
        from ._native import encode, program_of

        was = self.module.training
        self.module.eval()
        try:
            ops, dtype = program_of(self.module)
        finally:
            self.module.train(was)
        return encode(ops, dtype, self.ctx.contract)

    def checkpoint(self):
        """What :meth:`save` writes: plain containers of tensors and numbers (``weights_only``)."""
        return {
            "module": self.weights(),
            "optimizer": self.spec.optimizer.state_dict(),
            "steps": self.steps,
            "version": self.version,
        }

    def save(self, path):
        """Save :meth:`checkpoint` to ``path`` atomically; ``torch.load(path, weights_only=True)`` reads it."""
        _save_atomic(self.checkpoint(), path)

    def new_version(self, program=None):
        """Count a sync; with the ``versions`` option, save its weights (rank 0) and return their SHA-256.

        ``program``: the native program the sync put into a native-engine model (bytes); it
        is saved beside the weights, so replay runs exactly what the model ran.
        """
        self.version += 1
        folder = self.ctx.options.get("versions")
        buf = io.BytesIO()
        torch.save(self.weights(), buf)
        data = buf.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        if folder and self.ctx.rank == 0:
            save_version(folder, self.version, data, sha, self.steps, program)
        return sha


def _save_atomic(obj, path):
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        torch.save(obj, str(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FileAccessError(f"cannot write checkpoint '{path}': {exc.strerror or exc}") from exc


def _write_atomic(path, data):
    path.with_name(path.name + ".partial").write_bytes(data)
    os.replace(path.with_name(path.name + ".partial"), path)


def save_version(folder, version, data, sha, steps, program=None):
    """Write weights-v<version>.pt (torch.save of the state_dict) and list it in versions.json; with
    ``program`` (a native program's bytes) also weights-v<version>.nnp, listed with its own SHA-256."""
    folder = pathlib.Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"weights-v{version}.pt"
        _write_atomic(folder / name, data)
        entry = {"version": version, "file": name, "sha256": sha, "steps": steps}
        if program is not None:
            entry.update(
                program=f"weights-v{version}.nnp", program_sha256=hashlib.sha256(program).hexdigest()
            )
            _write_atomic(folder / entry["program"], bytes(program))
        index = folder / "versions.json"
        listed = json.loads(index.read_text()) if index.exists() else {"versions": []}
        listed["versions"].append(entry)
        (folder / "versions.json.partial").write_text(json.dumps(listed, indent=1))
        os.replace(folder / "versions.json.partial", index)
    except OSError as exc:
        raise FileAccessError(
            f"cannot save weight version {version} in '{folder}': {exc.strerror or exc}"
        ) from exc
