"""DummyData: tops filled by fillers (for tests and benchmarks).

Math: ``top[i] = filler_i(shape_i)``. Constant fillers fill once at setup; any
other filler refills its tops at every forward (Caffe's refill rule). No filler
means constant 0; one filler serves all tops; otherwise one per top.

Bottoms: none.
Tops: one or more blobs, shapes from ``shape`` (one for all tops or one per top)
or from the legacy ``num``/``channels``/``height``/``width`` fields (each given
once for all tops or once per top).
Learnable params: none.
Proto fields: dummy_data_param { data_filler shape num channels height width }.
Gradients: none (no bottoms).
"""

from __future__ import annotations

from recaffe import backend
from recaffe.filler import FILLER_TYPES, fill_array
from recaffe.layer import Layer, register_layer
from recaffe.proto import caffe_pb2


@register_layer
class DummyDataLayer(Layer):
    type = "DummyData"
    exact_num_bottom = 0
    min_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.dummy_data_param
        num_top = len(top)
        nf = len(p.data_filler)
        if nf not in (0, 1, num_top):
            raise self.error(
                f"number of data_filler must be 0, 1 or the number of tops "
                f"({num_top}), got {nf}"
            )
        legacy = any(len(f) for f in (p.num, p.channels, p.height, p.width))
        shapes = []
        if legacy:
            if len(p.shape):
                raise self.error("both 'shape' and the legacy num/channels/height/"
                                 "width fields were given; use only one")
            for name in ("num", "channels", "height", "width"):
                k = len(getattr(p, name))
                if k not in (1, num_top):
                    raise self.error(
                        f"legacy field '{name}' must be given once or once per top "
                        f"({num_top}), got {k}"
                    )
            for i in range(num_top):
                shapes.append(tuple(
                    int(getattr(p, name)[0 if len(getattr(p, name)) == 1 else i])
                    for name in ("num", "channels", "height", "width")))
        else:
            ns = len(p.shape)
            if ns not in (1, num_top):
                raise self.error(
                    f"'shape' must be given once or once per top ({num_top}), "
                    f"got {ns}"
                )
            for i in range(num_top):
                shapes.append(tuple(int(d) for d in p.shape[0 if ns == 1 else i].dim))
        for i, s in enumerate(shapes):
            if any(d < 0 for d in s):
                raise self.error(f"shape {s} for top[{i}] has a negative dim")
        if nf == 0:
            self.fillers = [caffe_pb2.FillerParameter(type="constant", value=0.0)]
        else:
            self.fillers = list(p.data_filler)
        for f in self.fillers:
            if f.type not in FILLER_TYPES:
                raise self.error(f"unknown data_filler type '{f.type}' (known: "
                                 f"{', '.join(FILLER_TYPES)})")
        self.refill = [f.type != "constant" for f in self.fillers]
        for i, t in enumerate(top):
            t.reshape(shapes[i])
            f = self._filler_index(i)
            if not self.refill[f]:
                self._fill(t, f)

    def _filler_index(self, i: int) -> int:
        return i if len(self.fillers) > 1 else 0

    def _fill(self, t, f: int) -> None:
        a = fill_array(self.fillers[f], t.shape, t.dtype)
        t.data[...] = backend.to_device(a, self.xp)

    def reshape(self, bottom, top):
        # Shapes are fixed at setup.
        pass

    def forward(self, bottom, top):
        for i, t in enumerate(top):
            f = self._filler_index(i)
            if self.refill[f]:
                self._fill(t, f)
