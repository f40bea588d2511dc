"""LSTMUnit: one time step of an LSTM cell (the helper the LSTM layer unrolls).

Math (per stream n, with X = [i', f', o', g'] split into four chunks of H):

    i = sigmoid(i'),  f = cont * sigmoid(f') (exactly 0 where cont == 0),
    o = sigmoid(o'),  g = tanh(g')
    c = f * c_prev + i * g
    h = o * tanh(c)

Backward, with dC, dH the top diffs (``f`` includes the cont factor, as Caffe):

    dc      = dC + dH * o * (1 - tanh(c)^2)
    dc_prev = dc * f
    di'     = dc * g * i (1 - i)
    df'     = dc * c_prev * f (1 - f)
    do'     = dH * tanh(c) * o (1 - o)
    dg'     = dc * i (1 - g^2)

Bottoms: ``c_prev`` (1, N, H), ``X`` (1, N, 4H), ``cont`` (1, N).
Tops: ``c`` (1, N, H), ``h`` (1, N, H).
Learnable params: none.
Proto fields: none.
Gradients: to ``c_prev`` and ``X``; never to ``cont`` (sequence indicators are
constants; force_backward leaves it alone).

On the CPU with numba (:mod:`recaffe.backend.cpu_kernels`) forward is one
scaling pass, two ``np.tanh`` passes and two fused passes into buffers kept
per shape; like Caffe's layer it keeps the activations [i, f, o, g] and
tanh(c) for backward, which is then one fused pass. Results equal the numpy
path's.
"""

from __future__ import annotations

import threading

from recaffe.backend import cpu_kernels, cuda_kernels
from recaffe.errors import ShapeError
from recaffe.layer import Layer, register_layer


def sigmoid_into(x, out, xp) -> None:
    """out = 1 / (1 + exp(-x)), computed as 0.5 tanh(x / 2) + 0.5 (no overflow)."""
    if cuda_kernels.enabled(xp):
        cuda_kernels.sigmoid(x, out)
        return
    xp.multiply(x, 0.5, out=out)
    xp.tanh(out, out=out)
    out *= 0.5
    out += 0.5


