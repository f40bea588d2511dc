"""Net: a NetParameter built into connected layers and blobs (Caffe's Net).

Construction follows Caffe: upgrade legacy fields, set the state, filter layers
by phase/level/stage, insert Splits for fan-out, create and set up each layer,
register and share parameters by ``ParamSpec.name``, decide which layers need
backward, then alias shared parameters (data and diff) to their owners.

The pycaffe surface (``blobs``, ``params``, ``forward``, ``backward``, …) lives
in :class:`recaffe.pycaffe_net.PycaffeNetMixin`; weight files in
:mod:`recaffe.net_weights`.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from recaffe import graph_runner
from recaffe.backend.synced import runs_on_device
from recaffe.blob import Blob
from recaffe.device import ensure_device
from recaffe.errors import BlobMemoryError, NetError, PrototxtError, RecaffeError
from recaffe.insert_splits import insert_splits
from recaffe.io.prototxt import read_prototxt
from recaffe.io.upgrade import upgrade_net_param
from recaffe.layer import create_layer
from recaffe.log import fmt, logger
from recaffe.net_filter import filter_net
from recaffe.net_weights import NetWeightsMixin
from recaffe.plan import ExecutionPlan, plan_enabled, share_buffers_default
from recaffe.proto import caffe_pb2
from recaffe.pycaffe_net import PycaffeNetMixin

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST


def _parse_net_args(args, phase, weights):
    """Sort pycaffe's constructor forms into (phase, weights)."""
    args = list(args)
    if len(args) == 1:
        if phase is not None:
            raise TypeError("Net(): phase given twice")
        phase = args[0]
    elif len(args) == 2:  # legacy Net(file, weights, phase)
        if weights is not None or phase is not None:
            raise TypeError("Net(file, weights, phase): weights/phase given twice")
        weights, phase = args
        logger.warning("Net(file, pretrained, phase) is deprecated; use "
                       "Net(file, phase, weights=pretrained)")
    elif len(args) > 2:
        raise TypeError("Net() takes at most 3 positional arguments")
    if isinstance(phase, str):
        phase = {"TRAIN": TRAIN, "TEST": TEST}.get(phase.upper(), phase)
    if phase not in (TRAIN, TEST):
        raise TypeError(
            f"Net(): phase must be recaffe.TRAIN or recaffe.TEST, got {phase!r}"
        )
    return int(phase), weights


def _name_blob(exc: BlobMemoryError, lp, tops, layer) -> BlobMemoryError:
    """The same error, saying which layer and which of its blobs failed."""
    what = "a learnable or internal blob"
    for j, blob in enumerate(tops):
        if blob is exc.blob:
            name = lp.top[j] if j < len(lp.top) else "(automatic)"
            what = f"top[{j}] '{name}'"
    for j, blob in enumerate(layer.blobs):
        if blob is exc.blob:
            what = f"learnable blob {j}"
    return BlobMemoryError(f"{lp.type} layer '{lp.name}': {what}: {exc}", exc.blob)


class Net(PycaffeNetMixin, NetWeightsMixin):
    """A network of layers connected by blobs.

    Forms: ``Net(prototxt, phase)``, ``Net(prototxt, phase, weights=path)``,
    ``Net(prototxt, weights, phase)`` (legacy), ``level=``, ``stages=``. The
    first argument may also be a ``NetParameter``.
    """

    def __init__(self, network, *args, phase=None, level=0, stages=None, weights=None,
                 _state=None):
        if _state is None:
            phase, weights = _parse_net_args(args, phase, weights)
        if isinstance(network, (str, os.PathLike)):
            path = os.fspath(network)
            if not os.path.isfile(path):
                raise PrototxtError(f"Could not open file {path}")
            param = read_prototxt(path, caffe_pb2.NetParameter)
            self.source = path
        elif isinstance(network, caffe_pb2.NetParameter):
            param = caffe_pb2.NetParameter()
            param.CopyFrom(network)
            self.source = None
        else:
            raise TypeError(f"Net(): expected a prototxt path or NetParameter, got "
                            f"{type(network).__name__}")
        upgrade_net_param(param)
        if _state is not None:
            param.state.CopyFrom(_state)
        else:
            param.state.phase = phase
            param.state.level = int(level)
            if stages:
                del param.state.stage[:]
                param.state.stage.extend(stages)
        self._init(param)
        if weights:
            self.copy_from(weights)

    # -- construction ----------------------------------------------------------
    def _init(self, in_param) -> None:
        filtered = filter_net(in_param)
        param = insert_splits(filtered)
        self.param = param
        self.name = param.name
        self.phase = int(param.state.phase)
        self.debug_info = bool(param.debug_info)
        self.layers_list = []
        self.layer_names: list[str] = []
        self.bottom_vecs: list[list[Blob]] = []
        self.top_vecs: list[list[Blob]] = []
        self.bottom_ids: list[list[int]] = []
        self.top_ids: list[list[int]] = []
        self.blob_list: list[Blob] = []
        self.blob_names: list[str] = []
        self.blob_need_backward: list[bool] = []
        self.blob_loss_weight_list: list[float] = []
        self.bottom_need_backward: list[list[bool]] = []
        self.layer_need_backward: list[bool] = []
        # Parameters: every layer's blobs, and the learnable (owner) ones.
        self.param_blobs: list[Blob] = []
        self.param_owners: list[int] = []
        self.param_display_names: list[str] = []
        self.param_layer_indices: list[tuple[int, int]] = []
        self.param_names_index: dict[str, int] = {}
        self.learnable_params: list[Blob] = []
        self._flat_params = None  # see flatten_params
        self.learnable_param_ids: list[int] = []
        self.params_lr: list[float] = []
        self.has_params_lr: list[bool] = []
        self.params_weight_decay: list[float] = []
        self.has_params_decay: list[bool] = []

        name_to_idx: dict[str, int] = {}
        available: set[str] = set()
        for layer_id, lp in enumerate(param.layer):
            if not lp.HasField("phase"):
                lp.phase = param.state.phase
            if lp.propagate_down and len(lp.propagate_down) != len(lp.bottom):
                raise NetError(
                    f"layer '{lp.name}' ({lp.type}): propagate_down must be given once "
                    f"per bottom ({len(lp.bottom)}), got {len(lp.propagate_down)}"
                )
            layer = create_layer(lp, lp.phase)
            self.layers_list.append(layer)
            self.layer_names.append(lp.name)
            bvec, bids, bneed = [], [], []
            need_backward = False
            for j, bname in enumerate(lp.bottom):
                if bname not in available:
                    raise NetError(
                        f"layer '{lp.name}' ({lp.type}): unknown bottom blob '{bname}' "
                        f"(bottom index {j})"
                    )
                bid = name_to_idx[bname]
                available.discard(bname)
                bvec.append(self.blob_list[bid])
                bids.append(bid)
                nb = self.blob_need_backward[bid]
                if lp.propagate_down:
                    nb = bool(lp.propagate_down[j])
                bneed.append(nb)
                need_backward |= self.blob_need_backward[bid]
            tvec, tids = [], []
            for j, tname in enumerate(lp.top):
                if j < len(lp.bottom) and lp.bottom[j] == tname:
                    bid = bids[j]
                    tvec.append(self.blob_list[bid])
                    tids.append(bid)
                    available.add(tname)
                    continue
                if tname in name_to_idx:
                    raise NetError(
                        f"layer '{lp.name}' ({lp.type}): top blob '{tname}' (top index "
                        f"{j}) is produced by multiple sources; only in-place reuse "
                        "(top i == bottom i) is allowed"
                    )
                tids.append(self._new_blob(tname, name_to_idx))
                tvec.append(self.blob_list[tids[-1]])
                available.add(tname)
            if layer.auto_top_blobs and not lp.top:
                needed = max(layer.exact_num_top, layer.min_top, 1)
                for _ in range(needed):
                    tids.append(self._new_blob("(automatic)", None))
                    tvec.append(self.blob_list[tids[-1]])
            self.bottom_vecs.append(bvec)
            self.bottom_ids.append(bids)
            self.top_vecs.append(tvec)
            self.top_ids.append(tids)
            try:
                layer.SetUp(bvec, tvec)
            except BlobMemoryError as exc:
                raise _name_blob(exc, lp, tvec, layer) from None
            except RecaffeError:
                raise
            except (ValueError, IndexError, KeyError, TypeError,
                    ArithmeticError) as exc:
                if lp.type == "Python":
                    raise
                raise NetError(
                    f"{lp.type} layer '{lp.name}': setup failed: {exc}"
                ) from exc
            for j, tid in enumerate(tids):
                w = layer.loss_weights[j] if j < len(layer.loss_weights) else 0.0
                self.blob_loss_weight_list[tid] = w
            # Parameters.
            nparams = len(layer.blobs)
            if len(lp.param) > nparams:
                raise NetError(
                    f"layer '{lp.name}' ({lp.type}): too many params specified: "
                    f"{len(lp.param)} param {{}} blocks for {nparams} learnable blob(s)"
                )
            layer.param_propagate_down = [True] * nparams
            for j in range(nparams):
                spec = lp.param[j] if j < len(lp.param) else caffe_pb2.ParamSpec()
                pneed = spec.lr_mult != 0
                need_backward |= pneed
                layer.param_propagate_down[j] = pneed
            for j in range(nparams):
                self._append_param(lp, layer, layer_id, j)
            self.layer_need_backward.append(need_backward)
            self.bottom_need_backward.append(bneed)
            if need_backward:
                for tid in tids:
                    self.blob_need_backward[tid] = True
        self._backward_sweep(param)
        # Layers no backward pass reaches may skip what only backward needs.
        for layer, need in zip(self.layers_list, self.layer_need_backward, strict=True):
            layer.forward_only = not need
        self.output_names = sorted(
            n for n in available if n != "(automatic)"
        )
        self.output_blob_ids = [name_to_idx[n] for n in self.output_names]
        self.input_blob_ids = []
        for i, layer in enumerate(self.layers_list):
            if layer.type == "Input":
                self.input_blob_ids.extend(self.top_ids[i])
        self._blob_by_name = {n: i for i, n in enumerate(self.blob_names)}
        #: (layer index, blob index) -> index into param_blobs
        self.param_id_of = {li: pid for pid, li in enumerate(self.param_layer_indices)}
        self._layer_by_name: dict[str, int] = {}
        for i, n in enumerate(self.layer_names):
            self._layer_by_name.setdefault(n, i)
        self.share_weights()
        #: pycaffe's callbacks by kind, each wrapped by ``host_call`` when it
        #: was registered (called with the layer index)
        self._callbacks = {"before_forward": [], "after_forward": [],
                           "before_backward": [], "after_backward": []}
        self._cache = {}
        self.plan = None
        #: Optional per-step callbacks run during a whole backward pass (data
        #: parallelism starts gradient reductions from them): an object with
        #: ``plan_table(plan)`` (one callable or None per step of ``plan.bwd``)
        #: and ``layer_table(net)`` (one per layer, run after that layer's
        #: backward). Unlike the ``after_backward`` callbacks it keeps the
        #: execution plan; None (the default) costs nothing.
        self.backward_hooks = None
        self._plan_synced = True
        self._plan_forwarded = False
        self._share_buffers = share_buffers_default()
        #: The buffer sharing the current plan applied (:mod:`recaffe.plan.sharing`).
        self._sharing = None
        #: Blobs a script looked up (``net.blobs``): never shared.
        self._pinned: set[str] = set()

    def param_owner(self, layer_index: int, j: int) -> int:
        """The id (into ``param_blobs``) of the parameter that layer
        ``layer_index``'s blob ``j`` is: its owner's where it shares one by
        name, else its own."""
        pid = self.param_id_of[(layer_index, j)]
        owner = self.param_owners[pid]
        return pid if owner < 0 else owner

    @property
    def share_buffers(self) -> bool:
        """Whether the execution plan lets blobs whose values no later step
        needs share arrays (:mod:`recaffe.plan.sharing`) and runs unrolled
        LSTMs as one step (:mod:`recaffe.plan.sequence`): less memory and
        time for unrolled nets, but such a blob shows another step's values
        after a pass. Off unless ``RECAFFE_SHARE_BUFFERS=1``; setting it
        drops the current plan."""
        return self._share_buffers

    @share_buffers.setter
    def share_buffers(self, on: bool) -> None:
        self._share_buffers = bool(on)
        self._unshare_buffers()
        self._drop_plan()

    def _drop_plan(self) -> None:
        """Forget the execution plan: the next full pass makes a new one."""
        self.plan = None
        self._plan_synced = True
        self._plan_forwarded = False

    def _active_sharing(self):
        """The current plan's buffer sharing while it is in force, else None."""
        sh = self._sharing
        return sh if sh is not None and sh.active else None

    @property
    def shared_blob_names(self) -> list[str]:
        """Names of the blobs whose data or diff the current plan shares."""
        sh = self._active_sharing()
        if sh is None:
            return []
        return [self.blob_names[b] for b in sorted(sh.data_ids | sh.diff_ids)]

    def _unshare_buffers(self) -> bool:
        """Give shared blobs their own arrays again; True if any were shared
        (the plan that shared them must not run again)."""
        sh = self._active_sharing()
        self._sharing = None
        if sh is None:
            return False
        sh.undo()
        return True

    def _pin(self, names, quiet: bool = False) -> None:
        """Blobs ``names`` are read by a script: keep them in their own arrays
        from the next plan on. One that the current plan shares holds another
        blob's values now: the sharing is undone and, unless ``quiet`` (the
        caller runs a pass before reading), a NetError says so."""
        new = [n for n in names if n not in self._pinned]
        if not new:
            return
        self._pinned.update(new)
        sh = self._active_sharing()
        if sh is None:
            return
        shared = sh.data_ids | sh.diff_ids
        hit = [n for n in new if self._blob_by_name[n] in shared]
        if not hit:
            return
        self._unshare_buffers()
        self._drop_plan()
        if not quiet:
            raise NetError(
                f"blob '{hit[0]}' shared its array with other blobs during the "
                f"last pass (share_buffers is on), so it holds another blob's "
                f"values; it keeps its own array from the next pass on (look "
                f"blobs up in net.blobs before the first pass to keep them)")

    @property
    def pinned_blob_names(self) -> list[str]:
        """Blobs looked up through ``net.blobs``: sharing leaves them alone."""
        return sorted(self._pinned)

    def _check_unshared(self, what: str, ids, kind: str) -> None:
        """A clear error when a partial pass would read blobs (``ids()``, an
        iterable of blob ids, made only while sharing is in force) whose
        arrays the plan shares: their values are another step's."""
        sh = self._active_sharing()
        if sh is None:
            return
        shared = sh.data_ids if kind == "data" else sh.diff_ids
        hit = [self.blob_names[b] for b in ids() if b in shared]
        if hit:
            raise NetError(
                f"{what} reads the {kind} of blob '{hit[0]}', which shares its "
                f"array with other blobs (share_buffers is on), so it holds "
                f"another blob's values; run the whole net, or set "
                f"net.share_buffers = False first")

    def _new_blob(self, name: str, name_to_idx) -> int:
        b = Blob(())
        b.name = name
        self.blob_list.append(b)
        self.blob_names.append(name)
        self.blob_need_backward.append(False)
        self.blob_loss_weight_list.append(0.0)
        idx = len(self.blob_list) - 1
        if name_to_idx is not None:
            name_to_idx[name] = idx
        return idx

    def _append_param(self, lp, layer, layer_id: int, j: int) -> None:
        spec = lp.param[j] if j < len(lp.param) else caffe_pb2.ParamSpec()
        pname = spec.name
        net_id = len(self.param_blobs)
        blob = layer.blobs[j]
        if not blob.name:
            blob.name = f"{lp.name}[{j}]"
        self.param_blobs.append(blob)
        self.param_layer_indices.append((layer_id, j))
        self.param_display_names.append(pname if pname else str(j))
        if not pname or pname not in self.param_names_index:
            if pname:
                self.param_names_index[pname] = net_id
            self.param_owners.append(-1)
            self.learnable_param_ids.append(net_id)
            self.learnable_params.append(blob)
            self.has_params_lr.append(spec.HasField("lr_mult"))
            self.has_params_decay.append(spec.HasField("decay_mult"))
            self.params_lr.append(float(spec.lr_mult))
            self.params_weight_decay.append(float(spec.decay_mult))
            return
        owner_id = self.param_names_index[pname]
        self.param_owners.append(owner_id)
        owner_layer_id, owner_j = self.param_layer_indices[owner_id]
        owner_blob = self.param_blobs[owner_id]
        where = (f"layer '{lp.name}' ({lp.type}) param {j} shares '{pname}' with layer "
                 f"'{self.layer_names[owner_layer_id]}' param {owner_j}")
        permissive = caffe_pb2.ParamSpec.PERMISSIVE
        if spec.HasField("share_mode") and spec.share_mode == permissive:
            if owner_blob.count != blob.count:
                raise NetError(f"{where}: count mismatch, owner has {owner_blob.count} "
                               f"elements {owner_blob.shape}, sharer {blob.count} "
                               f"{blob.shape}")
        elif owner_blob.shape != blob.shape:
            raise NetError(f"{where}: shape mismatch, owner has {owner_blob.shape}, "
                           f"sharer {blob.shape} (use share_mode: PERMISSIVE to only "
                           "check counts)")
        li = self.learnable_param_ids.index(owner_id)
        if spec.HasField("lr_mult"):
            if self.has_params_lr[li]:
                if self.params_lr[li] != spec.lr_mult:
                    raise NetError(f"Shared param '{pname}' has mismatched lr_mult: "
                                   f"{self.params_lr[li]} vs {spec.lr_mult} ({where})")
            else:
                self.has_params_lr[li] = True
                self.params_lr[li] = float(spec.lr_mult)
        if spec.HasField("decay_mult"):
            if self.has_params_decay[li]:
                if self.params_weight_decay[li] != spec.decay_mult:
                    raise NetError(f"Shared param '{pname}' has mismatched decay_mult: "
                                   f"{self.params_weight_decay[li]} vs "
                                   f"{spec.decay_mult} ({where})")
            else:
                self.has_params_decay[li] = True
                self.params_weight_decay[li] = float(spec.decay_mult)
        # Alias now (share_weights does it again at the end): the sharer's own
        # filled copy is freed at once instead of living until the net is built
        # (an unrolled net has one copy per time step).
        blob.share_data(owner_blob)
        blob.share_diff(owner_blob)

    def _backward_sweep(self, param) -> None:
        under_loss: set[str] = set()
        skip: set[str] = set()
        for i in range(len(self.layers_list) - 1, -1, -1):
            layer = self.layers_list[i]
            contributes = False
            skip_pd = True
            for j, tid in enumerate(self.top_ids[i]):
                name = self.blob_names[tid]
                w = layer.loss_weights[j] if j < len(layer.loss_weights) else 0.0
                if w != 0 or name in under_loss:
                    contributes = True
                if name not in skip:
                    skip_pd = False
            if self.layer_need_backward[i] and skip_pd:
                self.layer_need_backward[i] = False
                self.bottom_need_backward[i] = [False] * len(self.bottom_ids[i])
            if not contributes:
                self.layer_need_backward[i] = False
            for j, bid in enumerate(self.bottom_ids[i]):
                name = self.blob_names[bid]
                if contributes:
                    under_loss.add(name)
                else:
                    self.bottom_need_backward[i][j] = False
                if not self.bottom_need_backward[i][j]:
                    skip.add(name)
        if param.force_backward:
            for i, layer in enumerate(self.layers_list):
                self.layer_need_backward[i] = True
                for j, bid in enumerate(self.bottom_ids[i]):
                    f = self.bottom_need_backward[i][j] or layer.allow_force_backward(j)
                    self.bottom_need_backward[i][j] = f
                    self.blob_need_backward[bid] = self.blob_need_backward[bid] or f
                layer.param_propagate_down = [True] * len(layer.blobs)

    def share_weights(self) -> None:
        """Alias every sharer's data and diff to its owner's."""
        for i, owner in enumerate(self.param_owners):
            if owner < 0:
                continue
            blob = self.param_blobs[i]
            blob.share_data(self.param_blobs[owner])
            blob.share_diff(self.param_blobs[owner])

    # -- execution -------------------------------------------------------------
    def _plain_ran(self) -> None:
        """The per-layer loop ran: time-batched layers hold per-step state now
        (and shared blobs have their own arrays again)."""
        if self._unshare_buffers():
            self.plan = None
        self._plan_synced = False
        self._plan_forwarded = False
        graph_runner.invalidate(self)  # layer state may have moved: capture anew

    def _get_plan(self):
        """The execution plan (:mod:`recaffe.plan`), built lazily on the first
        full forward; None when it must not be used (``RECAFFE_PLAN=0``,
        ``debug_info``, callbacks)."""
        if self.debug_info or not plan_enabled() or any(self._callbacks.values()):
            return None
        plan = self.plan
        if plan is not None and not plan.shapes_valid():
            plan = None
        if plan is None:
            self._unshare_buffers()
            plan = self.plan = ExecutionPlan(
                self, share=self._share_buffers,
                keep={self._blob_by_name[n] for n in self._pinned})
            self._sharing = plan.sharing
            self._plan_synced = True
        elif not self._plan_synced:
            plan.sync()
            self._plan_synced = True
        return plan

    @runs_on_device
    def _forward_range(self, start: int, end: int) -> float:
        ensure_device(self)
        if start == 0 and end == len(self.layers_list) - 1:
            plan = self._get_plan()
            if plan is not None:
                loss = graph_runner.forward(self, plan)  # a CUDA graph on a GPU
                if loss is not None:
                    self._plan_forwarded = True
                    return loss
                return self._forward_planned(plan)
        elif start > 0:
            # Bottoms made before ``start`` come from the last pass.
            def read_from_last_pass():
                made = {t for i in range(start) for t in self.top_ids[i]}
                return [b for i in range(start, end + 1) for b in self.bottom_ids[i]
                        if b in made]
            self._check_unshared(f"forward from layer '{self.layer_names[start]}'",
                                 read_from_last_pass, "data")
        self._plain_ran()
        loss = 0.0
        cbs = self._callbacks
        for i in range(start, end + 1):
            for f in cbs["before_forward"]:
                f(i)
            loss += self.layers_list[i].Forward(self.bottom_vecs[i], self.top_vecs[i])
            if self.debug_info:
                self._forward_debug_info(i)
            for f in cbs["after_forward"]:
                f(i)
        return loss

    def _forward_planned(self, plan) -> float:
        loss, stopped = plan.forward()
        if stopped < 0:
            self._plan_forwarded = True
            return loss
        # A layer's top shapes changed: finish the pass the plain way (in the
        # original order, which every dependency respects); rebuild next time.
        done = plan.executed_layers(stopped)
        self.plan = None
        self._plain_ran()
        for i in range(len(self.layers_list)):
            if i not in done:
                loss += self.layers_list[i].Forward(self.bottom_vecs[i],
                                                    self.top_vecs[i])
        return loss

    @runs_on_device
    def _backward_range(self, start: int, end: int) -> None:
        ensure_device(self)
        plan = self.plan
        if plan is not None and self._plan_forwarded:
            # The forward just ran this plan, so only what may have changed
            # since is checked (not the environment).
            if (start == len(self.layers_list) - 1 and end == 0
                    and not self.debug_info and plan.shapes_valid()
                    and not any(self._callbacks.values())):
                if not self._plan_synced:
                    plan.sync()
                    self._plan_synced = True
                if not graph_runner.backward(self, plan):
                    plan.backward()  # (on a GPU, a CUDA graph where possible)
                return
            # The planned forward left time-batched layers with stacked state.
            for g in plan.groups:
                for m in g.members:
                    self.layers_list[m].reshape(self.bottom_vecs[m], self.top_vecs[m])
        if start < len(self.layers_list) - 1:
            # Top diffs read after ``start`` come from the last backward.
            def read_from_last_backward():
                later = {b for i in range(start + 1, len(self.layers_list))
                         for b in self.bottom_ids[i]}
                return [t for i in range(end, start + 1) for t in self.top_ids[i]
                        if t in later]
            self._check_unshared(f"backward from layer '{self.layer_names[start]}'",
                                 read_from_last_backward, "diff")
        self._plain_ran()
        cbs = self._callbacks
        hooks = self.backward_hooks
        table = (hooks.layer_table(self) if hooks is not None
                 and start == len(self.layers_list) - 1 and end == 0 else None)
        for i in range(start, end - 1, -1):
            for f in cbs["before_backward"]:
                f(i)
            if self.layer_need_backward[i]:
                self.layers_list[i].Backward(
                    self.top_vecs[i], self.bottom_need_backward[i], self.bottom_vecs[i]
                )
                if self.debug_info:
                    self._backward_debug_info(i)
            for f in cbs["after_backward"]:
                f(i)
            if table is not None and table[i] is not None:
                table[i]()
        if self.debug_info and end == 0:
            self._update_debug_info()

    def forward_prefilled(self) -> float:
        """Forward all layers; returns the weighted loss (Caffe's Forward(&loss))."""
        return self._forward_range(0, len(self.layers_list) - 1)

    def backward_all(self) -> None:
        self._backward_range(len(self.layers_list) - 1, 0)

    def forward_backward(self) -> float:
        loss = self.forward_prefilled()
        self.backward_all()
        return loss

    def clear_param_diffs(self) -> None:
        # Either side: from a script it zeroes the host side (arrays the
        # script holds see the zeros); inside a solver step, the device side.
        ensure_device(self)
        flat = self.flat_params()
        if flat is not None:
            flat[1].fill(0)
            return
        for b in self.learnable_params:
            b.diff[...] = 0

    def flatten_params(self) -> bool:
        """Lay the learnable params' data, and their diffs, back to back in two
        flat arrays (values kept; sharers re-aliased), so the solver can clear,
        check and update all of them with one operation each instead of one
        per param. CPU nets whose params have one dtype; returns whether it
        did. Arrays taken from the params before this call no longer follow
        them (solvers call it while building their net)."""
        params = self.learnable_params
        if not params or any(b.array_module is not np for b in params) or \
                len({b.dtype for b in params}) != 1:
            return False
        from recaffe.plan.layout import point  # noqa: PLC0415 - plan imports net

        total = sum(b.count for b in params)
        data = np.zeros(total, dtype=params[0].dtype)
        diff = np.zeros(total, dtype=params[0].dtype)
        views, off = [], 0
        for b in params:
            d, g = data[off: off + b.count], diff[off: off + b.count]
            point(b, data=d, diff=g)
            views.append((b, d, g))
            off += b.count
        self.share_weights()
        self._flat_params = (data, diff, views)
        return True

    def flat_params(self):
        """``(data, diff)``: the flat arrays of :meth:`flatten_params` while
        every learnable param still uses them (a reshape or a device move
        re-allocates a param, and the per-param code takes over), else None."""
        fp = self._flat_params
        if fp is None:
            return None
        for b, d, g in fp[2]:
            if not b.uses_buffers(d, g):
                self._flat_params = None
                return None
        return fp[0], fp[1]

    @runs_on_device
    def reshape(self) -> None:
        ensure_device(self)
        for i, layer in enumerate(self.layers_list):
            try:
                layer.reshape(self.bottom_vecs[i], self.top_vecs[i])
            except BlobMemoryError as exc:
                raise _name_blob(exc, layer.layer_param, self.top_vecs[i],
                                 layer) from None

    # -- debug_info (Caffe's lines) ---------------------------------------------
    def _forward_debug_info(self, i: int) -> None:
        name = self.layer_names[i]
        for tid in self.top_ids[i]:
            b = self.blob_list[tid]
            logger.info(f"    [Forward] Layer {name}, top blob {self.blob_names[tid]} "
                        f"data: {fmt(b.asum_data() / max(b.count, 1))}")
        layer = self.layers_list[i]
        for j, b in enumerate(layer.blobs):
            pid = self.param_id_of[(i, j)]
            logger.info(f"    [Forward] Layer {name}, param blob "
                        f"{self.param_display_names[pid]} data: "
                        f"{fmt(b.asum_data() / max(b.count, 1))}")

    def _backward_debug_info(self, i: int) -> None:
        name = self.layer_names[i]
        for j, bid in enumerate(self.bottom_ids[i]):
            if not self.bottom_need_backward[i][j]:
                continue
            b = self.blob_list[bid]
            logger.info(f"    [Backward] Layer {name}, bottom blob "
                        f"{self.blob_names[bid]} diff: "
                        f"{fmt(b.asum_diff() / max(b.count, 1))}")
        layer = self.layers_list[i]
        for j, b in enumerate(layer.blobs):
            if layer.param_propagate_down and not layer.param_propagate_down[j]:
                continue
            logger.info(f"    [Backward] Layer {name}, param blob {j} diff: "
                        f"{fmt(b.asum_diff() / max(b.count, 1))}")

    def _update_debug_info(self) -> None:
        a_d = sum(b.asum_data() for b in self.learnable_params)
        a_g = sum(b.asum_diff() for b in self.learnable_params)
        s_d = float(np.sqrt(sum(b.sumsq_data() for b in self.learnable_params)))
        s_g = float(np.sqrt(sum(b.sumsq_diff() for b in self.learnable_params)))
        logger.info(f"    [Backward] All net params (data, diff): L1 norm = "
                    f"({fmt(a_d)}, {fmt(a_g)}); L2 norm = ({fmt(s_d)}, {fmt(s_g)})")

    # -- lookup ------------------------------------------------------------------
    def blob_by_name(self, name: str) -> Blob:
        try:
            return self.blob_list[self._blob_by_name[name]]
        except KeyError:
            raise NetError(f"net '{self.name}': unknown blob '{name}'") from None

    def layer_by_name(self, name: str):
        try:
            return self.layers_list[self._layer_by_name[name]]
        except KeyError:
            raise NetError(f"net '{self.name}': unknown layer '{name}'") from None

    def layer_index(self, name: str) -> int:
        try:
            return self._layer_by_name[name]
        except KeyError:
            raise NetError(f"net '{self.name}': unknown layer '{name}'") from None

    def has_blob(self, name: str) -> bool:
        return name in self._blob_by_name

    @property
    def blobs_ordered(self) -> OrderedDict:
        return OrderedDict(zip(self.blob_names, self.blob_list, strict=True))
