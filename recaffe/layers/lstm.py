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

from recaffe.backend import blas, cpu_kernels, cuda_kernels
from recaffe.layer import register_layer
from recaffe.layers.lstm_unit import sigmoid_into
from recaffe.layers.recurrent import RecurrentLayer
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
    # Time-major work arrays: a step's gate pre-activations/activations are an
    # (N, 4H) block, the states (N, H). numpy arrays run _forward_cpu /
    # _backward_cpu (fused numba kernels when available, see
    # recaffe.backend.cpu_kernels); other array modules (CuPy) the generic code
    # with the CUDA kernels.
    def fused_reshape(self, dtype):
        xp = self.xp
        t, n, h = self.T, self.N, self.H
        if self.buffer_fits(getattr(self, "_gx", None), (t, n, 4 * h), dtype):
            return
        self._gx = xp.zeros((t, n, 4 * h), dtype=dtype)    # W_xc x_t + b_c, then dG
        self._z = xp.zeros((n, 4 * h), dtype=dtype)
        self._zt = xp.zeros((4 * h, n), dtype=dtype)       # (W_hc h~)^T
        self._kept = None  # the per-step arrays backward reads (allocated on use)
        self._stale = False  # the last forward kept nothing for backward

    def _kept_arrays(self):
        """The per-step arrays a training forward keeps for backward."""
        if self._kept is None:
            xp, dtype = self.xp, self._gx.dtype
            t, n, h = self.T, self.N, self.H
            self._kept = True
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
        if self.xp is np and getattr(self, "forward_only", False):
            self._stale = True
            return self._forward_cpu_only(bottom, top, init)
        self._kept_arrays()
        self._stale = False
        if self.xp is np:
            return self._forward_cpu(bottom, top, init)
        return self._forward_generic(bottom, top, init)

    def fused_backward(self, top, propagate_down, bottom):
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

    # -- numpy ---------------------------------------------------------------------
    # The recurrent GEMM is computed transposed, (W_hc h~^T) -> (4H, N): with the
    # weight as stored this is BLAS's fastest orientation at these shapes (about
    # 20 % over h~ W_hc^T at N=64, H=512). Adding the input projection transposes
    # it back into the step's (N, 4H) block.
    def _project_inputs(self, bottom):
        """``gx = x W_xc^T + b_c`` (+ the static input's term) for all steps."""
        t_, n, h = self.T, self.N, self.H
        w_xc, b_c, w_s, _w_hc = self._weights()
        gx = self._gx
        gx2 = gx.reshape(t_ * n, 4 * h)
        blas.matmul(bottom[0].data.reshape(t_ * n, self.Dx), w_xc.T, out=gx2)
        gx2 += b_c
        if self.static_input:
            gx += bottom[2].data.reshape(n, self.Ds) @ w_s.T
        return gx

    @staticmethod
    def _cell_step(zt, gx_t, at, c_prev, c, tc_t, cont, t, nxt, hc_next, hout_t,
                   fast):
        """One step from the recurrent product ``zt`` (4H x N): the gates into
        ``at``, the cell ``c`` from ``c_prev``, ``tanh(c)`` into ``tc_t``, the
        output into ``hout_t`` and, when ``nxt``, the next step's masked input
        ``cont[t+1] * h`` into ``hc_next`` (any (N, H) array when not)."""
        h = at.shape[1] // 4
        if fast:
            cpu_kernels.lstm_preact(zt, gx_t, at)
            np.tanh(at, out=at)
            cpu_kernels.lstm_cell(at, c_prev, cont[t], c)
            np.tanh(c, out=tc_t)
            tn = t + 1 if nxt else t
            cpu_kernels.lstm_output(at, tc_t, cont[tn], hc_next, hout_t, nxt)
            return
        # sigmoid(x) = 0.5 tanh(x / 2) + 0.5 on the i, f, o chunks
        np.add(zt.T, gx_t, out=at)
        at[:, : 3 * h] *= 0.5
        np.tanh(at, out=at)
        at[:, : 3 * h] *= 0.5
        at[:, : 3 * h] += 0.5
        at[:, h: 2 * h] *= cont[t][:, None]
        i, f, o, g = at[:, :h], at[:, h: 2 * h], at[:, 2 * h: 3 * h], at[:, 3 * h:]
        np.multiply(f, c_prev, out=c)
        c += i * g
        np.tanh(c, out=tc_t)
        np.multiply(o, tc_t, out=hout_t)
        if nxt:
            np.multiply(hout_t, cont[t + 1][:, None], out=hc_next)

    def _forward_cpu(self, bottom, top, init):
        t_ = self.T
        w_hc = self._weights()[3]
        acts, cs, tc, hc, zt = self._acts, self._cs, self._tc, self._hc, self._zt
        gx = self._project_inputs(bottom)
        cont = bottom[1].data
        hout = top[0].data
        np.multiply(init[0], cont[0][:, None], out=hc[0])
        cs[0] = init[1]
        fast = cpu_kernels.usable(np, zt, gx, cont, cs, hout)
        step = self._cell_step
        for t in range(t_):
            blas.matmul(w_hc, hc[t].T, out=zt)
            nxt = t + 1 < t_
            step(zt, gx[t], acts[t], cs[t], cs[t + 1], tc[t], cont, t, nxt,
                 hc[t + 1 if nxt else t], hout[t], fast)
        return [hout[t_ - 1], cs[t_]]

    def _forward_cpu_only(self, bottom, top, init):
        """Forward for a layer no backward pass reaches: the same arithmetic as
        :meth:`_forward_cpu`, with one step's gates and states reused for every
        step instead of T of each (nothing is kept for backward)."""
        t_, n, h = self.T, self.N, self.H
        w_hc = self._weights()[3]
        gx, zt = self._gx, self._zt
        step_bufs = getattr(self, "_step_bufs", None)
        if step_bufs is None or step_bufs[0].shape != (n, 4 * h) or \
                step_bufs[0].dtype != gx.dtype:
            step_bufs = (np.empty((n, 4 * h), gx.dtype), np.empty((2, n, h), gx.dtype),
                         np.empty((n, h), gx.dtype), np.empty((n, h), gx.dtype))
            self._step_bufs = step_bufs
        at, cs, tc, hc = step_bufs
        gx = self._project_inputs(bottom)
        cont = bottom[1].data
        hout = top[0].data
        # Kept for a backward that nobody planned (it recomputes from these).
        self._init_h, self._init_c = init[0].copy(), init[1].copy()
        np.multiply(init[0], cont[0][:, None], out=hc)
        cs[0] = init[1]
        fast = cpu_kernels.usable(np, zt, gx, cont, cs, hout)
        step = self._cell_step
        for t in range(t_):
            blas.matmul(w_hc, hc.T, out=zt)
            step(zt, gx[t], at, cs[t % 2], cs[(t + 1) % 2], tc, cont, t, t + 1 < t_,
                 hc, hout[t], fast)
        return [hout[t_ - 1], cs[t_ % 2]]

    def _backward_cpu(self, top, propagate_down, bottom):
        t_, h = self.T, self.H
        w_xc, _b_c, w_s, w_hc = self._weights()
        ppd = dict(zip((name for name, _, _ in self.param_specs()),
                       zip(self.blobs, self.param_propagate_down, strict=True),
                       strict=True))
        acts, cs, tc = self._acts, self._cs, self._tc
        dg = self._gx  # reused: holds dL/d(gate inputs)
        dh, dc = self._dh, self._dc
        dc[...] = 0
        dtop = top[0].diff
        cont = bottom[1].data
        fast = cpu_kernels.usable(np, acts, dtop, dh, cont)
        for t in range(t_ - 1, -1, -1):
            at, dgt = acts[t], dg[t]
            nxt = t + 1 < t_
            if fast:
                cpu_kernels.lstm_backward_step(at, cs[t], tc[t], dtop[t], dh,
                                               cont[t + 1 if nxt else t], nxt, dgt, dc)
            else:
                i, f, o, g = (at[:, :h], at[:, h: 2 * h], at[:, 2 * h: 3 * h],
                              at[:, 3 * h:])
                tct = tc[t]
                d_h = dtop[t] + dh * cont[t + 1][:, None] if nxt else dtop[t]
                dcv = dc + d_h * o * (1.0 - tct * tct)
                np.multiply(dcv * g, i * (1.0 - i), out=dgt[:, :h])
                np.multiply(dcv * cs[t], f * (1.0 - f), out=dgt[:, h: 2 * h])
                np.multiply(d_h * tct, o * (1.0 - o), out=dgt[:, 2 * h: 3 * h])
                np.multiply(dcv * i, 1.0 - g * g, out=dgt[:, 3 * h:])
                np.multiply(dcv, f, out=dc)
            if t > 0:
                blas.matmul(dgt, w_hc, out=dh)
        self._param_grads(dg, propagate_down, bottom, ppd, w_xc, w_s)

    def _param_grads(self, dg, propagate_down, bottom, ppd, w_xc, w_s):
        t_, n, h = self.T, self.N, self.H
        hc = self._hc
        dg2 = dg.reshape(t_ * n, 4 * h)
        blob, on = ppd["W_hc"]
        if on:
            blas.matmul_acc(dg2.T, hc.reshape(t_ * n, h), blob.diff)
        x2 = bottom[0].data.reshape(t_ * n, self.Dx)
        blob, on = ppd["W_xc"]
        if on:
            blas.matmul_acc(dg2.T, x2, blob.diff)
        blob, on = ppd["b_c"]
        if on:
            blob.diff += dg2.sum(axis=0)
        if propagate_down[0]:
            blas.matmul(dg2, w_xc, out=bottom[0].diff.reshape(t_ * n, self.Dx))
        if self.static_input:
            ds = dg.sum(axis=0)
            blob, on = ppd["W_xc_static"]
            if on:
                blas.matmul_acc(ds.T, bottom[2].data.reshape(n, self.Ds), blob.diff)
            if propagate_down[2]:
                blas.matmul(ds, w_s, out=bottom[2].diff.reshape(n, self.Ds))

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
        ppd = dict(zip((name for name, _, _ in self.param_specs()),
                       zip(self.blobs, self.param_propagate_down, strict=True),
                       strict=True))
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
        self._param_grads(dg, propagate_down, bottom, ppd, w_xc, w_s)
