"""Data: reads ``Datum`` records from an LMDB (or LevelDB) in key order.

Math: item i of a batch is ``transform(datum_k)`` for consecutive records k
(cursor order, wrapping around to the first record at the end), with Caffe's
transformation ``(x - mean) * scale`` then crop and mirror (see
:mod:`recaffe.data_transformer`); ``label[i] = datum_k.label``. ``rand_skip``
skips a random number of records in [0, rand_skip) once at setup.

With N data-parallel ranks (:mod:`recaffe.parallel`), a TRAIN net's layer
keeps record k of the cursor order only on rank ``k mod N`` (Caffe's
multi-GPU rule); a database with fewer records than ranks is an error.

Datums hold raw uint8 ``data`` bytes (C x H x W), ``float_data``, or an
``encoded`` image (decoded with Pillow, channels in BGR order as Caffe/OpenCV).
The top shape is taken from the first record of each batch; every record of a
batch must have the same shape.

Bottoms: none.
Tops: ``data`` (B, C, H', W') and, if given, ``label`` (B,).
Learnable params: none.
Proto fields: data_param { source batch_size backend rand_skip
force_encoded_color } and transform_param { scale mean_file mean_value crop_size
mirror force_color force_gray } (deprecated data_param scale/mean_file/crop_size/
mirror are used when there is no transform_param).
Gradients: none (no bottoms).
"""

from __future__ import annotations

import numpy as np
from google.protobuf.message import DecodeError

from recaffe import backend
from recaffe.data_transformer import DataTransformer, transform_param_of
from recaffe.errors import DataError
from recaffe.io.db import open_db
from recaffe.layer import Layer, register_layer
from recaffe.parallel.shard import ItemFilter, train_shard
from recaffe.proto import caffe_pb2


@register_layer
class DataLayer(Layer):
    type = "Data"
    exact_num_bottom = 0
    min_top = 1
    max_top = 2

    def setup(self, bottom, top):
        p = self.layer_param.data_param
        self.where = f"{self.type} layer '{self.name or '(unnamed)'}'"
        if not p.source:
            raise self.error("data_param.source is required")
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error(f"data_param.batch_size must be > 0, got {p.batch_size}")
        self.output_labels = len(top) > 1
        self.transformer = DataTransformer(
            transform_param_of(self.layer_param, p), self.phase, self.where)
        color = self.transformer.color
        if p.force_encoded_color:
            color = True
        self._color = color
        self._cursor = None
        try:
            self._cursor = open_db(p.source, int(p.backend))
        except DataError as exc:
            raise DataError(f"{self.where}: {exc}") from None
        if p.rand_skip:
            for _ in range(int(backend.rng().integers(int(p.rand_skip)))):
                self._cursor.next()
        self._filter = ItemFilter(*train_shard(self.phase))
        if self._filter.active:
            self._check_enough_records(p.source, int(p.backend))
            self._skip_others()
        first = self._read_item(self._datum())[0]
        self._item_shape = self.transformer.infer_shape(first.shape)
        top[0].reshape((self.batch_size,) + self._item_shape)
        if self.output_labels:
            top[1].reshape((self.batch_size,))

    def _check_enough_records(self, source: str, db_backend: int) -> None:
        n = self._filter.size
        with open_db(source, db_backend) as probe:
            first = probe.key()
            for k in range(1, n):
                probe.next()
                if probe.key() == first:
                    raise DataError(
                        f"{self.where}: '{source}' holds {k} record(s), fewer than "
                        f"the {n} data-parallel ranks; use fewer ranks or more data")

    def _skip_others(self) -> None:
        """Move the cursor to the next record of this rank."""
        self._filter.skip(self._cursor.next)

    def _datum(self):
        d = caffe_pb2.Datum()
        try:
            d.ParseFromString(self._cursor.value())
        except DecodeError as exc:
            raise DataError(
                f"{self.where}: record {self._cursor.key()!r} of "
                f"'{self.layer_param.data_param.source}' is not a Datum ({exc})"
            ) from None
        return d

    def _read_item(self, datum):
        from recaffe.data_transformer import datum_to_array  # noqa: PLC0415

        try:
            return datum_to_array(datum, self._color), datum.label
        except DataError as exc:
            raise DataError(
                f"{self.where}: record {self._cursor.key()!r} of "
                f"'{self.layer_param.data_param.source}': {exc}"
            ) from None

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size,) + self._item_shape)
        if self.output_labels:
            top[1].reshape((self.batch_size,))

    def forward(self, bottom, top):
        items = []
        labels = np.empty(self.batch_size, dtype=top[0].dtype)
        for i in range(self.batch_size):
            item, labels[i] = self._read_item(self._datum())
            items.append(item)
            self._cursor.next()
            if self._filter.active:
                self._skip_others()
        shape = self.transformer.infer_shape(items[0].shape)
        if shape != self._item_shape:
            self._item_shape = shape
            self.reshape(bottom, top)
        host = np.empty(top[0].shape, dtype=top[0].dtype)
        for i, item in enumerate(items):
            if item.shape != items[0].shape:
                raise DataError(
                    f"{self.where}: records of one batch must have the same shape, "
                    f"got {items[0].shape} and {item.shape}")
            self.transformer.transform(item, host[i])
        xp = self.xp
        top[0].data[...] = backend.to_device(host, xp)
        if self.output_labels:
            top[1].data[...] = backend.to_device(labels, xp)

    def close(self) -> None:
        """Close the database (also done when the layer is garbage-collected)."""
        if getattr(self, "_cursor", None) is not None:
            self._cursor.close()
            self._cursor = None

    def __del__(self):
        try:  # noqa: SIM105 - no contextlib lookup in __del__ at shutdown
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass
