"""RNN: Caffe's simple (Elman) recurrent layer, unrolled over T time steps.

Math (per stream, t = 1..T; ``cont`` resets the state where it is 0):

    h~_{t-1} = cont_t * h_{t-1}
    h_t      = tanh(W_hh h~_{t-1} + W_xh x_t + b_h [+ W_xh_static x_static])
    o_t      = tanh(W_ho h_t + b_o)

Bottoms: ``x`` (T, N, ...), ``cont`` (T, N), optional ``x_static`` (N, ...),
with ``expose_hidden`` ``h_0`` (1, N, H).
Tops: ``o`` (T, N, H) (the output is o, not h); with ``expose_hidden`` ``h_T``
(1, N, H).
Learnable params (blob order): ``W_xh`` (H, D_x), ``b_h`` (H,), [``W_xh_static``
(H, D_s)], ``W_hh`` (H, H), ``W_ho`` (H, H), ``b_o`` (H,). Weights use
recurrent_param.weight_filler, biases bias_filler (absent: constant 0).
Proto fields: recurrent_param { num_output weight_filler bias_filler debug_info
expose_hidden }.
Gradients: to ``x``, ``x_static`` and every param; none to ``cont`` or through
the exposed state. State carrying, T/N rules and the two implementations
(internal net / fused) are described in :mod:`recaffe.layers.recurrent`.
"""

from __future__ import annotations

from recaffe.backend import blas, cpu_kernels, cuda_kernels
from recaffe.layer import register_layer
from recaffe.layers.recurrent import RecurrentLayer
from recaffe.proto import caffe_pb2


