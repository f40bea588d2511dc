"""MemoryData: serves batches of arrays handed over by the program.

Math: after ``reset(data, labels)`` (pycaffe's ``Net.set_input_arrays``) each
forward copies the next ``batch_size`` items: ``top[0] = data[pos:pos+B]``,
``top[1] = labels[pos:pos+B]``, then ``pos = (pos + B) mod N``. As in Caffe,
arrays given to ``reset`` are served as they are; ``add_datum_vector`` and
``add_array_vector`` (Caffe's AddDatumVector/AddMatVector) apply
``transform_param`` (scale, mean, crop, mirror) to their items first.

With N data-parallel ranks (:mod:`recaffe.parallel`), a TRAIN net's layer
keeps rows ``rank, rank + N, ...`` of the arrays given to ``reset`` (row k to
rank ``k mod N``), so the number of rows must be a multiple of N·batch_size.

Bottoms: none.
Tops: ``data`` (B, C, H, W) and ``label`` (B,), from memory_data_param.
Learnable params: none.
Proto fields: memory_data_param { batch_size channels height width },
transform_param (add_* methods only).
Gradients: none (no bottoms).
"""

from __future__ import annotations

import numpy as np

from recaffe import backend
from recaffe.data_transformer import DataTransformer
from recaffe.errors import DataError
from recaffe.layer import Layer, register_layer
from recaffe.parallel.shard import train_shard


@register_layer
class MemoryDataLayer(Layer):
    type = "MemoryData"
    exact_num_bottom = 0
    exact_num_top = 2

    def setup(self, bottom, top):
        p = self.layer_param.memory_data_param
        self.batch_size = int(p.batch_size)
        self.channels = int(p.channels)
        self.height = int(p.height)
        self.width = int(p.width)
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            raise self.error(
                "batch_size, channels, height and width must be given and positive "
                f"in memory_data_param, got {self.batch_size}, {self.channels}, "
                f"{self.height}, {self.width}"
            )
        self._data = None
        self._labels = None
        self.pos = 0
        self.transformer = None

    def _where(self) -> str:
        return f"{self.type} layer '{self.name or '(unnamed)'}'"

    @property
    def item_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def set_batch_size(self, new_size: int) -> None:
        """Change the batch size (the arrays given must still divide evenly)."""
        new_size = int(new_size)
        if new_size <= 0:
            raise self.error(f"batch size must be > 0, got {new_size}")
        if self._data is not None and self._data.shape[0] % new_size:
            raise self.error(
                f"batch size {new_size} does not divide the {self._data.shape[0]} "
                "items given to reset()", DataError)
        self.batch_size = new_size
        self.pos = 0

    def reset(self, data, labels) -> None:
        """Serve ``data`` (N, C, H, W) float32 and ``labels`` (N,) or (N, 1, 1, 1).

        ``data`` must be a C-contiguous float32 array whose item shape is the
        layer's (channels, height, width), and N a multiple of batch_size.
        """
        if not isinstance(data, np.ndarray):
            raise self.error(f"data must be a numpy array, got {type(data).__name__}",
                             DataError)
        if data.dtype != np.float32:
            raise self.error(f"data array must be float32, got {data.dtype}",
                             DataError)
        if not data.flags["C_CONTIGUOUS"]:
            raise self.error("data array must be C-contiguous "
                             "(use np.ascontiguousarray)", DataError)
        if data.ndim != 4:
            raise self.error(f"data array must have 4 axes (N, C, H, W), got shape "
                             f"{data.shape}", DataError)
        if data.shape[1:] != self.item_shape:
            raise self.error(
                f"data array items must have shape (channels, height, width) = "
                f"{self.item_shape}, got {data.shape[1:]}", DataError)
        labels = np.asarray(labels)
        if labels.ndim == 4 and labels.shape[1:] == (1, 1, 1):
            labels = labels.reshape(labels.shape[0])
        if labels.ndim != 1:
            raise self.error(
                f"labels must have shape (N,) or (N, 1, 1, 1), got {labels.shape}",
                DataError)
        if labels.dtype.kind not in "biuf":
            raise self.error(f"labels must be numeric, got {labels.dtype}", DataError)
        n = data.shape[0]
        if labels.shape[0] != n:
            raise self.error(
                f"data and labels must have the same first dimension, got {n} and "
                f"{labels.shape[0]}", DataError)
        rank, size = train_shard(self.phase)
        if size > 1:
            if n == 0 or n % (self.batch_size * size):
                raise self.error(
                    f"with {size} data-parallel ranks the number of items ({n}) "
                    f"must be a positive multiple of ranks x batch_size "
                    f"({size} x {self.batch_size})", DataError)
            data = np.ascontiguousarray(data[rank::size])
            labels = labels[rank::size]
            n = data.shape[0]
        if n == 0 or n % self.batch_size:
            raise self.error(
                f"the number of items ({n}) must be a positive multiple of batch_size "
                f"({self.batch_size})", DataError)
        self._data = data
        self._labels = labels.astype(np.float32, copy=False)
        self.pos = 0

    def _transformer(self) -> DataTransformer:
        if self.transformer is None:
            self.transformer = DataTransformer(
                self.layer_param.transform_param, self.phase, self._where())
        return self.transformer

    def add_array_vector(self, images, labels) -> None:
        """Transform each (C, H', W') image by transform_param, then ``reset``.

        The transformed items must have the layer's (channels, height, width).
        """
        t = self._transformer()
        labels = np.asarray(labels).reshape(-1)
        if len(images) != labels.shape[0]:
            raise self.error(f"got {len(images)} images and {labels.shape[0]} "
                             "labels", DataError)
        out = np.empty((len(images),) + self.item_shape, dtype=np.float32)
        for i, img in enumerate(images):
            t.transform(np.asarray(img), out[i])
        self.reset(out, labels.astype(np.float32))

    def add_datum_vector(self, datums) -> None:
        """Transform each ``Datum`` by transform_param, then ``reset``."""
        t = self._transformer()
        out = np.empty((len(datums),) + self.item_shape, dtype=np.float32)
        for i, d in enumerate(datums):
            t.transform_datum(d, out[i])
        labels = np.array([d.label for d in datums], dtype=np.float32)
        self.reset(out, labels)

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size,) + self.item_shape)
        top[1].reshape((self.batch_size,))

    def forward(self, bottom, top):
        if self._data is None:
            raise self.error("no data: call reset() (Net.set_input_arrays) before "
                             "forward", DataError)
        b = self.batch_size
        xp = self.xp
        top[0].data[...] = backend.to_device(self._data[self.pos:self.pos + b], xp)
        top[1].data[...] = backend.to_device(self._labels[self.pos:self.pos + b], xp)
        self.pos = (self.pos + b) % self._data.shape[0]
