"""ImageData: reads image files listed with their labels in a text file.

Math: item i of a batch is ``transform(image_k)`` for consecutive lines k of
``source`` (``"path label"``, split at the last space), wrapping around at the
end; ``label[i] = label_k``. Images are read with Pillow (channels BGR as
Caffe/OpenCV; one grey channel when ``is_color`` is false) from
``root_folder + path`` and resized to (new_height, new_width) when both are
set. ``shuffle`` shuffles the lines at setup and at each wrap-around;
``rand_skip`` starts at a random line in [0, rand_skip). The transformation is
Caffe's ``(x - mean) * scale``, then crop and mirror
(:mod:`recaffe.data_transformer`). With N data-parallel ranks
(:mod:`recaffe.parallel`), a TRAIN net's layer keeps line k of this order
only on rank ``k mod N`` (Caffe's multi-GPU rule). Resizing uses Pillow's
bilinear filter, which may differ slightly from OpenCV's.

Bottoms: none.
Tops: ``data`` (B, C, H', W') and ``label`` (B,).
Learnable params: none.
Proto fields: image_data_param { source batch_size rand_skip shuffle new_height
new_width is_color root_folder } and transform_param (deprecated
image_data_param scale/mean_file/crop_size/mirror are used when there is no
transform_param).
Gradients: none (no bottoms).
"""

from __future__ import annotations

import numpy as np

from recaffe import backend
from recaffe.data_transformer import (
    DataTransformer,
    load_image_file,
    transform_param_of,
)
from recaffe.errors import DataError
from recaffe.layer import Layer, register_layer
from recaffe.parallel.shard import ItemFilter, train_shard


@register_layer
class ImageDataLayer(Layer):
    type = "ImageData"
    exact_num_bottom = 0
    exact_num_top = 2

    def setup(self, bottom, top):
        p = self.layer_param.image_data_param
        self.where = f"{self.type} layer '{self.name or '(unnamed)'}'"
        if not p.source:
            raise self.error("image_data_param.source (a 'path label' list) is "
                             "required")
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error(f"image_data_param.batch_size must be > 0, got "
                             f"{p.batch_size}")
        nh, nw = int(p.new_height), int(p.new_width)
        if (nh > 0) != (nw > 0):
            raise self.error("new_height and new_width must be set together, got "
                             f"{nh} and {nw}")
        self.resize = (nh, nw) if nh > 0 else None
        self.color = bool(p.is_color)
        self.root = p.root_folder
        self.shuffle = bool(p.shuffle)
        self.transformer = DataTransformer(
            transform_param_of(self.layer_param, p), self.phase, self.where)
        self.lines = self._read_list(p.source)
        if self.shuffle:
            self._shuffle()
        self.pos = 0
        if p.rand_skip:
            self.pos = int(backend.rng().integers(int(p.rand_skip)))
            if self.pos >= len(self.lines):
                raise self.error(f"rand_skip {p.rand_skip} can skip past the "
                                 f"{len(self.lines)} lines of '{p.source}'",
                                 DataError)
        self._filter = ItemFilter(*train_shard(self.phase))
        if self._filter.active:
            if len(self.lines) < self._filter.size:
                raise self.error(
                    f"source '{p.source}' lists {len(self.lines)} image(s), fewer "
                    f"than the {self._filter.size} data-parallel ranks; use fewer "
                    "ranks or more images", DataError)
            self._skip_others()
        first = self._load(self.pos)
        self._item_shape = self.transformer.infer_shape(first.shape)
        self.reshape(bottom, top)

    def _advance(self) -> None:
        self.pos += 1
        if self.pos >= len(self.lines):
            self.pos = 0
            if self.shuffle:
                self._shuffle()

    def _skip_others(self) -> None:
        """Move to the next line of this data-parallel rank."""
        self._filter.skip(self._advance)

    def _read_list(self, source):
        try:
            with open(source, encoding="utf-8") as fh:
                raw = [ln.strip() for ln in fh]
        except OSError as exc:
            raise self.error(f"cannot open source '{source}' "
                             f"({exc.strerror or exc})", DataError) from None
        lines = []
        for lineno, ln in enumerate(raw, 1):
            if not ln:
                continue
            name, sep, label = ln.rpartition(" ")
            try:
                if not sep:
                    raise ValueError
                lines.append((name.strip(), int(label)))
            except ValueError:
                raise self.error(f"{source}:{lineno}: expected 'path label' with an "
                                 f"integer label, got {ln!r}", DataError) from None
        if not lines:
            raise self.error(f"source '{source}' lists no images", DataError)
        return lines

    def _shuffle(self) -> None:
        order = backend.rng().permutation(len(self.lines))
        self.lines = [self.lines[i] for i in order]

    def _load(self, k: int) -> np.ndarray:
        path = self.root + self.lines[k][0]
        try:
            return load_image_file(path, self.resize, self.color)
        except DataError as exc:
            raise DataError(f"{self.where}: {exc}") from None

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size,) + self._item_shape)
        top[1].reshape((self.batch_size,))

    def forward(self, bottom, top):
        host = None
        labels = np.empty(self.batch_size, dtype=top[0].dtype)
        for i in range(self.batch_size):
            img = self._load(self.pos)
            shape = self.transformer.infer_shape(img.shape)
            if host is None:
                if shape != self._item_shape:
                    self._item_shape = shape
                    self.reshape(bottom, top)
                host = np.empty(top[0].shape, dtype=top[0].dtype)
            elif shape != self._item_shape:
                raise DataError(
                    f"{self.where}: images of one batch must have the same size "
                    f"(set new_height/new_width), got {self._item_shape} and "
                    f"{shape} for '{self.lines[self.pos][0]}'")
            self.transformer.transform(img, host[i])
            labels[i] = self.lines[self.pos][1]
            self._advance()
            if self._filter.active:
                self._skip_others()
        xp = self.xp
        top[0].data[...] = backend.to_device(host, xp)
        top[1].data[...] = backend.to_device(labels, xp)
