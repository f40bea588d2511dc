"""LSTM: Caffe's long short-term memory layer, unrolled over T time steps.

Math (Zaremba et al.'s variant, no peepholes; per stream, t = 1..T):

    h~_{t-1}          = cont_t * h_{t-1}
    a_t               = W_hc h~_{t-1} + W_xc x_t + b_c [+ W_xc_static x_static]
    [i', f', o', g']  = a_t split into four chunks of H (this order)
    i = sigmoid(i'), f = cont_t * sigmoid(f'), o = sigmoid(o'), g = tanh(g')
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

The cell is :mod:`recaffe.layers.lstm_unit` (LSTMUnit), whose backward (Caffe's,
``df' = dc * c_prev * f (1 - f)`` with ``f`` including cont) the fused path
reproduces exactly.

Bottoms: ``x`` (T, N, ...), ``cont`` (T, N), optional ``x_static`` (N, ...),
with ``expose_hidden`` ``h_0``, ``c_0`` (each (1, N, H)).
Tops: ``h`` (T, N, H); with ``expose_hidden`` ``h_T``, ``c_T`` (each (1, N, H)).
Learnable params (blob order): ``W_xc`` (4H, D_x), ``b_c`` (4H,),
[``W_xc_static`` (4H, D_s)], ``W_hc`` (4H, H); rows [0,H) input gate, [H,2H)
forget gate, [2H,3H) output gate, [3H,4H) cell candidate. Weights use
recurrent_param.weight_filler, the bias bias_filler (absent: constant 0).
Proto fields: recurrent_param { num_output weight_filler bias_filler debug_info
expose_hidden }.
Gradients: to ``x``, ``x_static`` and every param; none to ``cont`` or through
the exposed states. State carrying, T/N rules and the two implementations
(internal net / fused) are described in :mod:`recaffe.layers.recurrent`.
"""

from __future__ import annotations

import numpy as np

from recaffe.backend import blas, cpu_kernels, cuda_kernels, onednn
from recaffe.errors import BackendError
from recaffe.layer import register_layer
from recaffe.layers.lstm_unit import sigmoid_into
from recaffe.layers.recurrent import RecurrentLayer
from recaffe.log import logger
from recaffe.proto import caffe_pb2