@register_layer
class LSTMUnitLayer(Layer):
    type = "LSTMUnit"
    exact_num_bottom = 3
    exact_num_top = 2

    def allow_force_backward(self, bottom_index: int) -> bool:
        # Sequence continuation indicators get no gradient.
        return bottom_index != 2

    def reshape(self, bottom, top):
        c_prev, x, cont = bottom
        names = ("c_prev", "X", "cont")
        for i, b in enumerate(bottom):
            want = 2 if i == 2 else 3
            layout = "(1 x N)" if i == 2 else "(1 x N x ...)"
            if b.num_axes != want:
                raise self.error(
                    f"bottom[{i}] '{names[i]}' must have {want} axes {layout}, got "
                    f"shape {b.shape}", ShapeError)
            if b.shape[0] != 1:
                raise self.error(
                    f"bottom[{i}] '{names[i]}' must have a first axis of 1 (one time "
                    f"step), got shape {b.shape}", ShapeError)
        n = c_prev.shape[1]
        hidden = c_prev.shape[2]
        if x.shape[1] != n or cont.shape[1] != n:
            raise self.error(
                f"bottoms must agree on the number of streams N (axis 1): c_prev "
                f"{c_prev.shape}, X {x.shape}, cont {cont.shape}", ShapeError)
        if x.shape[2] != 4 * hidden:
            raise self.error(
                f"bottom[1] 'X' must have shape (1, {n}, {4 * hidden}) (4 x the "
                f"hidden size {hidden} of c_prev), got {x.shape}", ShapeError)
        self.H = hidden
        self._saved = None
        top[0].reshape(c_prev.shape)
        top[1].reshape(c_prev.shape)

    def _gates(self, x, cont):
        """Activations [i, f, o, g] as an (N, 4H) array; f includes cont."""
        xp = self.xp
        h = self.H
        acts = xp.empty_like(x)
        # sigmoid on the first 3H columns, tanh on the last H.
        sigmoid_into(x[:, : 3 * h], acts[:, : 3 * h], xp)
        xp.tanh(x[:, 3 * h:], out=acts[:, 3 * h:])
        acts[:, h: 2 * h] *= cont[:, None]
        return acts

    #: Scratch of forward-only units, shared by all of them (per shape, dtype)
    #: within a thread: nothing is kept for backward, so every step of an
    #: unrolled net reuses it; nets running in other threads get their own.
    _shared_scratch = threading.local()

    def _cpu_buffers(self, x, c_prev):
        """(acts (N, 4H), tanh(c) (N, H)) buffers for x's shape and dtype."""
        key = (x.shape, x.dtype)
        buf = getattr(self, "_cpu_buf", None)
        if buf is None or buf[0] != key:
            buf = (key, self.xp.empty_like(x), self.xp.empty_like(c_prev))
            self._cpu_buf = buf
        return buf[1], buf[2]

    def _scratch(self, x, c_prev):
        key = (x.shape, x.dtype)
        bufs = self._shared_scratch.__dict__.setdefault("bufs", {})
        buf = bufs.get(key)
        if buf is None:
            xp = self.xp
            buf = bufs[key] = (xp.empty_like(x), xp.empty_like(c_prev))
        return buf

    def _cpu_backward(self, top, propagate_down, bottom):
        c_prev = bottom[0].data[0]
        x, cont = bottom[1].data[0], bottom[2].data[0]
        acts, tc = self._cpu_buffers(x, c_prev)
        if self._saved != (x.shape, x.dtype):
            # no forward to reuse: recompute the activations and tanh(c)
            c_s, h_s = self.xp.empty_like(c_prev), self.xp.empty_like(c_prev)
            cpu_kernels.lstm_unit_forward(x, c_prev, cont, acts, c_s, tc, h_s)
            self._saved = (x.shape, x.dtype)
        dc_prev = bottom[0].diff[0] if propagate_down[0] else tc
        dx = bottom[1].diff[0] if propagate_down[1] else acts
        cpu_kernels.lstm_unit_backward(acts, c_prev, tc, top[0].diff[0], top[1].diff[0],
                                       dc_prev, dx, bool(propagate_down[0]),
                                       bool(propagate_down[1]))

    def forward(self, bottom, top):
        xp = self.xp
        h = self.H
        c_prev = bottom[0].data[0]
        x, cont = bottom[1].data[0], bottom[2].data[0]
        if cuda_kernels.usable(xp, x, c_prev, cont, top[0].data, top[1].data):
            # one CUDA kernel for the cell
            cuda_kernels.lstm_forward_step(x, c_prev, cont, xp.empty_like(x),
                                           top[0].data[0], xp.empty_like(c_prev),
                                           top[1].data[0])
            return
        self._saved = None
        if cpu_kernels.usable(xp, x, c_prev, cont, top[0].data, top[1].data):
            if getattr(self, "forward_only", False):
                # backward (if any) recomputes the activations
                if cpu_kernels.lstm_unit_infer(x, c_prev, cont, top[0].data[0],
                                               top[1].data[0]):
                    return
                acts, tc = self._scratch(x, c_prev)
                cpu_kernels.lstm_unit_forward(x, c_prev, cont, acts, top[0].data[0],
                                              tc, top[1].data[0])
                return
            acts, tc = self._cpu_buffers(x, c_prev)
            cpu_kernels.lstm_unit_forward(x, c_prev, cont, acts, top[0].data[0], tc,
                                          top[1].data[0])
            self._saved = (x.shape, x.dtype)
            return
        acts = self._gates(bottom[1].data[0], bottom[2].data[0])
        i, f, o, g = (acts[:, k * h:(k + 1) * h] for k in range(4))
        c = top[0].data[0]
        xp.multiply(f, c_prev, out=c)
        c += i * g
        xp.multiply(o, xp.tanh(c), out=top[1].data[0])

    def backward(self, top, propagate_down, bottom):
        if propagate_down[2]:
            bottom[2].diff[...] = 0
        if not (propagate_down[0] or propagate_down[1]):
            return
        xp = self.xp
        h = self.H
        c_prev = bottom[0].data[0]
        x, cont = bottom[1].data[0], bottom[2].data[0]
        if cuda_kernels.enabled(xp):
            dc_prev = bottom[0].diff[0] if propagate_down[0] else xp.empty_like(c_prev)
            dx = bottom[1].diff[0] if propagate_down[1] else xp.empty_like(x)
        if cuda_kernels.enabled(xp) and cuda_kernels.usable(
                xp, x, c_prev, cont, top[0].data, top[0].diff, top[1].diff, dc_prev,
                dx):
            # one CUDA kernel for the gradients
            cuda_kernels.lstm_unit_backward(
                x, c_prev, cont, top[0].data[0], top[0].diff[0], top[1].diff[0],
                dc_prev, dx, bool(propagate_down[0]), bool(propagate_down[1]))
            return
        wanted = [bottom[k].diff for k in (0, 1) if propagate_down[k]]
        if cpu_kernels.usable(xp, x, c_prev, cont, top[0].diff, top[1].diff, *wanted):
            self._cpu_backward(top, propagate_down, bottom)
            return
        acts = self._gates(x, cont)
        i, f, o, g = (acts[:, k * h:(k + 1) * h] for k in range(4))
        tanh_c = xp.tanh(top[0].data[0])
        d_h = top[1].diff[0]
        dc = top[0].diff[0] + d_h * o * (1.0 - tanh_c * tanh_c)
        if propagate_down[0]:
            xp.multiply(dc, f, out=bottom[0].diff[0])
        if propagate_down[1]:
            dx = bottom[1].diff[0]
            dx[:, :h] = dc * g * i * (1.0 - i)
            dx[:, h: 2 * h] = dc * c_prev * f * (1.0 - f)
            dx[:, 2 * h: 3 * h] = d_h * tanh_c * o * (1.0 - o)
            dx[:, 3 * h:] = dc * i * (1.0 - g * g)
