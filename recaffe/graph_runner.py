"""Whole passes replayed as CUDA graphs: a Net's forward and backward, a
training iteration (clear diffs, forward, backward) and a solver's update.

In GPU mode each pass of a net whose shapes stay fixed is run once eagerly
(warm-up: kernels compiled, lazily allocated buffers made), captured once
(:mod:`recaffe.backend.cuda_graph`), then replayed with one launch per pass:

- **What is captured.** The execution plan's steps (time-batched groups,
  fused recurrent kernels and all), minus the *source* layers (data layers
  without bottoms other than Input): those do host-side work and run eagerly
  before each replay, copying their batch into the fixed device buffers of
  their tops. Loss terms (``sum(top.data * top.diff)``) are computed on the
  device and read after the replay with one copy, together with the deferred
  input checks of the layers and, when training, a flag saying whether every
  gradient is finite.
- **The solver's update** (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta) is a
  second graph; the learning rate enters as a device vector of the per-param
  local rates, written before each replay, so rate schedules need no
  re-capture.
- **When it runs eagerly.** CPU mode, ``RECAFFE_CUDA_GRAPH=0``, debug_info,
  net callbacks, a Python (or HDF5Output) layer, a pass that fails to
  capture (e.g. a layer reading device values on the host), Adam's update or
  gradient clipping (host decisions each iteration), ``iter_size`` > 1 for
  the training graph. The reason is logged once and shown by
  ``recaffe time``; :func:`status` returns it.
- **When it captures again.** Any change of what the graphs were recorded
  for drops them: another mode or device, a rebuilt plan, a blob or
  parameter whose arrays were re-pointed or reshaped (new input shapes), or a
  pass that ran outside the graphs (a partial forward, per-layer calls). The
  next pass warms up and captures again; a net that keeps changing
  (:data:`MAX_CAPTURES`) stays eager.

Results equal the eager passes' to float rounding (the same kernels run, in
the same order; GEMMs go through cuBLAS directly instead of through CuPy).
Graph state lives in weak dictionaries keyed by the net or solver, outside
the objects, so moving a net between devices never walks it.
"""

from __future__ import annotations

import weakref

import numpy as np

from recaffe import backend
from recaffe.backend import cuda_graph
from recaffe.backend.cuda_graph import CaptureError
from recaffe.backend.synced import runs_on_device
from recaffe.device import ensure_device
from recaffe.log import logger

#: Layer types that do host work inside their forward/backward.
HOST_TYPES = frozenset({"Python", "HDF5Output"})
#: A net whose graphs keep being invalidated stays eager after this many
#: captures, unless they were replayed REPLAYS_PER_CAPTURE times each on average.
MAX_CAPTURES = 8
REPLAYS_PER_CAPTURE = 10
#: Solver types whose update depends on the learning rate only through
#: ``local_rate``/``_local_rates`` (so a device vector of rates can stand in).
RATE_ONLY_SOLVERS = frozenset({"SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta"})

_nets: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_solvers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _addr(a) -> tuple:
    """Where an array's elements are: a graph binds addresses, not objects
    (a blob re-pointed at the same memory needs no new capture)."""
    ptr = getattr(getattr(a, "data", None), "ptr", None)  # CuPy's MemoryPointer
    if ptr is None:
        ptr = a.__array_interface__["data"][0]  # numpy and the CPU stand-in
    return ptr, a.shape, a.strides


def _device_side(blob) -> tuple:
    """The device arrays of a blob, (data, diff): what layers compute with and
    what the graphs read and write, by address.

    Graphs follow the host/device rules of eager passes
    (:mod:`recaffe.backend.synced`) because they run inside one: every caller
    runs under this module's ``runs_on_device`` hooks (``forward``,
    ``backward``, ``train_iteration``, ``update``, entered from Net's forward
    and backward and Solver's step and update), so ``blob.data`` and
    ``blob.diff`` are the device arrays here. The pass's start copied every
    host-side change (a script's ``net.blobs['x'].data[...] = batch``, a
    parameter edited through ``.data``) into these same buffers, so a replay
    reads them; its end counts every buffer as changed on the device, so host
    reads after a replay copy the replay's outputs down. A diff not allocated
    yet is allocated here (the graphs bind its address): the first graphed
    pass therefore leaves every diff counted as written on the device, and a
    diff no layer writes is copied down once more than after an eager pass.
    """
    return blob.data, blob.diff


def _same(a: tuple, b: tuple | None) -> bool:
    """Keys are (generation, plan or None, addresses): same mode, same plan
    object, same memory."""
    return b is not None and a[0] == b[0] and a[1] is b[1] and a[2] == b[2]


class _Slot:
    """One pass: its graph once captured, whether it was warmed up."""

    __slots__ = ("graph", "warm")

    def __init__(self):
        self.graph = None
        self.warm = False


class _Graphs:
    """Warm-up, capture and replay of named passes that share one key (what
    they were recorded for) and one private memory pool."""

    what = "graphs"

    def __init__(self):
        self.slots: dict[str, _Slot] = {}
        self.key: tuple | None = None
        self.reason: str | None = None      # eager for good (static or failed)
        self.last: str | None = None        # why the last pass ran eagerly
        self.captures = 0
        self.replays = 0
        self.pool = None
        self._static: tuple | None = None   # (signature, reason)
        self._logged: set[str] = set()
        self._changes = 0

    # -- bookkeeping -------------------------------------------------------------
    def drop(self, why: str = "") -> None:
        """Forget the graphs (and the memory they kept); capture again later."""
        if self.slots:
            self.slots = {}
            self.pool = None
        self.key = None

    def note(self, reason: str) -> None:
        """Remember why a pass ran eagerly; log each reason once."""
        self.last = reason
        if reason not in self._logged and reason not in ("CPU mode",
                                                          "RECAFFE_CUDA_GRAPH=0"):
            self._logged.add(reason)
            logger.info(f"CUDA graphs: {self.what} run eagerly: {reason}")

    def fail(self, reason: str) -> None:
        self.reason = reason
        self.drop()
        self.note(reason)

    def check_key(self, key: tuple) -> None:
        if not _same(key, self.key):
            if any(s.graph is not None for s in self.slots.values()):
                self._changes += 1
                if self._changes <= 3:  # a net that changes often says so 3 times
                    logger.info(f"CUDA graphs: {self.what}: shapes, buffers or mode "
                                "changed; running eagerly once, then capturing "
                                "again")
            self.drop()
            self.key = key

    def nbytes(self) -> int:
        return sum(s.graph.kept_bytes for s in self.slots.values()
                   if s.graph is not None)

    # -- running -------------------------------------------------------------------
    def run(self, kind: str, body) -> list | None:
        """Run pass ``kind`` (``body()`` returns the device arrays the host
        reads): eagerly the first time, then captured and replayed. Returns the
        host values of those arrays (flat numpy arrays), or None when the pass
        could not run as a graph and nothing was run (the caller runs it
        eagerly its own way)."""
        slot = self.slots.get(kind)
        if slot is None:
            slot = self.slots[kind] = _Slot()
        if slot.graph is None:
            if not slot.warm:
                slot.warm = True
                self.last = "warm-up before the capture"
                return cuda_graph.run_eager(body, backend.xp())
            if self.captures >= MAX_CAPTURES and \
                    self.replays < REPLAYS_PER_CAPTURE * self.captures:
                self.fail(f"captured {self.captures} times for {self.replays} "
                          "replays (shapes or buffers keep changing)")
                return None
            xpm = backend.xp()
            if self.pool is None:
                self.pool = cuda_graph.new_pool(xpm)
            try:
                slot.graph = cuda_graph.capture(body, xpm, self.pool)
            except CaptureError as exc:
                self.fail(f"the {kind} pass cannot be captured: {exc}")
                return None
            self.captures += 1
        slot.graph.launch()
        self.replays += 1
        self.last = None
        return slot.graph.readback()