@register_layer
class LSTMLayer(RecurrentLayer):
    type = "LSTM"
    state_names = ("h", "c")

    def recurrent_input_names(self):
        return ["h_0", "c_0"]

    def recurrent_output_names(self):
        return [f"h_{self.T}", "c_T"]

    def output_names(self):
        return ["h"]

    def param_specs(self):
        g = 4 * self.H
        specs = [("W_xc", (g, self.Dx), False), ("b_c", (g,), True)]
        if self.static_input:
            specs.append(("W_xc_static", (g, self.Ds), False))
        specs.append(("W_hc", (g, self.H), False))
        return specs

    # -- Caffe's unrolled net ------------------------------------------------------
    def fill_unrolled_net(self, net_param):
        h = self.H
        add = self.add_layer
        hidden = self.hidden_param(4 * h, bias=False)
        biased = self.hidden_param(4 * h, bias=True)
        inp = add(net_param, type="Input", top=["c_0", "h_0"])
        inp.input_param.shape.add(dim=[1, self.N, h])
        inp.input_param.shape.add(dim=[1, self.N, h])
        cont_slice = add(net_param, name="cont_slice", type="Slice", bottom=["cont"])
        cont_slice.slice_param.axis = 0
        add(net_param, biased, name="x_transform", params=["W_xc", "b_c"],
            bottom=["x"], top=["W_xc_x"], propagate_down=True)
        if self.static_input:
            lp = add(net_param, hidden, name="W_xc_x_static", params=["W_xc_static"],
                     bottom=["x_static"], top=["W_xc_x_static_preshape"],
                     propagate_down=True)
            lp.inner_product_param.axis = 1
            rs = add(net_param, name="W_xc_x_static_reshape", type="Reshape",
                     bottom=["W_xc_x_static_preshape"], top=["W_xc_x_static"])
            rs.reshape_param.shape.dim.extend([1, -1, 4 * h])
        x_slice = add(net_param, name="W_xc_x_slice", type="Slice", bottom=["W_xc_x"])
        x_slice.slice_param.axis = 0
        concat = caffe_pb2.LayerParameter(name="h_concat", type="Concat", top=["h"])
        concat.concat_param.axis = 0
        for t in range(1, self.T + 1):
            tm1, ts = str(t - 1), str(t)
            cont_slice.top.append(f"cont_{ts}")
            x_slice.top.append(f"W_xc_x_{ts}")
            sc = add(net_param, name=f"h_conted_{tm1}", type="Scale",
                     bottom=[f"h_{tm1}", f"cont_{ts}"], top=[f"h_conted_{tm1}"])
            sc.scale_param.axis = 0
            add(net_param, hidden, name=f"transform_{ts}", params=["W_hc"],
                bottom=[f"h_conted_{tm1}"], top=[f"W_hc_h_{tm1}"])
            bottoms = [f"W_hc_h_{tm1}", f"W_xc_x_{ts}"]
            if self.static_input:
                bottoms.append("W_xc_x_static")
            s = add(net_param, name=f"gate_input_{ts}", type="Eltwise", bottom=bottoms,
                    top=[f"gate_input_{ts}"])
            s.eltwise_param.operation = caffe_pb2.EltwiseParameter.SUM
            add(net_param, name=f"unit_{ts}", type="LSTMUnit",
                bottom=[f"c_{tm1}", f"gate_input_{ts}", f"cont_{ts}"],
                top=[f"c_{ts}", f"h_{ts}"])
            concat.bottom.append(f"h_{ts}")
        add(net_param, type="Split", bottom=[f"c_{self.T}"], top=["c_T"])
        net_param.layer.add().CopyFrom(concat)

    # -- fused implementation ------------------------------------------------------
    # numpy arrays run _forward_cpu / _backward_cpu, gate-major: a step's gates
    # are a (4H, N) block, its states (H, N), the input projection and its
    # gradient (4H, T, N) (compiled whole-sequence loops when numba is
    # installed, see recaffe.backend.cpu_kernels). Other array modules (CuPy)
    # run the generic code, time-major ((N, 4H) / (N, H) per step), with the
    # CUDA kernels.
    def fused_reshape(self, dtype):
        xp = self.xp
        t, n, h = self.T, self.N, self.H
        if xp is np:
            ride = n >= self.RIDE_MIN_N
            k = h + self.Dx if ride else h
            key = (t, n, h, k, np.dtype(dtype))
            if getattr(self, "_cpu_key", None) == key:
                return
            self._cpu_key = key
            self._ride = ride
            self._k = k
            # [W_hc | W_xc] when the input rides along in the steps' GEMM
            self._wcat = np.zeros((4 * h, k), dtype=dtype) if ride else None
            self._ht = np.zeros((h, n), dtype=dtype)         # h_t, before (N, H)
            self._bias = None  # b_c as (4H, 1, 1)
            self._no_x = np.zeros((t, n, 0), dtype=dtype)
            self._gx_fwd = None  # forward-only: the input projection
        else:
            shape = (t, n, 4 * h)
            if self.buffer_fits(getattr(self, "_gx", None), shape, dtype):
                return
            self._cpu_key = None
            self._gx = xp.zeros(shape, dtype=dtype)    # the input projection, then dG
            self._z = xp.zeros((n, 4 * h), dtype=dtype)
        self._step = None  # forward-only: one step's arrays
        self._kept = None  # the per-step arrays backward reads (allocated on use)
        self._stale = False  # the last forward kept nothing for backward

    def _kept_arrays(self):
        """The per-step arrays a training forward keeps for backward."""
        if self._kept is None:
            xp = self.xp
            dtype = (self._ht if xp is np else self._gx).dtype
            t, n, h = self.T, self.N, self.H
            self._kept = True
            if xp is np:
                k = self._k
                self._gx = np.zeros((4 * h, t, n), dtype=dtype)    # dG
                self._acts = np.zeros((t, 4 * h, n), dtype=dtype)  # i, f*cont, o, g
                self._cs = np.zeros((t + 1, h, n), dtype=dtype)    # c_0 .. c_T
                self._tc = np.zeros((t, h, n), dtype=dtype)        # tanh(c_t)
                self._src = np.zeros((t, n, k), dtype=dtype)   # [cont_t h_{t-1} | x_t]
                self._dht = np.zeros((h, n), dtype=dtype)     # W_hc^T dG_{t+1}
                self._dc = np.zeros((h, n), dtype=dtype)
                self._dtt = np.zeros((h, n), dtype=dtype)     # the top's diff^T
                self._ones = np.ones((t * n, 1), dtype=dtype)  # db = dG 1
                return
            self._acts = xp.zeros((t, n, 4 * h), dtype=dtype)  # i, f (with cont), o, g
            self._hs = xp.zeros((t + 1, n, h), dtype=dtype)    # h_0 .. h_T
            self._cs = xp.zeros((t + 1, n, h), dtype=dtype)    # c_0 .. c_T
            self._tc = xp.zeros((t, n, h), dtype=dtype)        # tanh(c_t)
            self._hc = xp.zeros((t, n, h), dtype=dtype)        # cont_t * h_{t-1}
            self._dh = xp.zeros((n, h), dtype=dtype)
            self._dc = xp.zeros((n, h), dtype=dtype)

    def _weights(self):
        b = [blob.data for blob in self.blobs]
        if self.static_input:
            return b
        return b[:2] + [None] + b[2:]

    def fused_forward(self, bottom, top, init):
        self._by_onednn = False
        if self.xp is np and getattr(self, "forward_only", False):
            self._stale = True
            return self._forward_cpu_only(bottom, top, init)
        self._stale = False
        if self.xp is np:
            done = self._forward_onednn(bottom, top, init, train=True)
            if done is not None:
                self._by_onednn = True
                return done
            self._kept_arrays()
            return self._forward_cpu(bottom, top, init)
        self._kept_arrays()
        return self._forward_generic(bottom, top, init)

    def fused_backward(self, top, propagate_down, bottom):
        if getattr(self, "_by_onednn", False):
            self._backward_onednn(top, propagate_down, bottom)
            return
        self._kept_arrays()
        if self._stale:
            # The last forward kept nothing (forward-only): redo it with the
            # per-step arrays, from the state that forward started from.
            self._forward_cpu(bottom, top, [self._init_h, self._init_c])
            self._stale = False
        if self.xp is np:
            self._backward_cpu(top, propagate_down, bottom)
        else:
            self._backward_generic(top, propagate_down, bottom)

    # -- gradients through the states (the execution plan's engine) -----------------
    #: For :mod:`recaffe.plan.sequence` only (Caffe's layer has no gradient
    #: through its states): None, or (the last cell state's gradient (N, H)
    #: or None, whether to keep the initial states' gradients).
    _through_states = None

    def backward_through_states(self, top, propagate_down, bottom, dc_last=None,
                                initial=False):
        """Backward as :meth:`backward` (CPU), but starting from ``dc_last``
        (N, H), the gradient reaching the final cell state, and with
        ``initial`` leaving the gradients of the initial states in
        ``self.initial_state_diffs`` (``(dh_0, dc_0)``, (N, H) each, cont
        applied): what an unrolled net's per-step layers compute. Not
        Caffe's ``LSTM`` layer, whose states pass no gradient: the execution
        plan runs unrolled LSTMs through this."""
        self._through_states = (dc_last, bool(initial))
        self.initial_state_diffs = None
        try:
            self.backward(top, propagate_down, bottom)
        finally:
            self._through_states = None

    # -- numpy: gate-major -----------------------------------------------------------
    # A step's one GEMM is [W_hc | W_xc] [h~ | x_t]^T -> (4H, N), written
    # straight into the step's gate block: with the weights as stored this is
    # BLAS's fastest orientation at these shapes (about 25 % over the (N, 4H)
    # product at N=64, H=512), the input projection rides along (no separate
    # GEMM with the input's often short rows, no (4H, T, N) array to read
    # back per step), and the gate math then runs on contiguous rows of N
    # without transposing the 4H x N block. Backward's recurrent GEMM is
    # W_hc^T dG_t -> (H, N).
    #: Batches of at least this many streams run the input projection inside
    #: the steps' GEMM; smaller ones (a step is then a memory-bound GEMV or
    #: close to it, where the wider weight costs more than a separate
    #: projection) project all steps' inputs in one GEMM first. Measured
    #: (forward, T=50, D=65, 2 threads, ms, projected vs riding): H=512 N=1
    #: 2.0 vs 3.5, N=8 15.0 vs 16.6, N=16 22.3 vs 20.6, N=32 37.5 vs 34.4;
    #: H=128 N=8 2.0 vs 2.5, N=16 3.9 vs 3.3.
    RIDE_MIN_N = 16

    def _sources(self, bottom, gx):
        """``(w, x, add)`` for the forward loop: with the input riding along,
        ``w`` = [W_hc | W_xc] (4H, H + D), ``x`` the input (T, N, D) and
        ``add`` = ``b_c`` (4H, 1, 1), or with a static input ``b_c +
        W_xc_static x_static^T`` (4H, 1, N); else ``w`` = W_hc, ``x`` has no
        columns and ``add`` = ``gx`` (4H, T, N) := ``W_xc x^T + b_c`` (+ the
        static term)."""
        t_, n, h = self.T, self.N, self.H
        w_xc, b_c, w_s, w_hc = self._weights()
        static = None
        if self.static_input:
            static = blas.matmul(w_s, bottom[2].data.reshape(n, self.Ds).T)
            static += b_c[:, None]
        if not self._ride:
            gx2 = gx.reshape(4 * h, t_ * n)
            blas.matmul(w_xc, bottom[0].data.reshape(t_ * n, self.Dx).T, out=gx2)
            gx += b_c[:, None, None] if static is None else static[:, None, :]
            return w_hc, self._no_x, gx
        w = self._wcat
        w[:, :h] = w_hc
        w[:, h:] = w_xc
        x = bottom[0].data.reshape(t_, n, self.Dx)
        if static is not None:
            return w, x, static[:, None, :]
        if self._bias is None:
            self._bias = np.empty((4 * h, 1, 1), dtype=w.dtype)
        self._bias[:, 0, 0] = b_c
        return w, x, self._bias

    @staticmethod
    def _step_numpy(at, b, c_prev, c, tc, ht, hout_t, hc_next, cont_t, cont_n,
                    has_next):
        """One step with numpy ufuncs (``at`` (4H, N) holds the step's
        product, ``b`` the addend's (4H, 1) or (4H, N) slice): the compiled step's
        operations in its order, with ``np.tanh`` where the compiled float32
        step has fast_math.tanh32 (at most 6.6 ulp apart), so float64 results
        are the same bits. ``hc_next`` is the next step's source rows (N, K);
        ``h * cont_n`` goes into its first H columns."""
        h = at.shape[0] // 4
        tanh = np.tanh
        half = at.dtype.type(0.5)
        at += b
        at[: 3 * h] *= half  # sigmoid(x) = 0.5 tanh(x / 2) + 0.5 on i, f, o
        tanh(at, out=at)
        at[: 3 * h] *= half
        at[: 3 * h] += half
        at[h: 2 * h] *= cont_t
        i, f, o, g = at[:h], at[h: 2 * h], at[2 * h: 3 * h], at[3 * h:]
        np.multiply(f, c_prev, out=c)
        c += i * g
        tanh(c, out=tc)
        np.multiply(o, tc, out=ht)
        hout_t[...] = ht.T
        if has_next:
            np.multiply(hout_t, cont_n[:, None], out=hc_next[:, :h])

    def _run_forward(self, bottom, top, init, acts, cs, tc, src, keep):
        """The forward loop on ``acts`` (T or 1, 4H, N), ``cs`` (T + 1 or 2,
        H, N), ``tc`` (T or 1, H, N), ``src`` (T or 1, N, H + D); see
        cpu_kernels._lstm_seq_forward for ``keep``."""
        t_, h = self.T, self.H
        if self._ride:
            gx = None
        elif keep:
            gx = self._gx
        else:  # forward-only, inputs projected first: a buffer of its own
            if self._gx_fwd is None:
                self._gx_fwd = np.zeros((4 * h, t_, self.N), dtype=self._ht.dtype)
            gx = self._gx_fwd
        w, x, add = self._sources(bottom, gx)
        cont = bottom[1].data
        hout = top[0].data
        ht = self._ht
        np.multiply(init[0], cont[0][:, None], out=src[0][:, :h])
        cs[0] = init[1].T
        f32 = w.dtype == np.float32
        fns = cpu_kernels.sequence_blas(w, x, add, cont, acts, cs, tc, src, hout,
                                        ht) if f32 else None
        if fns is not None:  # the whole loop compiled, numpy's BLAS called from it
            cpu_kernels.lstm_seq_forward(fns, w, x, add, cont, acts, cs, tc, src, hout,
                                         ht, keep)
            return
        fast = f32 and cpu_kernels.usable(np, w, add, cont, cs, hout)
        per_step = add.shape[1] != 1
        for t in range(t_):
            nxt = t + 1 < t_
            tn = t + 1 if nxt else t
            if keep:
                s, at, tct, dst = src[t], acts[t], tc[t], src[tn]
                c_prev, c = cs[t], cs[t + 1]
            else:
                s, at, tct, dst = src[0], acts[0], tc[0], src[0]
                c_prev, c = cs[t % 2], cs[(t + 1) % 2]
            s[:, h:] = x[t]
            blas.matmul(w, s.T, out=at)
            if fast:
                cpu_kernels.lstm_forward_step(at, add, t, c_prev, c, tct, ht, hout[t],
                                              dst, cont[t], cont[tn], nxt)
            else:
                self._step_numpy(at, add[:, t if per_step else 0], c_prev, c, tct, ht,
                                 hout[t], dst, cont[t], cont[tn], nxt)

    def _forward_cpu(self, bottom, top, init):
        cs = self._cs
        self._run_forward(bottom, top, init, self._acts, cs, self._tc, self._src, True)
        return [top[0].data[self.T - 1], cs[self.T].T]

    def _forward_cpu_only(self, bottom, top, init):
        """Forward for a layer no backward pass reaches: the same arithmetic as
        :meth:`_forward_cpu`, with one step's gates and states reused for every
        step instead of T of each (nothing is kept for backward)."""
        # Kept for a backward that nobody planned (it recomputes from these).
        self._init_h, self._init_c = init[0].copy(), init[1].copy()
        done = self._forward_onednn(bottom, top, init)
        if done is not None:
            return done
        n, h, dtype = self.N, self.H, self._ht.dtype
        if self._step is None:
            k = self._k
            self._step = (np.zeros((1, 4 * h, n), dtype), np.zeros((2, h, n), dtype),
                          np.zeros((1, h, n), dtype), np.zeros((1, n, k), dtype))
        acts, cs, tc, hc = self._step
        self._run_forward(bottom, top, init, acts, cs, tc, hc, False)
        return [top[0].data[self.T - 1], cs[self.T % 2].T]

    def _forward_onednn(self, bottom, top, init, train=False):
        """The sequence through oneDNN's LSTM primitive (see
        :mod:`recaffe.backend.onednn`): forward-only, or with ``train`` the
        training forward whose backward :meth:`_backward_onednn` runs. None
        where it does not apply: float32, no static input, at least
        ``onednn.MIN_N`` streams, numpy's own BLAS selected, and ``cont`` 1
        after the first step (the first step's cont is folded into the
        initial states, the same arithmetic: ``cont f c = f (cont c)`` and
        ``W (cont h) = cont (W h)``; for training it must be 0 or 1)."""
        t_, n, h = self.T, self.N, self.H
        if (self.static_input or n < onednn.MIN_N or self._ht.dtype != np.float32
                or blas.routed()):
            return None
        cont = bottom[1].data
        if not (cont[1:] == 1).all():
            return None
        # Caffe's backward differentiates f = cont sigmoid(f') as if cont
        # were part of the gate: exact only for cont 0 or 1.
        if train and not ((cont[0] == 0) | (cont[0] == 1)).all():
            return None
        y = top[0].data
        x = bottom[0].data.reshape(t_, n, self.Dx)
        w_xc, b_c, _w_s, w_hc = self._weights()
        if not all(a.flags.c_contiguous for a in (x, y, w_xc, w_hc)):
            return None
        if getattr(self, "_dnnl_failed", None) == (t_, n, train):
            return None
        try:
            if train:
                prim = onednn.lstm_training(t_, n, self.Dx, h,
                                            getattr(self, "_dnnl_train", None))
                self._dnnl_train = prim
            else:
                prim = onednn.lstm_inference(t_, n, self.Dx, h)
        except BackendError as exc:  # e.g. no memory for the workspace
            self._dnnl_failed = (t_, n, train)
            logger.warning(f"LSTM layer '{self.name}': oneDNN's primitives could "
                           f"not be made for T={t_} N={n} D={self.Dx} H={h} ({exc}); "
                           "the layer's own loop runs instead")
            return None
        if prim is None:
            return None
        c0 = cont[0].astype(np.float32)[:, None]
        h_0 = np.multiply(init[0], c0, dtype=np.float32)
        c_0 = np.multiply(init[1], c0, dtype=np.float32)
        if train:
            hs, _h_t, c_t = prim.forward(x, w_xc, b_c, w_hc, h_0, c_0)
            y[...] = hs.reshape(y.shape)
            return [y[t_ - 1], c_t.copy()]
        c_t = np.empty((n, h), np.float32)
        prim.run(x, w_xc, b_c, w_hc, h_0, c_0, y.reshape(t_, n, h), np.empty_like(c_t),
                 c_t)
        return [y[t_ - 1], c_t]

    def _backward_onednn(self, top, propagate_down, bottom):
        """Backward of a training forward that oneDNN ran: the same gradients
        as :meth:`_backward_cpu` (parameters' added, the input's set)."""
        t_, n = self.T, self.N
        if not onednn.available():  # lost since the forward (a forked child)
            st = self._dnnl_train._states  # cont (0 or 1) is folded in already
            self._by_onednn = False
            self._kept_arrays()
            self._forward_cpu(bottom, top, [st["h0"].copy(), st["c0"].copy()])
            self._backward_cpu(top, propagate_down, bottom)
            return
        w_xc, b_c, _w_s, w_hc = self._weights()
        grads = {}
        for (name, _, _), blob, on in zip(self.param_specs(), self.blobs,
                                          self.param_propagate_down, strict=True):
            if on:
                grads[{"W_xc": "wx", "W_hc": "wh", "b_c": "b"}[name]] = blob.diff
        dx = bottom[0].diff.reshape(t_, n, self.Dx) if propagate_down[0] else None
        through = self._through_states
        dc_t = None if through is None else through[0]
        prim = self._dnnl_train
        prim.backward(bottom[0].data.reshape(t_, n, self.Dx), w_xc, b_c, w_hc,
                      top[0].diff.reshape(t_, n, self.H), dx, grads, dc_t)
        if through is not None and through[1]:
            # The primitive started from cont_0 h_0 and cont_0 c_0.
            c0 = bottom[1].data[0].astype(np.float32)[:, None]
            dh0, dc0 = prim.initial_state_diffs()
            self.initial_state_diffs = (dh0 * c0, dc0 * c0)

    def _backward_cpu(self, top, propagate_down, bottom):
        t_, h = self.T, self.H
        w_xc, _b_c, w_s, w_hc = self._weights()
        acts, cs, tc = self._acts, self._cs, self._tc
        dg = self._gx  # reused: holds dL/d(gate inputs)
        dht, dc, dtt = self._dht, self._dc, self._dtt
        dtop = top[0].diff
        cont = bottom[1].data
        fns = cpu_kernels.sequence_blas(w_hc, acts, cs, tc, dtop, cont, dg, dht, dc,
                                        dtt)
        through = self._through_states
        if through is None or through[0] is None:
            dc[...] = 0
        else:
            dc[...] = through[0].T
        if fns is not None:  # the whole loop compiled (no transcendentals: any dtype)
            cpu_kernels.lstm_seq_backward(fns, w_hc, acts, cs, tc, dtop, cont, dg, dht,
                                          dc, dtt)
        else:
            fast = cpu_kernels.usable(np, acts, dtop, dht, cont)
            for t in range(t_ - 1, -1, -1):
                nxt = t + 1 < t_
                cn = cont[t + 1 if nxt else t]
                if fast:
                    cpu_kernels.lstm_backward_step_t(acts[t], cs[t], tc[t], dtop[t],
                                                     dht, cn, nxt, dg, t, dc, dtt)
                else:
                    at = acts[t]
                    i, f, o, g = at[:h], at[h: 2 * h], at[2 * h: 3 * h], at[3 * h:]
                    tct = tc[t]
                    d_h = dtop[t].T + dht * cn if nxt else dtop[t].T
                    dcv = dc + d_h * o * (1.0 - tct * tct)
                    np.multiply(dcv * g, i * (1.0 - i), out=dg[:h, t])
                    np.multiply(dcv * cs[t], f * (1.0 - f), out=dg[h: 2 * h, t])
                    np.multiply(d_h * tct, o * (1.0 - o), out=dg[2 * h: 3 * h, t])
                    np.multiply(dcv * i, 1.0 - g * g, out=dg[3 * h:, t])
                    np.multiply(dcv, f, out=dc)
                if t > 0:
                    blas.matmul(w_hc.T, dg[:, t], out=dht)
        if through is not None and through[1]:
            # h~_0 = cont_0 h_0 fed the first product; c_0's gradient is
            # what the loop carried out of the first step (f holds cont).
            dh0 = blas.matmul(w_hc.T, dg[:, 0]).T
            dh0 *= cont[0][:, None]
            self.initial_state_diffs = (dh0, dc.T.copy())
        dg2 = dg.reshape(4 * h, t_ * self.N)
        # row sums as a GEMV: BLAS's threads, one read of dG
        db = blas.matmul(dg2, self._ones)[:, 0]
        ds_rows = dg.sum(axis=1).T if self.static_input else None
        src = self._src.reshape(t_ * self.N, self._k)
        self._param_grads(dg2.T, db, ds_rows, propagate_down, bottom, w_xc, w_s,
                          src[:, :h])

    def _param_grads(self, dg_rows, db, ds_rows, propagate_down, bottom, w_xc, w_s,
                     hc_rows):
        """Parameter and bottom gradients from the gate-input gradients as
        ``dg_rows`` (T N, 4H) (a view of either layout), their sum over rows
        ``db`` (4H,), with a static input their sum over time ``ds_rows``
        (N, 4H), and the recurrent inputs ``cont_t h_{t-1}`` as ``hc_rows``
        (T N, H)."""
        t_, n = self.T, self.N
        ppd = dict(zip((name for name, _, _ in self.param_specs()),
                       zip(self.blobs, self.param_propagate_down, strict=True),
                       strict=True))
        blob, on = ppd["W_hc"]
        if on:
            blas.matmul_acc(dg_rows.T, hc_rows, blob.diff)
        blob, on = ppd["W_xc"]
        if on:
            blas.matmul_acc(dg_rows.T, bottom[0].data.reshape(t_ * n, self.Dx),
                            blob.diff)
        blob, on = ppd["b_c"]
        if on:
            blob.diff += db
        if propagate_down[0]:
            blas.matmul(dg_rows, w_xc, out=bottom[0].diff.reshape(t_ * n, self.Dx))
        if self.static_input:
            blob, on = ppd["W_xc_static"]
            if on:
                blas.matmul_acc(ds_rows.T, bottom[2].data.reshape(n, self.Ds),
                                blob.diff)
            if propagate_down[2]:
                blas.matmul(ds_rows, w_s, out=bottom[2].diff.reshape(n, self.Ds))

    # -- other array modules: time-major layout ----------------------------------------
    def _forward_generic(self, bottom, top, init):
        xp = self.xp
        t_, n, h = self.T, self.N, self.H
        w_xc, b_c, w_s, w_hc = self._weights()
        gx, acts, hs, cs, tc, hc, z = (self._gx, self._acts, self._hs, self._cs,
                                       self._tc, self._hc, self._z)
        gx2 = gx.reshape(t_ * n, 4 * h)
        blas.matmul(bottom[0].data.reshape(t_ * n, self.Dx), w_xc.T, out=gx2)
        gx2 += b_c
        s = None
        if self.static_input:
            s = blas.matmul(bottom[2].data.reshape(n, self.Ds), w_s.T)
        cont = bottom[1].data
        hs[0] = init[0]
        cs[0] = init[1]
        fused = cuda_kernels.usable(xp, z, cont, cs)
        for t in range(t_):
            ct = cont[t][:, None]
            xp.multiply(hs[t], ct, out=hc[t])
            blas.matmul(hc[t], w_hc.T, out=z)
            z += gx[t]
            if s is not None:
                z += s
            if fused:  # one CUDA kernel for the cell
                cuda_kernels.lstm_forward_step(z, cs[t], cont[t], acts[t], cs[t + 1],
                                               tc[t], hs[t + 1])
                continue
            at = acts[t]
            sigmoid_into(z[:, : 3 * h], at[:, : 3 * h], xp)
            xp.tanh(z[:, 3 * h:], out=at[:, 3 * h:])
            at[:, h: 2 * h] *= ct
            i, f, o, g = at[:, :h], at[:, h: 2 * h], at[:, 2 * h: 3 * h], at[:, 3 * h:]
            c = cs[t + 1]
            xp.multiply(f, cs[t], out=c)
            c += i * g
            xp.tanh(c, out=tc[t])
            xp.multiply(o, tc[t], out=hs[t + 1])
        top[0].data[...] = hs[1:]
        return [hs[t_], cs[t_]]

    def _backward_generic(self, top, propagate_down, bottom):
        xp = self.xp
        t_, h = self.T, self.H
        w_xc, _b_c, w_s, w_hc = self._weights()
        acts, cs, tc = self._acts, self._cs, self._tc
        dg = self._gx  # reused: holds dL/d(gate inputs)
        dh_next, dc_next = self._dh, self._dc
        dh_next[...] = 0
        dc_next[...] = 0
        dtop = top[0].diff
        cont = bottom[1].data
        fused = cuda_kernels.usable(xp, acts, dtop, dh_next)
        for t in range(t_ - 1, -1, -1):
            if fused:  # one CUDA kernel for the cell's gradients
                cuda_kernels.lstm_backward_step(acts[t], cs[t], tc[t], dtop[t], dh_next,
                                                dg[t], dc_next)
                if t > 0:
                    blas.matmul(dg[t], w_hc, out=dh_next)
                    dh_next *= cont[t][:, None]
                continue
            at = acts[t]
            i, f, o, g = at[:, :h], at[:, h: 2 * h], at[:, 2 * h: 3 * h], at[:, 3 * h:]
            tct = tc[t]
            d_h = dtop[t] + dh_next
            dc = dc_next + d_h * o * (1.0 - tct * tct)
            dgt = dg[t]
            xp.multiply(dc * g, i * (1.0 - i), out=dgt[:, :h])
            xp.multiply(dc * cs[t], f * (1.0 - f), out=dgt[:, h: 2 * h])
            xp.multiply(d_h * tct, o * (1.0 - o), out=dgt[:, 2 * h: 3 * h])
            xp.multiply(dc * i, 1.0 - g * g, out=dgt[:, 3 * h:])
            xp.multiply(dc, f, out=dc_next)
            if t > 0:
                blas.matmul(dgt, w_hc, out=dh_next)
                dh_next *= cont[t][:, None]
        dg2 = dg.reshape(t_ * self.N, 4 * h)
        ds_rows = dg.sum(axis=0) if self.static_input else None
        self._param_grads(dg2, dg2.sum(axis=0), ds_rows, propagate_down, bottom, w_xc,
                          w_s, self._hc.reshape(t_ * self.N, h))
