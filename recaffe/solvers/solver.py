"""The solver: Caffe's training loop, shared by every SGD-family update rule.

A solver is built from a solver prototxt path or a ``SolverParameter``. It owns
the train net and the test nets, runs ``step(n)`` (clear diffs, test, forward
and backward ``iter_size`` times, log, update, snapshot), ``test``, ``solve``,
``snapshot`` and ``restore``, all as BVLC Caffe does, with Caffe's log lines.

``apply_update`` runs Caffe's order: learning rate, gradient clipping (global
L2 norm), then per learnable parameter iter_size normalisation,
regularisation (L1/L2 with ``decay_mult``) and the update rule, then
``data -= diff`` and ``iter += 1``. Subclasses override only
:meth:`Solver.compute_update_value` (the update rule); AdaDelta and Adam keep
two history sets (``history_sets = 2``).

Beyond Caffe: with ``check_finite`` (default on) a non-finite loss or
gradient raises :class:`~recaffe.errors.DivergenceError` naming the
iteration and the first layer where a non-finite value appears.
"""

from __future__ import annotations

import math
import operator
import os
import time
from collections.abc import Callable

import numpy as np

from recaffe import backend, graph_runner
from recaffe.backend.synced import host_call, runs_on_device
from recaffe.device import ensure_device
from recaffe.errors import DivergenceError, RecaffeError, SolverError
from recaffe.io.prototxt import read_prototxt, to_text
from recaffe.io.solverstate import (
    SolverStateData,
    read_solverstate,
    write_solverstate,
    write_solverstate_hdf5,
)
from recaffe.io.upgrade import upgrade_solver_param
from recaffe.log import fmt, logger
from recaffe.net import Net
from recaffe.proto import caffe_pb2
from recaffe.solvers.lr_policy import learning_rate
from recaffe.solvers.validate import count_test_nets, validate_solver_param

_ACTIONS = ("none", "stop", "snapshot")


def load_solver_param(solver, validate: bool = True) -> caffe_pb2.SolverParameter:
    """A solver prototxt path or a ``SolverParameter`` as an upgraded copy.

    A file is checked as it is read (:func:`validate_solver_param`, naming the
    file) unless ``validate`` is false; a message object is checked when a
    solver is built from it.
    """
    if isinstance(solver, caffe_pb2.SolverParameter):
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(solver)
        upgrade_solver_param(param)
        return param
    if isinstance(solver, (str, os.PathLike)):
        path = os.fspath(solver)
        param = read_prototxt(path, caffe_pb2.SolverParameter)
        upgrade_solver_param(param, path)
        if validate:
            validate_solver_param(param, path)
        return param
    raise TypeError(f"solver: expected a solver prototxt path or SolverParameter, "
                    f"got {type(solver).__name__}")


def _read_net_file(path: str) -> caffe_pb2.NetParameter:
    return read_prototxt(path, caffe_pb2.NetParameter)


class Solver:
    """Base of the SGD-family solvers (Caffe's Solver + SGDSolver::ApplyUpdate).

    Args:
        solver: path of a solver prototxt, or a ``SolverParameter``.
    """

    #: The solver ``type`` string this class implements.
    type = ""
    #: Number of history blobs per learnable parameter.
    history_sets = 1

    def __init__(self, solver, *, _validated: bool = False):
        # _validated: get_solver already checked the file (naming it).
        param = load_solver_param(solver)
        self.param = param
        if isinstance(solver, caffe_pb2.SolverParameter) and not _validated:
            validate_solver_param(param)
        self.check_param()
        if param.random_seed >= 0:
            backend.set_random_seed(param.random_seed)
        logger.info("Initializing solver from parameters: \n" + to_text(param))
        self.iter = 0
        self.current_step = 0
        self.callbacks: list[tuple[Callable | None, Callable | None]] = []
        #: Called as ``f(k, outputs)`` after test net ``k``'s pass, with
        #: ``outputs`` the [(blob name, mean)] the log prints (see add_test_callback).
        self.test_callbacks: list[Callable] = []
        #: Callable returning "none", "stop" or "snapshot" (signal handling).
        self.action_request: Callable[[], str] | None = None
        #: Raise DivergenceError on a non-finite loss or gradient.
        self.check_finite = True
        self.requested_early_exit = False
        self.smoothed_loss = 0.0
        self.last_lr: float | None = None
        self._losses: list[float] = []
        self._display_now = False
        self._rates_cache = None
        #: Data-parallel hooks (:class:`recaffe.parallel.DataParallel`), or None.
        self.reducer = None
        self.net = self._init_train_net()
        self.net.flatten_params()  # before test nets share the params
        self.test_nets = self._init_test_nets()
        logger.info("Solver scaffolding done.")
        self._alloc_history()

    # -- construction ----------------------------------------------------------
    def check_param(self) -> None:
        """Check solver fields the update rule depends on (overridden)."""

    def _init_train_net(self) -> Net:
        p = self.param
        given = [f for f in ("net", "net_param", "train_net", "train_net_param")
                 if p.HasField(f)]
        fields = "net, net_param, train_net, train_net_param"
        if not given:
            raise SolverError("SolverParameter must specify a train net using one "
                              f"of these fields: {fields}")
        if len(given) > 1:
            raise SolverError("SolverParameter must not contain more than one of "
                              f"these fields specifying a train_net: {fields} "
                              f"(got {', '.join(given)})")
        which = given[0]
        if which in ("train_net_param", "net_param"):
            logger.info(f"Creating training net specified in {which}.")
            net_param = caffe_pb2.NetParameter()
            net_param.CopyFrom(getattr(p, which))
        else:
            path = getattr(p, which)
            logger.info(f"Creating training net from {which} file: {path}")
            net_param = _read_net_file(path)
        state = caffe_pb2.NetState(phase=caffe_pb2.TRAIN)
        state.MergeFrom(net_param.state)
        state.MergeFrom(p.train_state)
        net = Net(net_param, _state=state)
        self._load_weights(net)
        return net

    def _init_test_nets(self) -> list[Net]:
        # The counts were checked by validate_solver_param.
        p = self.param
        n_specific = len(p.test_net_param) + len(p.test_net)
        n_instances = count_test_nets(p)
        sources: list[tuple[str, caffe_pb2.NetParameter]] = []
        for tp in p.test_net_param:
            sources.append(("test_net_param", tp))
        for path in p.test_net:
            sources.append((f"test_net file: {path}", _read_net_file(path)))
        if n_instances > n_specific:
            if p.HasField("net_param"):
                src = ("net_param", p.net_param)
            else:
                src = (f"net file: {p.net}", _read_net_file(p.net))
            sources.extend([src] * (n_instances - n_specific))
        nets = []
        for i, (what, net_param) in enumerate(sources):
            state = caffe_pb2.NetState(phase=caffe_pb2.TEST)
            state.MergeFrom(net_param.state)
            if len(p.test_state):
                state.MergeFrom(p.test_state[i])
            logger.info(f"Creating test net (#{i}) specified by {what}")
            net = Net(net_param, _state=state)
            net.debug_info = bool(p.debug_info)
            self._load_weights(net)
            nets.append(net)
        return nets

    def _load_weights(self, net: Net) -> None:
        for entry in self.param.weights:
            for w in entry.split(","):
                w = w.strip()
                if w:
                    logger.info(f"Finetuning from {w}")
                    net.copy_from(w)

    @runs_on_device
    def _alloc_history(self) -> None:
        """History, update and scratch arrays, one per learnable param (and per
        history set). Where the params share one dtype and array module, each
        kind lives in one flat buffer and the per-param arrays are views of it,
        so update rules can apply their element-wise steps to all params at once
        (see :meth:`flat_buffers`)."""
        params = self.net.learnable_params
        self._flat = None
        self._flat_views: tuple = ()
        arrays = [b.data for b in params]
        mods = {backend.get_array_module(a) for a in arrays}
        if arrays and len(mods) == 1 and len({a.dtype for a in arrays}) == 1:
            self._make_flat(mods.pop(), arrays[0].dtype, None)
            return

        def zeros_like(b):
            xpm = backend.get_array_module(b.data)
            return xpm.zeros(b.shape, dtype=b.data.dtype)

        self.history = [zeros_like(b) for _ in range(self.history_sets)
                        for b in params]
        self.update = [zeros_like(b) for b in params]
        self.temp = [zeros_like(b) for b in params]

    def _make_flat(self, xpm, dtype, old) -> None:
        """Allocate the flat buffers and their views; ``old`` (history, update,
        temp lists) is copied in when given."""
        params = self.net.learnable_params
        total = sum(b.count for b in params)
        nsets = self.history_sets

        def views(flat):
            out, off = [], 0
            for b in params:
                out.append(flat[off:off + b.count].reshape(b.shape))
                off += b.count
            return out

        hist = [xpm.zeros(total, dtype=dtype) for _ in range(nsets)]
        upd = xpm.zeros(total, dtype=dtype)
        tmp = xpm.zeros(total, dtype=dtype)
        history = [v for h in hist for v in views(h)]
        update, temp = views(upd), views(tmp)
        if old is not None:
            for new_list, old_list in zip((history, update, temp), old, strict=True):
                for a, b in zip(new_list, old_list, strict=True):
                    a[...] = b
        self.history, self.update, self.temp = history, update, temp
        self._flat = (hist, upd, tmp)
        self._flat_views = (*history, *update, *temp)

    def flat_buffers(self):
        """``(history_sets, update, temp)`` as flat arrays that hold every
        param's values back to back (the per-param arrays are views of them), or
        None where the params do not allow it. Re-created (contents kept) when
        the per-param arrays were replaced, e.g. by a device move."""
        flat = self._flat
        views = self._flat_views
        cur = (*self.history, *self.update, *self.temp)
        if flat is not None and len(cur) == len(views) and all(
                map(operator.is_, cur, views)):
            return flat
        if not views:
            return None
        params = self.net.learnable_params
        arrays = [b.data for b in params] + list(cur)
        mods = {backend.get_array_module(a) for a in arrays}
        if len(mods) != 1 or len({a.dtype for a in arrays}) != 1 or \
                len(cur) != len(views):
            self._flat, self._flat_views = None, ()
            return None
        n = len(params)
        nh = self.history_sets * n
        self._make_flat(mods.pop(), arrays[0].dtype,
                        (list(cur[:nh]), list(cur[nh:nh + n]), list(cur[nh + n:])))
        return self._flat

    # -- pycaffe surface -------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate for the current iteration (advances multistep)."""
        return self.get_learning_rate()

    def get_learning_rate(self) -> float:
        rate, self.current_step = learning_rate(self.param, self.iter,
                                                self.current_step)
        return rate

    def add_callback(self, on_start: Callable | None,
                     on_gradients_ready: Callable | None) -> None:
        """Call ``on_start()`` before and ``on_gradients_ready()`` after each
        iteration's forward/backward (on the host side: stored wrapped by
        ``host_call``)."""
        self.callbacks.append((None if on_start is None else host_call(on_start),
                               None if on_gradients_ready is None
                               else host_call(on_gradients_ready)))

    def add_test_callback(self, on_test: Callable) -> None:
        """Call ``on_test(k, outputs)`` after each complete pass of test net
        ``k``: ``outputs`` is [(blob name, mean)], one per value, in the order
        of the log's ``Test net output #i`` lines (on the host side)."""
        self.test_callbacks.append(host_call(on_test))

    def set_action_function(self, func: Callable[[], str] | None) -> None:
        self.action_request = func

    def share_weights(self, net: Net) -> None:
        """Make ``net``'s parameters alias this solver's train net's (by layer)."""
        net.share_with(self.net)

    # -- the loop --------------------------------------------------------------
    def _requested_action(self) -> str:
        if self.reducer is not None:  # data-parallel: what all ranks agreed on
            return self.reducer.agreed_action()
        return self._local_action()

    def _local_action(self) -> str:
        if self.action_request is None:
            return "none"
        action = self.action_request()
        action = "none" if action is None else str(action).lower()
        if action not in _ACTIONS:
            raise SolverError(f"action_request returned {action!r}; expected one of "
                              f"{', '.join(_ACTIONS)}")
        return action

    def _update_smoothed_loss(self, loss: float, start_iter: int) -> None:
        window = self.param.average_loss
        if len(self._losses) < window:
            self._losses.append(loss)
            n = len(self._losses)
            self.smoothed_loss = (self.smoothed_loss * (n - 1) + loss) / n
        else:
            idx = (self.iter - start_iter) % window
            self.smoothed_loss += (loss - self._losses[idx]) / window
            self._losses[idx] = loss

    @runs_on_device
    def step(self, iters: int) -> None:
        """Run ``iters`` training iterations (Caffe's Solver::Step)."""
        p = self.param
        # Memory follows the mode: nets and history move if the mode changed.
        ensure_device(self)
        reducer = self.reducer
        start_iter = self.iter
        stop_iter = self.iter + int(iters)
        self._losses = []
        self.smoothed_loss = 0.0
        timer = time.perf_counter()
        iters_last = self.iter
        # Solver fields read once per call (they do not change inside it).
        test_interval = p.test_interval
        test_init = p.test_initialization
        display_every = p.display
        debug = p.debug_info
        iter_size = max(int(p.iter_size), 1)
        snapshot_every = p.snapshot
        net = self.net
        callbacks = self.callbacks
        while self.iter < stop_iter:
            # GPU: clearing, forward and backward replay as one CUDA graph.
            graphed = iter_size == 1 and graph_runner.wants_train_graph(self)
            if not graphed:
                net.clear_param_diffs()
            if (test_interval > 0 and self.iter % test_interval == 0
                    and (self.iter > 0 or test_init)):
                self.test_all()
                if self.requested_early_exit:
                    break
            for on_start, _ in callbacks:
                if on_start is not None:
                    on_start()
            display = display_every > 0 and self.iter % display_every == 0
            self._display_now = display
            net.debug_info = display and debug
            if graphed:
                loss = graph_runner.train_iteration(self)
            elif iter_size == 1:
                loss = net.forward_prefilled()
                if reducer is not None:  # reductions may start during backward
                    reducer.before_backward()
                net.backward_all()
            else:
                loss = 0.0
                for k in range(iter_size):
                    loss += net.forward_prefilled()
                    if reducer is not None and k == iter_size - 1:
                        reducer.before_backward()  # only the last one finishes
                    net.backward_all()
                loss /= iter_size
            if reducer is not None:  # data-parallel: average over the ranks
                loss = reducer.after_backward(loss)
            if self.check_finite:
                self._check_divergence(loss)
            self._update_smoothed_loss(loss, start_iter)
            if display:
                lapse = time.perf_counter() - timer
                per_s = (self.iter - iters_last) / (lapse or 1.0)
                logger.info(f"Iteration {self.iter} ({fmt(per_s)} iter/s, "
                            f"{fmt(lapse)}s/{display_every} iters), "
                            f"loss = {fmt(self.smoothed_loss)}")
                timer = time.perf_counter()
                iters_last = self.iter
                self._log_outputs(net, "    Train net output #")
            for _, on_ready in callbacks:
                if on_ready is not None:
                    on_ready()
            self.apply_update()
            self._display_now = False
            request = self._requested_action()
            if (snapshot_every > 0 and self.iter % snapshot_every == 0) or \
                    request == "snapshot":
                self.snapshot()
            if request == "stop":
                self.requested_early_exit = True
                break

    def _log_outputs(self, net: Net, prefix: str) -> None:
        k = 0
        for bid in net.output_blob_ids:
            name = net.blob_names[bid]
            w = net.blob_loss_weight_list[bid]
            values = backend.to_host(net.blob_list[bid].data).reshape(-1)
            for v in values:
                suffix = f" (* {fmt(w)} = {fmt(w * v)} loss)" if w else ""
                logger.info(f"{prefix}{k}: {name} = {fmt(v)}{suffix}")
                k += 1

    def _check_divergence(self, loss: float) -> None:
        net = self.net
        if math.isfinite(loss) and self._grads_finite():
            return
        where = "no layer (all tops and gradients are finite)"
        # Forward order: the first layer whose output is non-finite.
        for i, layer in enumerate(net.layers_list):
            tops = net.top_ids[i]
            if backend.all_finite(net.blob_list[t].data for t in tops):
                continue
            tid = next(t for t in tops
                       if not backend.all_finite([net.blob_list[t].data]))
            where = (f"layer '{net.layer_names[i]}' ({layer.type}), top "
                     f"'{net.blob_names[tid]}' data")
            break
        else:
            # Every output is finite: the first layer the backward pass reached
            # (last to first) whose computed gradient is non-finite.
            for i in range(len(net.layers_list) - 1, -1, -1):
                if not net.layer_need_backward[i]:
                    continue
                layer = net.layers_list[i]
                lname = f"layer '{net.layer_names[i]}' ({layer.type})"
                hit = None
                for j, bid in enumerate(net.bottom_ids[i]):
                    if (net.bottom_need_backward[i][j]
                            and not backend.all_finite([net.blob_list[bid].diff])):
                        hit = f"{lname}, bottom[{j}] '{net.blob_names[bid]}' diff"
                        break
                if hit is None:
                    for j, b in enumerate(layer.blobs):
                        if b.has_diff and not backend.all_finite([b.diff]):
                            hit = f"{lname}, param {j} diff"
                            break
                if hit is not None:
                    where = hit
                    break
        raise DivergenceError(
            f"training diverged at iteration {self.iter}: loss = {fmt(loss)}; first "
            f"non-finite value in {where}. Lower base_lr or set clip_gradients."
        )


    def _grads_finite(self) -> bool:
        """Whether every learnable param's diff is finite. On the host, one
        ``vdot(g, g)`` per param: it is finite when every element is, and a
        non-finite result (possibly only an overflow) is confirmed element-wise;
        on a device, one sync for all params."""
        if backend.is_gpu():
            flag = graph_runner.grads_finite(self)  # read with a graphed loss
            if flag is not None:
                return flag
        flat = self.net.flat_params()
        diffs = [flat[1]] if flat is not None else \
            [b.diff for b in self.net.learnable_params]
        if not diffs or type(diffs[0]) is not np.ndarray:
            return backend.all_finite(diffs)
        vdot = np.vdot
        total = 0.0
        for g in diffs:
            total += vdot(g, g)
        if math.isfinite(total):
            return True
        return backend.all_finite(diffs)

    # -- update ------------------------------------------------------------------
    def clip_gradients(self) -> None:
        clip = float(self.param.clip_gradients)
        if clip < 0:
            return
        params = self.net.learnable_params
        norm = math.sqrt(sum(b.sumsq_diff() for b in params))
        if norm > clip:
            scale = clip / norm
            logger.info(f"Gradient clipping: scaling down gradients (L2 norm "
                        f"{fmt(norm)} > {fmt(clip)}) by scale factor {fmt(scale)}")
            for b in params:
                b.diff *= b.diff.dtype.type(scale)

    def normalize(self, param_id: int) -> None:
        k = int(self.param.iter_size)
        if k <= 1:
            return
        diff = self.net.learnable_params[param_id].diff
        diff *= diff.dtype.type(1.0 / k)

    def regularize(self, param_id: int) -> None:
        blob = self.net.learnable_params[param_id]
        dt = blob.data.dtype.type
        decay = dt(self.param.weight_decay) * dt(self.net.params_weight_decay[param_id])
        if decay == 0:
            return
        rtype = self.param.regularization_type
        tmp = self.temp[param_id]
        if rtype == "L2":
            np_mul = backend.get_array_module(tmp).multiply
            np_mul(blob.data, decay, out=tmp)
        elif rtype == "L1":
            xpm = backend.get_array_module(tmp)
            xpm.sign(blob.data, out=tmp)
            tmp *= decay
        else:
            raise SolverError(f"Unknown regularization type: '{rtype}' "
                              "(regularization_type must be L1 or L2)")
        blob.diff += tmp

    def local_rate(self, param_id: int, rate: float):
        dt = self.net.learnable_params[param_id].data.dtype.type
        return dt(rate) * dt(self.net.params_lr[param_id])

    def compute_update_value(self, param_id: int, rate: float) -> None:
        """Turn ``diff`` of learnable param ``param_id`` into the step to subtract."""
        raise NotImplementedError

    @runs_on_device
    def apply_update(self) -> None:
        """One update from the current diffs; increments ``iter``."""
        rate = self.get_learning_rate()
        self.last_lr = rate
        if self._display_now:
            logger.info(f"Iteration {self.iter}, lr = {fmt(rate)}")
        if not graph_runner.update(self, rate):  # a graph on a GPU
            self.clip_gradients()
            self.update_params(rate)
        self.iter += 1

    def update_params(self, rate: float) -> None:
        """Normalise, regularise and turn every diff into its step
        (:meth:`compute_update_value`), then ``data -= diff``. Update rules
        may override this with a version that works on all params at once."""
        params = self.net.learnable_params
        for i in range(len(params)):
            self.normalize(i)
            self.regularize(i)
            self.compute_update_value(i, rate)
        for b in params:
            d = b.data
            d -= b.diff

    def _prepare_all(self, rate: float):
        """``(params, local rates)`` after normalisation and regularisation of
        every param (the steps that come before the update rule)."""
        params = self.net.learnable_params
        n = len(params)
        if int(self.param.iter_size) > 1:
            for i in range(n):
                self.normalize(i)
        if self.param.weight_decay != 0:
            for i in range(n):
                self.regularize(i)
        return params, self._local_rates(rate)

    def _local_rates(self, rate: float) -> list:
        """:meth:`local_rate` of every param (cached while the rate is equal)."""
        key = (rate, tuple(self.net.params_lr))
        cached = self._rates_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        rates = [self.local_rate(i, rate)
                 for i in range(len(self.net.learnable_params))]
        self._rates_cache = (key, rates)
        return rates

    # -- testing -------------------------------------------------------------------
    def test_all(self) -> None:
        if self.reducer is not None and not self.reducer.is_root:
            return  # data-parallel: rank 0 tests
        for k in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            self.test(k)

    def test(self, k: int = 0) -> None:
        """Run test net ``k`` for ``test_iter[k]`` batches and log the means."""
        p = self.param
        logger.info(f"Iteration {self.iter}, Testing net (#{k})")
        net = self.test_nets[k]
        net.share_with(self.net)
        n = int(p.test_iter[k])
        scores: list[float] = []
        owners: list[int] = []
        loss = 0.0
        for i in range(n):
            request = self._requested_action()
            while request != "none":
                if request == "snapshot":
                    self.snapshot()
                elif request == "stop":
                    self.requested_early_exit = True
                request = self._requested_action()
            if self.requested_early_exit:
                break
            iter_loss = net.forward_prefilled()
            if p.test_compute_loss:
                loss += iter_loss
            idx = 0
            for j, bid in enumerate(net.output_blob_ids):
                for v in backend.to_host(net.blob_list[bid].data).reshape(-1):
                    if i == 0:
                        scores.append(float(v))
                        owners.append(j)
                    else:
                        scores[idx] += float(v)
                    idx += 1
        if self.requested_early_exit:
            logger.info("Test interrupted.")
            return
        if p.test_compute_loss:
            logger.info(f"Test loss: {fmt(loss / n)}")
        outputs = []
        for i, total in enumerate(scores):
            bid = net.output_blob_ids[owners[i]]
            w = net.blob_loss_weight_list[bid]
            mean = total / n
            suffix = f" (* {fmt(w)} = {fmt(w * mean)} loss)" if w else ""
            logger.info(f"    Test net output #{i}: {net.blob_names[bid]} = "
                        f"{fmt(mean)}{suffix}")
            outputs.append((net.blob_names[bid], mean))
        for on_test in self.test_callbacks:
            on_test(k, outputs)

    # -- solve -----------------------------------------------------------------------
    def solve(self, resume_file: str | None = None) -> None:
        """Train to ``max_iter`` (Caffe's Solver::Solve)."""
        p = self.param
        logger.info(f"Solving {self.net.name}")
        logger.info(f"Learning Rate Policy: {p.lr_policy}")
        self.requested_early_exit = False
        if resume_file:
            logger.info(f"Restoring previous solver status from {resume_file}")
            self.restore(resume_file)
        start_iter = self.iter
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and (p.snapshot <= 0 or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            logger.info("Optimization stopped early.")
            return
        if p.display > 0 and self.iter % p.display == 0:
            loss = self.net.forward_prefilled()
            self._update_smoothed_loss(loss, start_iter)
            logger.info(f"Iteration {self.iter}, loss = {fmt(self.smoothed_loss)}")
        if p.test_interval > 0 and self.iter % p.test_interval == 0:
            self.test_all()
        logger.info("Optimization Done.")

    # -- snapshots -------------------------------------------------------------------
    def snapshot_filename(self, extension: str) -> str:
        return f"{self.param.snapshot_prefix}_iter_{self.iter}{extension}"

    def snapshot(self) -> str:
        """Write the model and the solver state; returns the state file name."""
        p = self.param
        if self.reducer is not None and not self.reducer.is_root:
            return ""  # data-parallel: rank 0 snapshots
        if self.check_finite:
            for i, b in enumerate(self.net.learnable_params):
                if not np.isfinite(backend.to_host(b.data)).all():
                    raise DivergenceError(
                        f"refusing to snapshot at iteration {self.iter}: learnable "
                        f"param {i} has non-finite values"
                    )
        hdf5 = p.snapshot_format == caffe_pb2.SolverParameter.HDF5
        try:
            if hdf5:
                model = self.snapshot_filename(".caffemodel.h5")
                logger.info(f"Snapshotting to HDF5 file {model}")
                self.net.save_hdf5(model, write_diff=p.snapshot_diff)
            else:
                model = self.snapshot_filename(".caffemodel")
                logger.info(f"Snapshotting to binary proto file {model}")
                self.net.save(model, write_diff=p.snapshot_diff)
            state = SolverStateData(
                iter=self.iter, learned_net=model, current_step=self.current_step,
                history=[backend.to_host(h) for h in self.history],
            )
            if hdf5:
                path = self.snapshot_filename(".solverstate.h5")
                logger.info(f"Snapshotting solver state to HDF5 file {path}")
                write_solverstate_hdf5(path, state)
            else:
                path = self.snapshot_filename(".solverstate")
                logger.info(f"Snapshotting solver state to binary proto file {path}")
                write_solverstate(path, state)
        except OSError as exc:
            raise SolverError(
                f"cannot write snapshot with prefix '{p.snapshot_prefix}': "
                f"{exc.strerror or exc}"
            ) from exc
        return path

    def restore(self, state_file: str) -> None:
        """Resume from a ``.solverstate`` or ``.solverstate.h5`` file."""
        if self.reducer is not None:  # data-parallel: rank 0 reads, all receive
            if self.reducer.is_root:
                self._restore(os.fspath(state_file))
            self.reducer.bcast()
            return
        self._restore(os.fspath(state_file))

    def _restore(self, state_file: str) -> None:
        state = read_solverstate(state_file)
        if len(state.history) != len(self.history):
            raise SolverError(
                f"{state_file}: the state holds {len(state.history)} history blobs, "
                f"but a {self.type} solver for this net keeps {len(self.history)} "
                f"({self.history_sets} per learnable param); was it written by "
                "another solver type or for another net?"
            )
        for i, (arr, h) in enumerate(zip(state.history, self.history, strict=True)):
            if arr.size != h.size:
                raise SolverError(
                    f"{state_file}: history blob {i} has shape {arr.shape}, the "
                    f"{self.type} solver expects {h.shape}"
                )
        if state.learned_net:
            model = state.learned_net
            if not os.path.exists(model):
                near = os.path.join(os.path.dirname(state_file),
                                    os.path.basename(model))
                if os.path.exists(near):
                    model = near
            try:
                self.net.copy_from(model)
            except RecaffeError:
                raise
            except OSError as exc:
                raise SolverError(f"{state_file}: cannot load learned_net "
                                  f"'{model}': {exc}") from exc
        self.iter = state.iter
        self.current_step = state.current_step
        logger.info(f"{self.type}Solver: restoring history")
        for arr, h in zip(state.history, self.history, strict=True):
            h[...] = backend.to_device(
                np.asarray(arr, dtype=h.dtype).reshape(h.shape),
                backend.get_array_module(h),
            )