# -- nets ------------------------------------------------------------------------------
class NetGraphs(_Graphs):
    """The graphs of one :class:`~recaffe.net.Net`."""

    def __init__(self, net):
        super().__init__()
        self.what = f"net '{net.name}'"
        self.grads_finite: bool | None = None
        self._sources: list[int] | None = None

    def static_reason(self, net) -> str | None:
        """Why this net cannot use graphs now (None: it can)."""
        sig = (backend.generation(), cuda_graph.enabled(), bool(net.debug_info),
               any(net._callbacks.values()))
        if self._static is not None and self._static[0] == sig:
            return self._static[1]
        reason = None
        if not sig[1]:
            reason = "RECAFFE_CUDA_GRAPH=0"
        elif not backend.is_gpu():
            reason = "CPU mode"
        elif net.debug_info:
            reason = "debug_info is on"
        elif sig[3]:
            reason = "the net has forward/backward callbacks"
        else:
            reason = cuda_graph.unsupported(backend.xp())
            for layer, name in zip(net.layers_list, net.layer_names, strict=True):
                if reason is None and layer.type in HOST_TYPES:
                    reason = f"{layer.type} layer '{name}' runs on the host"
        self._static = (sig, reason)
        return reason

    def key_for(self, net, plan) -> tuple:
        """What the graphs depend on: the mode, the plan, and where the arrays
        of every blob and parameter are (a reshape or a re-pointing at other
        memory changes them)."""
        addrs = []
        for b in (*net.blob_list, *net.param_blobs):
            data, diff = _device_side(b)
            addrs.append(_addr(data))
            addrs.append(_addr(diff))
        return backend.generation(), plan, tuple(addrs)

    # -- pass bodies -----------------------------------------------------------------
    def sources(self, net) -> list[int]:
        """Layers run eagerly before each replay: data layers (no bottoms),
        except Input, whose forward does nothing. (A net's layers are fixed.)"""
        if self._sources is None:
            self._sources = [i for i, layer in enumerate(net.layers_list)
                             if layer.exact_num_bottom == 0 and not net.bottom_ids[i]
                             and layer.type != "Input"]
        return self._sources

    def forward_body(self, net, plan, skip) -> list:
        """The plan's forward steps (source layers skipped; plain layers call
        ``forward`` directly: shapes are fixed) and the loss terms."""
        xp = backend.xp()
        losses = []
        for (f, b, t), u in zip(plan.fwd, plan.order, strict=True):
            if u in skip:
                continue
            try:
                if u < 0:
                    f(b, t)
                    continue
                layer = net.layers_list[u]
                layer.forward(b, t)
            except Exception as exc:
                if not cuda_graph.capturing():
                    raise
                raise _in_layer(net, plan, u, "forward", exc) from exc
            for tb, w in zip(t, layer.loss_weights, strict=False):
                if w != 0:
                    losses.append((tb.data.reshape(-1) * tb.diff.reshape(-1)).sum())
        if not losses:
            return []  # nothing to read back: a replay needs no synchronisation
        return [xp.stack(losses)]

    @staticmethod
    def backward_body(net, plan) -> list:
        for (f, t, pd, b), k in zip(plan.bwd, plan.bwd_steps, strict=True):
            try:
                f(t, pd, b)
            except Exception as exc:
                if not cuda_graph.capturing():
                    raise
                raise _in_layer(net, plan, plan.order[k], "backward", exc) from exc
        return []

    def train_body(self, net, plan, skip) -> list:
        """Clear the parameter diffs, forward, backward; the loss terms and
        whether every learnable parameter's gradient is finite."""
        xp = backend.xp()
        for b in net.learnable_params:
            b.diff.fill(0)
        terms = (self.forward_body(net, plan, skip) or [xp.zeros(1, np.float32)])[0]
        self.backward_body(net, plan)
        ok = xp.isfinite(terms).all()
        for b in net.learnable_params:
            ok = ok & xp.isfinite(b.diff).all()
        return [terms, ok.reshape(1)]

    # -- entry points ----------------------------------------------------------------
    def _sources_then_key(self, net, plan):
        """Static checks; then the source layers (eagerly) and the key check.
        Returns (skip set, loss of the sources, shapes still valid), or a
        reason string when the pass must run eagerly (nothing run then)."""
        reason = self.reason or self.static_reason(net)
        if reason is not None:
            self.note(reason)
            return reason
        src = self.sources(net)
        loss = 0.0
        for i in src:
            loss += net.layers_list[i].Forward(net.bottom_vecs[i], net.top_vecs[i])
        valid = not src or plan.shapes_valid()
        if valid:
            self.check_key(self.key_for(net, plan))
        return set(src), loss, valid

    def forward(self, net, plan) -> float | None:
        """The forward pass as a graph; its loss, or None to run it eagerly
        (nothing was run then)."""
        prep = self._sources_then_key(net, plan)
        if isinstance(prep, str):
            return None
        skip, loss, valid = prep
        if not valid:
            return self._finish_plain(net, skip, loss)
        vals = self.run("forward", lambda: self.forward_body(net, plan, skip))
        if vals is None:
            # Could not capture: this pass still has to run (sources are done).
            vals = [backend.to_host(t) for t in self.forward_body(net, plan, skip)]
        return loss + (float(np.sum(vals[0], dtype=np.float64)) if vals else 0.0)

    def _finish_plain(self, net, done: set[int], loss: float) -> float:
        """Shapes changed at a source layer: the rest of the pass the plain
        way, and a new plan next time (as the plan does)."""
        self.drop()
        net.plan = None
        net._plain_ran()
        for i in range(len(net.layers_list)):
            if i not in done:
                loss += net.layers_list[i].Forward(net.bottom_vecs[i], net.top_vecs[i])
        return loss

    def backward(self, net, plan) -> bool:
        """The backward pass as a graph; False to run it eagerly."""
        reason = self.reason or self.static_reason(net)
        if reason is not None:
            self.note(reason)
            return False
        self.check_key(self.key_for(net, plan))
        return self.run("backward", lambda: self.backward_body(net, plan)) is not None

    def train(self, net, plan) -> float | None:
        """Clear diffs + forward + backward as one graph; the loss, or None to
        run the iteration eagerly (nothing was run then)."""
        self.grads_finite = None
        prep = self._sources_then_key(net, plan)
        if isinstance(prep, str):
            return None
        skip, loss, valid = prep
        if not valid:
            net.clear_param_diffs()
            loss = self._finish_plain(net, skip, loss)
            net.backward_all()
            return loss
        vals = self.run("train", lambda: self.train_body(net, plan, skip))
        if vals is None:
            net.clear_param_diffs()
            terms = [backend.to_host(t) for t in self.forward_body(net, plan, skip)]
            self.backward_body(net, plan)
            return loss + (float(np.sum(terms[0], dtype=np.float64)) if terms
                           else 0.0)
        self.grads_finite = bool(vals[1][0])
        return loss + float(vals[0].sum())


