"""RecurrentLayer: the shared machinery of Caffe's ``RNN`` and ``LSTM`` layers.

Not a layer type itself; :mod:`recaffe.layers.rnn` and :mod:`recaffe.layers.lstm`
supply the cell. Interface (Caffe's, time-major):

Bottoms: ``x`` (T, N, ...) with at least 3 axes (features = product of axes 2..);
``cont`` (T, N), 0 where a sequence starts, 1 where it continues; optional
``x_static`` (N, ...) added (projected, no bias) to every time step; with
``expose_hidden`` the initial states, each (1, N, H) (RNN ``h_0``; LSTM ``h_0``,
``c_0``).
Tops: the output (T, N, H); with ``expose_hidden`` the final states, each
(1, N, H) (RNN ``h_T``; LSTM ``h_T``, ``c_T``).
Learnable params: the cell's, in Caffe's blob order (see the subclasses).
Proto fields: recurrent_param { num_output weight_filler bias_filler debug_info
expose_hidden }.
Gradients: to ``x``, ``x_static`` and the params; never to ``cont``; not through
the exposed states (their bottoms get a zero diff), as in Caffe.

T is fixed at setup; N may change. Without ``expose_hidden`` the layer is
stateful: each forward starts from the final state of the previous forward
(zeros at first; ``cont = 0`` resets a stream). When N changes, the carried
state keeps the first N streams if N shrinks and restarts from zeros if it grows.
Back-propagation through time is truncated at the window: the initial state is a
constant and the final state gets no gradient.

Two equivalent implementations:

- ``"net"``: Caffe's own construction, a private unrolled :class:`recaffe.Net`
  (one InnerProduct/Scale/Eltwise/... per step), run up to its pseudo-losses;
  ``recurrent_param.debug_info`` turns on its debug_info logging.
- ``"fused"`` (default): the same math on the outer blobs directly: one GEMM
  for the input projection of all T steps, a loop over t for the recurrent GEMM
  and the fused cell, and weight gradients as single GEMMs over all steps. On
  the CPU the cell's element-wise math runs as numba kernels when numba is
  installed (``pip install 'recaffe[fast]'``; :mod:`recaffe.backend.cpu_kernels`,
  off with ``RECAFFE_CPU_KERNELS=0``), as numpy ufuncs otherwise; both give the
  same numbers.

Pick one with the layer attribute ``impl`` (set before setup) or the environment
variable ``RECAFFE_RECURRENT_IMPL=net|fused``. Both honour ``lr_mult: 0`` on the
outer layer's ``param`` entries (Caffe does not): a param whose outer
``param_propagate_down`` is false gets no gradient accumulated.
"""

from __future__ import annotations

import os

from recaffe import backend
from recaffe.blob import BlobVec
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.layer import Layer
from recaffe.proto import caffe_pb2

IMPL_ENV = "RECAFFE_RECURRENT_IMPL"
IMPLS = ("fused", "net")


def _shape_msg(dims) -> caffe_pb2.BlobShape:
    return caffe_pb2.BlobShape(dim=[int(d) for d in dims])


