"""NeuronLayer: the common base of element-wise layers (not a layer type itself).

Math: ``top = f(bottom)`` element by element.

Bottoms: one blob of any shape. Tops: one blob of the same shape; the top may be
the bottom itself (in-place computation, as Caffe nets usually write ReLU).
Proto fields: none here; each subclass reads its own ``<type>_param``.
Gradients: to the bottom, for the subclasses that have one.

In place, ``bottom[0].data`` holds the *output* after forward. A subclass whose
backward can be written in terms of the top data (Sigmoid, TanH, Exp, ...) needs
nothing more; one that needs the input itself sets ``saves_input`` and reads it
through :meth:`NeuronLayer.input_data`, which returns a copy taken before the
in-place forward overwrote it.
"""

from __future__ import annotations

from recaffe.layer import Layer


class NeuronLayer(Layer):
    """Base of one-bottom, one-top element-wise layers."""

    exact_num_bottom = 1
    exact_num_top = 1
    #: Backward needs the bottom values (not derivable from the top).
    saves_input = False

    _saved = None

    def reshape(self, bottom, top):
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def save_input(self, bottom, top) -> None:
        """Keep a copy of the bottom values when computing in place."""
        if not self.saves_input or top[0] is not bottom[0]:
            return
        x = bottom[0].data
        buf = self._saved
        if buf is None or buf.shape != x.shape or buf.dtype != x.dtype:
            buf = self._saved = self.xp.empty_like(x)
        buf[...] = x

    def input_data(self, bottom, top):
        """The bottom values the last forward saw."""
        if top[0] is bottom[0] and self.saves_input:
            return self._saved
        return bottom[0].data