def _in_layer(net, plan, u: int, what: str, exc: Exception) -> CaptureError:
    """``exc``, raised during a capture, as a CaptureError naming the layer
    (or the time-batched group) whose step raised it."""
    m = plan.groups[-u - 1].members[0] if u < 0 else u
    name = f"{net.layers_list[m].type} layer '{net.layer_names[m]}'"
    if u < 0:
        name = f"time-batched group of {name}"
    reason = str(exc) if isinstance(exc, CaptureError) else cuda_graph._describe(exc)
    return CaptureError(f"{name}, {what}: {reason}")


def net_graphs(net) -> NetGraphs:
    g = _nets.get(net)
    if g is None:
        g = _nets[net] = NetGraphs(net)
    return g


def _active_plan(net):
    """The net's execution plan when a graph may run a full pass, else None."""
    if not backend.is_gpu() or not cuda_graph.enabled():
        return None
    return net._get_plan()


@runs_on_device
def forward(net, plan) -> float | None:
    """Hook of :meth:`Net._forward_range` (full pass, plan in hand): the loss
    of a graphed forward, or None to run the plan eagerly."""
    if not backend.is_gpu():
        return None
    return net_graphs(net).forward(net, plan)


@runs_on_device
def backward(net, plan) -> bool:
    """Hook of :meth:`Net._backward_range` after a planned forward."""
    if not backend.is_gpu():
        return False
    return net_graphs(net).backward(net, plan)


def invalidate(net) -> None:
    """Hook of :meth:`Net._plain_ran`: a pass ran outside the graphs (layer
    state may have been re-pointed); capture again next time."""
    g = _nets.get(net)
    if g is not None and g.slots:
        g.drop()