@register_layer
class RNNLayer(RecurrentLayer):
    type = "RNN"
    state_names = ("h",)

    def recurrent_input_names(self):
        return ["h_0"]

    def recurrent_output_names(self):
        return [f"h_{self.T}"]

    def output_names(self):
        return ["o"]

    def param_specs(self):
        h = self.H
        specs = [("W_xh", (h, self.Dx), False), ("b_h", (h,), True)]
        if self.static_input:
            specs.append(("W_xh_static", (h, self.Ds), False))
        specs += [("W_hh", (h, h), False), ("W_ho", (h, h), False), ("b_o", (h,), True)]
        return specs

    # -- Caffe's unrolled net ------------------------------------------------------
    def fill_unrolled_net(self, net_param):
        h = self.H
        add = self.add_layer
        hidden = self.hidden_param(h, bias=False)
        biased = self.hidden_param(h, bias=True)
        inp = add(net_param, type="Input", top=["h_0"])
        inp.input_param.shape.add(dim=[1, self.N, h])
        cont_slice = add(net_param, name="cont_slice", type="Slice", bottom=["cont"])
        cont_slice.slice_param.axis = 0
        add(net_param, biased, name="x_transform", params=["W_xh", "b_h"],
            bottom=["x"], top=["W_xh_x"], propagate_down=True)
        if self.static_input:
            lp = add(net_param, hidden, name="W_xh_x_static", params=["W_xh_static"],
                     bottom=["x_static"], top=["W_xh_x_static_preshape"],
                     propagate_down=True)
            lp.inner_product_param.axis = 1
            rs = add(net_param, name="W_xh_x_static_reshape", type="Reshape",
                     bottom=["W_xh_x_static_preshape"], top=["W_xh_x_static"])
            rs.reshape_param.shape.dim.extend([1, -1, h])
        x_slice = add(net_param, name="W_xh_x_slice", type="Slice", bottom=["W_xh_x"])
        x_slice.slice_param.axis = 0
        concat = caffe_pb2.LayerParameter(name="o_concat", type="Concat", top=["o"])
        concat.concat_param.axis = 0
        for t in range(1, self.T + 1):
            tm1, ts = str(t - 1), str(t)
            cont_slice.top.append(f"cont_{ts}")
            x_slice.top.append(f"W_xh_x_{ts}")
            sc = add(net_param, name=f"h_conted_{tm1}", type="Scale",
                     bottom=[f"h_{tm1}", f"cont_{ts}"], top=[f"h_conted_{tm1}"])
            sc.scale_param.axis = 0
            add(net_param, hidden, name=f"W_hh_h_{tm1}", params=["W_hh"],
                bottom=[f"h_conted_{tm1}"], top=[f"W_hh_h_{tm1}"])
            bottoms = [f"W_hh_h_{tm1}", f"W_xh_x_{ts}"]
            if self.static_input:
                bottoms.append("W_xh_x_static")
            s = add(net_param, name=f"h_input_sum_{ts}", type="Eltwise", bottom=bottoms,
                    top=[f"h_neuron_input_{ts}"])
            s.eltwise_param.operation = caffe_pb2.EltwiseParameter.SUM
            add(net_param, name=f"h_neuron_{ts}", type="TanH",
                bottom=[f"h_neuron_input_{ts}"], top=[f"h_{ts}"])
            add(net_param, biased, name=f"W_ho_h_{ts}", params=["W_ho", "b_o"],
                bottom=[f"h_{ts}"], top=[f"W_ho_h_{ts}"])
            add(net_param, name=f"o_neuron_{ts}", type="TanH", bottom=[f"W_ho_h_{ts}"],
                top=[f"o_{ts}"])
            concat.bottom.append(f"o_{ts}")
        net_param.layer.add().CopyFrom(concat)

    # -- fused implementation ------------------------------------------------------
    def fused_reshape(self, dtype):
        xp = self.xp
        shape = (self.T, self.N, self.H)
        if self.buffer_fits(getattr(self, "_a", None), shape, dtype):
            return
        t, n, h = shape
        self._a = xp.zeros(shape, dtype=dtype)        # input projections, then dA
        self._hs = xp.zeros((t + 1, n, h), dtype=dtype)  # h_0 .. h_T
        self._hc = xp.zeros(shape, dtype=dtype)       # cont_t * h_{t-1}
        self._o = xp.zeros(shape, dtype=dtype)        # o_1 .. o_T
        self._z = xp.zeros((n, h), dtype=dtype)

    def _weights(self):
        b = [blob.data for blob in self.blobs]
        if self.static_input:
            return b
        return b[:2] + [None] + b[2:]

    def fused_forward(self, bottom, top, init):
        xp = self.xp
        t_, n, h = self.T, self.N, self.H
        w_xh, b_h, w_s, w_hh, w_ho, b_o = self._weights()
        a, hs, hc, z = self._a, self._hs, self._hc, self._z
        a2 = a.reshape(t_ * n, h)
        blas.matmul(bottom[0].data.reshape(t_ * n, self.Dx), w_xh.T, out=a2)
        a2 += b_h
        s = None
        if self.static_input:
            s = blas.matmul(bottom[2].data.reshape(n, self.Ds), w_s.T)
        cont = bottom[1].data
        hs[0] = init[0]
        for t in range(t_):
            xp.multiply(hs[t], cont[t][:, None], out=hc[t])
            blas.matmul(hc[t], w_hh.T, out=z)
            z += a[t]
            if s is not None:
                z += s
            xp.tanh(z, out=hs[t + 1])
        o2 = self._o.reshape(t_ * n, h)
        blas.matmul(hs[1:].reshape(t_ * n, h), w_ho.T, out=o2)
        o2 += b_o
        xp.tanh(o2, out=o2)
        top[0].data[...] = self._o
        return [hs[t_]]

    def fused_backward(self, top, propagate_down, bottom):
        xp = self.xp
        t_, n, h = self.T, self.N, self.H
        w_xh, _b_h, w_s, w_hh, w_ho, _b_o = self._weights()
        ppd = dict(zip((name for name, _, _ in self.param_specs()),
                       zip(self.blobs, self.param_propagate_down, strict=True),
                       strict=True))
        hs, hc = self._hs, self._hc
        o2 = self._o.reshape(t_ * n, h)
        dy2 = top[0].diff.reshape(t_ * n, h)
        fused = cuda_kernels.usable(xp, dy2, o2, self._a, hs)
        if fused:
            dz = xp.empty_like(o2)
            cuda_kernels.tanh_backward(dy2, o2, dz)
        else:
            dz = dy2 * (1.0 - o2 * o2)
        blob, on = ppd["W_ho"]
        if on:
            blas.matmul_acc(dz.T, hs[1:].reshape(t_ * n, h), blob.diff)
        blob, on = ppd["b_o"]
        if on:
            blob.diff += dz.sum(axis=0)
        da = self._a  # reused: holds dL/d(pre-activation of h_t)
        da2 = da.reshape(t_ * n, h)
        blas.matmul(dz, w_ho, out=da2)
        cont = bottom[1].data
        if cpu_kernels.usable(xp, da, self._z, cont, hs):
            self._backward_steps_cpu(da, cont, hs, w_hh)
        else:
            self._backward_steps(da, cont, hs, w_hh, fused)
        blob, on = ppd["W_hh"]
        if on:
            blas.matmul_acc(da2.T, hc.reshape(t_ * n, h), blob.diff)
        x2 = bottom[0].data.reshape(t_ * n, self.Dx)
        blob, on = ppd["W_xh"]
        if on:
            blas.matmul_acc(da2.T, x2, blob.diff)
        blob, on = ppd["b_h"]
        if on:
            blob.diff += da2.sum(axis=0)
        if propagate_down[0]:
            blas.matmul(da2, w_xh, out=bottom[0].diff.reshape(t_ * n, self.Dx))
        if self.static_input:
            ds = da.sum(axis=0)
            blob, on = ppd["W_xh_static"]
            if on:
                blas.matmul_acc(ds.T, bottom[2].data.reshape(n, self.Ds), blob.diff)
            if propagate_down[2]:
                blas.matmul(ds, w_s, out=bottom[2].diff.reshape(n, self.Ds))

    def _backward_steps_cpu(self, da, cont, hs, w_hh):
        """The recurrence with one numba pass per step: (da + cont * dz) (1 - h^2)."""
        t_ = self.T
        z = self._z
        for t in range(t_ - 1, -1, -1):
            nxt = t < t_ - 1
            cpu_kernels.rnn_backward_step(da[t], z, cont[t + 1 if nxt else t],
                                          hs[t + 1], nxt)
            if t > 0:
                blas.matmul(da[t], w_hh, out=z)

    def _backward_steps(self, da, cont, hs, w_hh, fused):
        for t in range(self.T - 1, -1, -1):
            if fused:  # one CUDA kernel: (da + carried) * (1 - h^2)
                if t < self.T - 1:
                    cuda_kernels.tanh_backward_acc(da[t], self._z, hs[t + 1])
                else:
                    cuda_kernels.tanh_backward(da[t], hs[t + 1], da[t])
            else:
                if t < self.T - 1:
                    da[t] += self._z
                da[t] *= 1.0 - hs[t + 1] * hs[t + 1]
            if t > 0:
                blas.matmul(da[t], w_hh, out=self._z)
                self._z *= cont[t][:, None]