class RecurrentLayer(Layer):
    """Base of RNN and LSTM (see the module docstring)."""

    #: "net" or "fused"; None: the environment variable, else "fused".
    impl: str | None = None
    #: Names of the recurrent states in bottom/top order, e.g. ("h",) or ("h", "c").
    state_names: tuple[str, ...] = ()

    def __init__(self, layer_param=None, phase=None):
        super().__init__(layer_param, phase)
        rp = self.layer_param.recurrent_param
        k = len(self.state_names) if rp.expose_hidden else 0
        self.min_bottom = 2 + k
        self.max_bottom = 3 + k
        self.exact_num_top = 1 + k
        self.net = None
        self._state = None

    def allow_force_backward(self, bottom_index: int) -> bool:
        # Sequence continuation indicators get no gradient.
        return bottom_index != 1

    # -- hooks for the cells ---------------------------------------------------
    def recurrent_input_names(self) -> list[str]:
        raise NotImplementedError

    def recurrent_output_names(self) -> list[str]:
        raise NotImplementedError

    def output_names(self) -> list[str]:
        raise NotImplementedError

    def fill_unrolled_net(self, net_param) -> None:
        """Append the cell's layers (Caffe's FillUnrolledNet) to ``net_param``."""
        raise NotImplementedError

    def param_specs(self) -> list[tuple[str, tuple[int, ...], bool]]:
        """(name, shape, is_bias) of each learnable blob, in blob order."""
        raise NotImplementedError

    def fused_reshape(self, dtype) -> None:
        raise NotImplementedError

    def fused_forward(self, bottom, top, init) -> list:
        """Compute top[0]; return the final states (each (N, H))."""
        raise NotImplementedError

    def fused_backward(self, top, propagate_down, bottom) -> None:
        raise NotImplementedError

    # -- helpers for the cells ---------------------------------------------------
    def hidden_param(self, num_output: int, bias: bool, axis: int = 2):
        """An InnerProduct LayerParameter as Caffe's unrolled nets use."""
        rp = self.layer_param.recurrent_param
        lp = caffe_pb2.LayerParameter(type="InnerProduct")
        ip = lp.inner_product_param
        ip.num_output = num_output
        ip.bias_term = bias
        ip.axis = axis
        ip.weight_filler.CopyFrom(rp.weight_filler)
        if bias:
            ip.bias_filler.CopyFrom(rp.bias_filler)
        return lp

    def add_layer(self, net_param, template=None, **fields):
        lp = net_param.layer.add()
        if template is not None:
            lp.CopyFrom(template)
        for key in ("name", "type"):
            if key in fields:
                setattr(lp, key, fields.pop(key))
        lp.bottom.extend(fields.pop("bottom", []))
        lp.top.extend(fields.pop("top", []))
        for pname in fields.pop("params", []):
            lp.param.add().name = pname
        if fields.pop("propagate_down", False):
            lp.propagate_down.append(True)
        if fields:
            raise TypeError(f"unknown fields {sorted(fields)}")
        return lp

    # -- setup / reshape -----------------------------------------------------------
    @property
    def num_states(self) -> int:
        return len(self.state_names)

    def _static_index(self) -> int | None:
        return 2 if self.static_input else None

    def _state_bottom_offset(self) -> int:
        return 3 if self.static_input else 2

    def setup(self, bottom, top):
        rp = self.layer_param.recurrent_param
        self.H = int(rp.num_output)
        if self.H <= 0:
            raise self.error(f"recurrent_param.num_output must be > 0, got "
                             f"{rp.num_output}")
        self.expose_hidden = bool(rp.expose_hidden)
        k = self.num_states if self.expose_hidden else 0
        self.static_input = len(bottom) > 2 + k
        x = bottom[0]
        self._check_x_axes(x)
        self.T = x.shape[0]
        self.N = x.shape[1]
        self.Dx = x.count_range(2)
        self.Ds = 0
        if self.static_input:
            xs = bottom[2]
            if xs.num_axes < 2:
                raise self.error(
                    f"bottom[2] 'x_static' must have at least 2 axes (N x features...),"
                    f" got shape {xs.shape}", ShapeError)
            self.Ds = xs.count_range(1)
        self._check_bottoms(bottom)
        self.impl_used = self._resolve_impl()
        self.blobs = BlobVec()
        if self.impl_used == "net":
            self._setup_net(bottom)
        else:
            from recaffe.filler import fill  # noqa: PLC0415

            rp_w = rp.weight_filler if rp.HasField("weight_filler") else None
            rp_b = rp.bias_filler if rp.HasField("bias_filler") else None
            for _name, shape, is_bias in self.param_specs():
                b = self.make_param_blob(shape)
                fill(b, rp_b if is_bias else rp_w)
        self.param_propagate_down = [True] * len(self.blobs)
        self._state = None

    def _resolve_impl(self) -> str:
        impl = self.impl or os.environ.get(IMPL_ENV) or "fused"
        impl = impl.strip().lower()
        if impl not in IMPLS:
            raise self.error(
                f"unknown recurrent implementation '{impl}' (from the layer's impl "
                f"attribute or ${IMPL_ENV}); choose one of {', '.join(IMPLS)}",
                LayerSetupError)
        return impl

    def _check_x_axes(self, x) -> None:
        if x.num_axes < 3:
            raise self.error(
                f"bottom[0] 'x' must have at least 3 axes (T x N x features...), got "
                f"shape {x.shape}; recurrent input is time-major: reshape it to "
                f"(T, N, D) and give cont of shape (T, N)", ShapeError)

    def _check_bottoms(self, bottom) -> None:
        x, cont = bottom[0], bottom[1]
        self._check_x_axes(x)
        if x.shape[0] != self.T:
            raise self.error(
                f"input number of timesteps changed: bottom[0] 'x' has T = "
                f"{x.shape[0]} (shape {x.shape}), the layer was set up with T = "
                f"{self.T}", ShapeError)
        n = x.shape[1]
        if x.count_range(2) != self.Dx:
            raise self.error(
                f"bottom[0] 'x' has {x.count_range(2)} features per step (shape "
                f"{x.shape}), the layer was set up with {self.Dx}", ShapeError)
        if cont.num_axes != 2:
            raise self.error(
                f"bottom[1] 'cont' must have 2 axes (T x N), got shape {cont.shape}",
                ShapeError)
        if cont.shape != (self.T, n):
            raise self.error(
                f"bottom[1] 'cont' must have shape (T, N) = {(self.T, n)} to match "
                f"bottom[0] 'x' {x.shape}, got {cont.shape}", ShapeError)
        if self.static_input:
            xs = bottom[2]
            if xs.num_axes < 2 or xs.shape[0] != n:
                raise self.error(
                    f"bottom[2] 'x_static' must have shape (N, ...) with N = {n}, got "
                    f"{xs.shape}", ShapeError)
            if xs.count_range(1) != self.Ds:
                raise self.error(
                    f"bottom[2] 'x_static' has {xs.count_range(1)} features (shape "
                    f"{xs.shape}), the layer was set up with {self.Ds}", ShapeError)
        if self.expose_hidden:
            off = self._state_bottom_offset()
            want = (1, n, self.H)
            for k, sname in enumerate(self.state_names):
                b = bottom[off + k]
                if b.shape != want:
                    raise self.error(
                        f"bottom[{off + k}] '{sname}_0' (exposed initial state) must "
                        f"have shape (1, N, H) = {want}, got {b.shape}", ShapeError)

    def reshape(self, bottom, top):
        self._check_bottoms(bottom)
        n = bottom[0].shape[1]
        self.N = n
        if self.impl_used == "net":
            self._reshape_net(bottom, top)
        else:
            top[0].reshape((self.T, n, self.H))
            self.fused_reshape(bottom[0].dtype)
        if self.expose_hidden:
            for k in range(self.num_states):
                top[1 + k].reshape((1, n, self.H))
        else:
            self._reshape_state(n, bottom[0].dtype)

    def buffer_fits(self, arr, shape, dtype) -> bool:
        """Whether a work array can be reused for ``shape``/``dtype`` on this device."""
        return (arr is not None and arr.shape == tuple(shape) and arr.dtype == dtype
                and backend.get_array_module(arr) is self.xp)

    def _reshape_state(self, n: int, dtype) -> None:
        xp = self.xp
        h = self.H
        st = self._state
        if st is not None and self.buffer_fits(st[0], (n, h), dtype):
            return
        if st is not None and backend.get_array_module(st[0]) is not xp:
            st = [backend.to_device(backend.to_host(a), xp) for a in st]
        new = [xp.zeros((n, h), dtype=dtype) for _ in self.state_names]
        if st is not None and st[0].shape[0] >= n:
            for a, b in zip(new, st, strict=True):
                a[...] = b[:n]
        self._state = new

    def reset_state(self) -> None:
        """Forget the carried state (the next forward starts from zeros)."""
        if self._state is not None:
            for a in self._state:
                a[...] = 0

    # -- forward / backward ----------------------------------------------------------
    def forward(self, bottom, top):
        if self.expose_hidden:
            off = self._state_bottom_offset()
            init = [bottom[off + k].data[0] for k in range(self.num_states)]
        else:
            init = self._state
        if self.impl_used == "net":
            final = self._forward_net(bottom, top, init)
        else:
            final = self.fused_forward(bottom, top, init)
        if self.expose_hidden:
            for k in range(self.num_states):
                top[1 + k].data[0] = final[k]
        else:
            for a, f in zip(self._state, final, strict=True):
                a[...] = f

    def backward(self, top, propagate_down, bottom):
        if self.impl_used == "net":
            self._backward_net(top, propagate_down, bottom)
        else:
            self.fused_backward(top, propagate_down, bottom)
        # cont and the exposed initial states are constants to this layer.
        if propagate_down[1]:
            bottom[1].diff[...] = 0
        if self.expose_hidden:
            off = self._state_bottom_offset()
            for k in range(self.num_states):
                if propagate_down[off + k]:
                    bottom[off + k].diff[...] = 0

    # -- the internal unrolled net ----------------------------------------------------
    def build_net_param(self, bottom) -> caffe_pb2.NetParameter:
        """Caffe's unrolled NetParameter for the current bottoms."""
        net_param = caffe_pb2.NetParameter()
        inp = net_param.layer.add(type="Input")
        names = ["x", "cont"] + (["x_static"] if self.static_input else [])
        for i, name in enumerate(names):
            inp.top.append(name)
            inp.input_param.shape.add().CopyFrom(_shape_msg(bottom[i].shape))
        self.fill_unrolled_net(net_param)
        if self.name:
            for lp in net_param.layer:
                lp.name = f"{self.name}_{lp.name}"
        for out in self.output_names():
            self.add_layer(net_param, name=f"{out}_pseudoloss", type="Reduction",
                           bottom=[out], top=[f"{out}_pseudoloss"])
            net_param.layer[-1].loss_weight.append(1.0)
        return net_param

    def _setup_net(self, bottom) -> None:
        from recaffe.net import Net  # noqa: PLC0415 - the net imports the layers

        net_param = self.build_net_param(bottom)
        net = Net(net_param, _state=caffe_pb2.NetState(phase=caffe_pb2.TEST))
        net.debug_info = bool(self.layer_param.recurrent_param.debug_info)
        self.net = net
        for pid in net.learnable_param_ids:
            self.blobs.append(net.param_blobs[pid])
        # For each internal (layer, j): the outer blob index it belongs to.
        self._param_index = {}
        for pid, (li, j) in enumerate(net.param_layer_indices):
            owner = net.param_owners[pid]
            owner = pid if owner < 0 else owner
            self._param_index[(li, j)] = net.learnable_param_ids.index(owner)
        self._x_blob = net.blob_by_name("x")
        self._cont_blob = net.blob_by_name("cont")
        self._xs_blob = net.blob_by_name("x_static") if self.static_input else None
        self._rin = [net.blob_by_name(n) for n in self.recurrent_input_names()]
        self._rout = [net.blob_by_name(n) for n in self.recurrent_output_names()]
        self._out = [net.blob_by_name(n) for n in self.output_names()]
        self._last_layer = len(net.layers_list) - 1 - len(self.output_names())
        x_id = net._blob_by_name["x"]
        xs_id = net._blob_by_name.get("x_static") if self.static_input else None
        self._x_consumers = []
        self._xs_consumers = []
        for li, bids in enumerate(net.bottom_ids):
            for j, bid in enumerate(bids):
                if bid == x_id:
                    self._x_consumers.append((li, j))
                elif xs_id is not None and bid == xs_id:
                    self._xs_consumers.append((li, j))

    def _reshape_net(self, bottom, top) -> None:
        net = self.net
        n = bottom[0].shape[1]
        self._x_blob.reshape(bottom[0].shape)
        self._cont_blob.reshape(bottom[1].shape)
        if self.static_input:
            self._xs_blob.reshape(bottom[2].shape)
        for b in self._rin:
            b.reshape((1, n, self.H))
        net.reshape()
        # The outer net may have re-aliased our params (sharing by name).
        net.share_weights()
        self._x_blob.share_data(bottom[0])
        self._x_blob.share_diff(bottom[0])
        self._cont_blob.share_data(bottom[1])
        if self.static_input:
            self._xs_blob.share_data(bottom[2])
            self._xs_blob.share_diff(bottom[2])
        out = self._out[0]
        top[0].reshape(out.shape)
        top[0].share_data(out)
        top[0].share_diff(out)

    def _forward_net(self, bottom, top, init) -> list:
        for b, a in zip(self._rin, init, strict=True):
            b.data[0] = a
        self.net._forward_range(0, self._last_layer)
        return [b.data[0] for b in self._rout]

    def _backward_net(self, top, propagate_down, bottom) -> None:
        net = self.net
        ppd = self.param_propagate_down
        for (li, j), k in self._param_index.items():
            net.layers_list[li].param_propagate_down[j] = bool(ppd[k])
        for li, j in self._x_consumers:
            net.bottom_need_backward[li][j] = bool(propagate_down[0])
        for li, j in self._xs_consumers:
            net.bottom_need_backward[li][j] = bool(propagate_down[2])
        net._backward_range(self._last_layer, 0)