# -- solvers ---------------------------------------------------------------------------
class SolverGraphs(_Graphs):
    """The update graph of one solver (the train net's graphs are its own)."""

    def __init__(self, solver):
        super().__init__()
        self.what = f"the {solver.type or type(solver).__name__} solver's update"
        self.rates = None      # device vector of local rates
        self.rate_views = None

    def static_reason(self, solver) -> str | None:
        p = solver.param
        sig = (backend.generation(), cuda_graph.enabled(), float(p.clip_gradients),
               solver.type)
        if self._static is not None and self._static[0] == sig:
            return self._static[1]
        if not sig[1]:
            reason = "RECAFFE_CUDA_GRAPH=0"
        elif not backend.is_gpu():
            reason = "CPU mode"
        elif solver.type not in RATE_ONLY_SOLVERS:
            reason = (f"the {solver.type} update uses per-iteration host values "
                      "besides the learning rate")
        elif p.clip_gradients >= 0:
            reason = "clip_gradients decides on the host each iteration"
        else:
            reason = cuda_graph.unsupported(backend.xp())
        self._static = (sig, reason)
        return reason

    def update(self, solver, rate: float) -> bool:
        """Apply the update as a graph; False to run it eagerly."""
        reason = self.reason or self.static_reason(solver)
        if reason is not None:
            self.note(reason)
            return False
        params = solver.net.learnable_params
        xpm = backend.xp()
        arrays = [a for b in params for a in _device_side(b)]
        key = (backend.generation(), None, tuple(
            _addr(a) for a in (*arrays, *solver.history, *solver.update,
                               *solver.temp)))
        if not _same(key, self.key):
            self.drop()
            self.key = key
            self.rates = xpm.zeros(len(params), dtype=params[0].data.dtype) \
                if params else None
            self.rate_views = [self.rates[i] for i in range(len(params))]
        if not params:
            return False
        host = np.array([float(r) for r in solver._local_rates(rate)],
                        dtype=self.rates.dtype)
        setter = getattr(self.rates, "set", None)  # CuPy: one async H2D copy
        if setter is not None:
            setter(host)
        else:
            backend.copy_into(self.rates, host)
        views = self.rate_views

        def body():
            # Instance attributes shadow the methods for this call only: the
            # update reads the device rates (captured by address).
            solver._local_rates = lambda _rate: views
            solver.local_rate = lambda i, _rate: views[i]
            try:
                solver.update_params(rate)
            finally:
                del solver._local_rates
                del solver.local_rate
            return []

        return self.run("update", body) is not None


def solver_graphs(solver) -> SolverGraphs:
    g = _solvers.get(solver)
    if g is None:
        g = _solvers[solver] = SolverGraphs(solver)
    return g


@runs_on_device
def train_iteration(solver) -> float:
    """Hook of :meth:`Solver.step` (``iter_size`` 1): clear the diffs, forward
    and backward, as one graph where possible, else eagerly; the loss."""
    net = solver.net
    ensure_device(net)
    plan = _active_plan(net)
    if plan is not None:
        loss = net_graphs(net).train(net, plan)
        if loss is not None:
            net._plan_forwarded = True
            return loss
    net.clear_param_diffs()
    loss = net.forward_prefilled()
    net.backward_all()
    return loss


def wants_train_graph(solver) -> bool:
    """Whether :meth:`Solver.step` should hand iterations to
    :func:`train_iteration` (GPU mode, graphs on)."""
    return backend.is_gpu() and cuda_graph.enabled()


@runs_on_device
def update(solver, rate: float) -> bool:
    """Hook of :meth:`Solver.apply_update`: the update as a graph (True), or
    False to run it eagerly."""
    if not backend.is_gpu():
        return False
    return solver_graphs(solver).update(solver, rate)


def grads_finite(solver) -> bool | None:
    """Whether the last graphed iteration's gradients were all finite (read
    with its loss), or None when unknown (run the eager check)."""
    g = _nets.get(solver.net)
    if g is None:
        return None
    flag, g.grads_finite = g.grads_finite, None
    return flag


# -- reporting -------------------------------------------------------------------------
def status(obj) -> dict:
    """How a net's (or solver's update) passes run: ``{"graphs": [...captured
    kinds], "replays": n, "captures": n, "eager_reason": str or None,
    "kept_bytes": n}``."""
    g = _nets.get(obj) if obj in _nets else _solvers.get(obj)
    reason = None if g is None else g.reason or g.last
    if not backend.is_gpu():
        reason = "CPU mode"
    elif not cuda_graph.enabled():
        reason = "RECAFFE_CUDA_GRAPH=0"
    if g is None:
        return {"graphs": [], "replays": 0, "captures": 0, "eager_reason": reason,
                "kept_bytes": 0}
    return {"graphs": sorted(k for k, s in g.slots.items() if s.graph is not None),
            "replays": g.replays, "captures": g.captures, "eager_reason": reason,
            "kept_bytes": g.nbytes()}
