"""pycaffe's Net surface: ``blobs``, ``params``, ``forward``, ``backward``, …

Semantics follow pycaffe exactly (see the docs of each member); arrays returned
are live views of blob memory, as in pycaffe.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

import numpy as np

from recaffe import backend
from recaffe.backend.synced import host_call
from recaffe.errors import NetError


class BlobDict(OrderedDict):
    """``net.blobs``: pycaffe's ordered name -> Blob mapping. Looking a blob
    up tells the net a script reads it, so buffer sharing
    (``Net.share_buffers``) keeps it in its own array."""

    def __init__(self, net, pairs):
        super().__init__(pairs)
        self._net = net

    def __getitem__(self, name):
        blob = super().__getitem__(name)
        self._net._pin((name,))
        return blob

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def items(self):
        self._net._pin(self.keys())
        return super().items()

    def values(self):
        self._net._pin(self.keys())
        return super().values()

    def copy(self) -> OrderedDict:
        """A plain ordered copy (every blob counts as read)."""
        return OrderedDict(self.items())


class PycaffeNetMixin:
    """Mixed into :class:`recaffe.net.Net`."""

    # -- collections -------------------------------------------------------------
    @property
    def blobs(self) -> OrderedDict:
        c = self._cache.get("blobs")
        if c is None:
            c = self._cache["blobs"] = BlobDict(
                self, zip(self.blob_names, self.blob_list, strict=True))
        return c

    @property
    def blob_loss_weights(self) -> OrderedDict:
        return OrderedDict(
            zip(self.blob_names, self.blob_loss_weight_list, strict=True))

    @property
    def params(self) -> OrderedDict:
        c = self._cache.get("params")
        if c is None:
            # As pycaffe: a repeated layer name keeps its first position and
            # takes the later layer's blobs.
            c = OrderedDict(
                (name, layer.blobs)
                for name, layer in zip(self.layer_names, self.layers_list, strict=True)
                if len(layer.blobs) > 0
            )
            self._cache["params"] = c
        return c

    @property
    def layers(self) -> list:
        return self.layers_list

    @property
    def layer_dict(self) -> OrderedDict:
        return OrderedDict(zip(self.layer_names, self.layers_list, strict=True))

    @property
    def _layer_names(self) -> list[str]:
        return list(self.layer_names)

    @property
    def _blob_names(self) -> list[str]:
        return list(self.blob_names)

    @property
    def _blobs(self) -> list:
        return list(self.blob_list)

    @property
    def _inputs(self) -> list[int]:
        return list(self.input_blob_ids)

    @property
    def _outputs(self) -> list[int]:
        return list(self.output_blob_ids)

    def _top_ids(self, i: int) -> list[int]:
        return list(self.top_ids[i])

    def _bottom_ids(self, i: int) -> list[int]:
        return list(self.bottom_ids[i])

    @property
    def inputs(self) -> list[str]:
        return [self.blob_names[i] for i in self.input_blob_ids]

    @property
    def outputs(self) -> list[str]:
        return list(self.output_names)

    @property
    def top_names(self) -> OrderedDict:
        return OrderedDict(
            (self.layer_names[i], [self.blob_names[t] for t in self.top_ids[i]])
            for i in range(len(self.layers_list))
        )

    @property
    def bottom_names(self) -> OrderedDict:
        return OrderedDict(
            (self.layer_names[i], [self.blob_names[b] for b in self.bottom_ids[i]])
            for i in range(len(self.layers_list))
        )

    # -- running -----------------------------------------------------------------
    def _forward(self, start: int, end: int) -> float:
        return self._forward_range(start, end)

    def _backward(self, start: int, end: int) -> None:
        self._backward_range(start, end)

    def forward(self, blobs=None, start=None, end=None, **kwargs) -> dict:
        """Forward from ``start`` to ``end`` (layer names, inclusive).

        Keyword arrays are copied into the input blobs first. Returns
        ``{name: blob.data}`` for the outputs (or the tops of ``end``) plus
        ``blobs``.
        """
        outputs = set(blobs or [])
        start_ind = 0 if start is None else self.layer_index(start)
        if end is not None:
            end_ind = self.layer_index(end)
            outputs |= set(self.top_names[end])
        else:
            end_ind = len(self.layers_list) - 1
            outputs |= set(self.outputs)
        if kwargs:
            if set(kwargs) != set(self.inputs):
                raise NetError("Input blob arguments do not match net inputs.")
            for name, arr in kwargs.items():
                blob = self.blobs[name]
                if np.shape(arr)[0] != blob.shape[0]:
                    raise NetError("Input is not batch sized")
                backend.copy_into(blob.data, arr)
        self._pin(outputs, quiet=True)  # (kept from sharing: read below)
        self._forward(start_ind, end_ind)
        return {name: self.blobs[name].data for name in outputs}

    def backward(self, diffs=None, start=None, end=None, **kwargs) -> dict:
        """Backward from ``start`` down to ``end`` (layer names, inclusive)."""
        outputs = set(diffs or [])
        start_ind = (len(self.layers_list) - 1 if start is None
                     else self.layer_index(start))
        if end is not None:
            end_ind = self.layer_index(end)
            outputs |= set(self.bottom_names[end])
        else:
            end_ind = 0
            outputs |= set(self.inputs)
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise NetError("Top diff arguments do not match net outputs.")
            for name, arr in kwargs.items():
                blob = self.blobs[name]
                if np.shape(arr)[0] != blob.shape[0]:
                    raise NetError("Diff is not batch sized")
                backend.copy_into(blob.diff, arr)
        self._pin(outputs, quiet=True)
        self._backward(start_ind, end_ind)
        return {name: self.blobs[name].diff for name in outputs}

    def _batch(self, blobs: dict):
        """Split each array of ``blobs`` into net-batch-sized chunks.

        The batch size is ``shape[0]`` of the first blob of ``net.blobs``; the
        last chunk is padded with zeros.
        """
        if not blobs:
            return
        num = len(next(iter(blobs.values())))
        batch_size = self.blob_list[0].shape[0]
        remainder = num % batch_size
        for b in range(num // batch_size):
            i = b * batch_size
            yield {name: blobs[name][i:i + batch_size] for name in blobs}
        if remainder > 0:
            padded = {}
            for name, arr in blobs.items():
                arr = np.asarray(arr)
                pad = np.zeros((batch_size - remainder,) + arr.shape[1:],
                               dtype=arr.dtype)
                padded[name] = np.concatenate([arr[-remainder:], pad])
            yield padded

    @staticmethod
    def _strip_padding(collected: dict, num: int | None) -> dict:
        out = {}
        for name, chunks in collected.items():
            arr = np.asarray([backend.to_host(c) for c in chunks])
            out[name] = arr[:num] if num is not None else arr
        return out

    def forward_all(self, blobs=None, **kwargs) -> dict:
        """Forward arrays of any length batch by batch; returns whole outputs.

        Each keyword array is split into batches of the net's batch size (the
        last padded with zeros), each batch is run with :meth:`forward`, and the
        copied outputs (``net.outputs`` plus ``blobs``) are concatenated with
        the padding removed.
        """
        if not kwargs:
            outs = self.forward(blobs=blobs)
            return {name: np.array(backend.to_host(data), copy=True)
                    for name, data in outs.items()}
        all_outs = {out: [] for out in set(self.outputs + list(blobs or []))}
        for batch in self._batch(kwargs):
            outs = self.forward(blobs=blobs, **batch)
            for out, data in outs.items():
                all_outs[out].extend(backend.to_host(data).copy())
        num = len(next(iter(kwargs.values())))
        return self._strip_padding(all_outs, num)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """:meth:`forward_all` and batched :meth:`backward` together.

        Keywords naming net inputs are forward data, keywords naming net
        outputs are top diffs. Returns ``(outs, diffs)``: outputs plus
        ``blobs``, and input diffs plus ``diffs``, padding removed.
        """
        all_outs = {out: [] for out in set(self.outputs + list(blobs or []))}
        all_diffs = {d: [] for d in set(self.inputs + list(diffs or []))}
        forward_batches = self._batch(
            {name: kwargs[name] for name in self.inputs if name in kwargs})
        backward_batches = self._batch(
            {name: kwargs[name] for name in self.outputs if name in kwargs})
        for fb, bb in itertools.zip_longest(forward_batches, backward_batches,
                                            fillvalue={}):
            batch_outs = self.forward(blobs=blobs, **fb)
            batch_diffs = self.backward(diffs=diffs, **bb)
            for out, data in batch_outs.items():
                all_outs[out].extend(backend.to_host(data).copy())
            for d, diff in batch_diffs.items():
                all_diffs[d].extend(backend.to_host(diff).copy())
        num = len(next(iter(kwargs.values()))) if kwargs else None
        return self._strip_padding(all_outs, num), self._strip_padding(all_diffs, num)

    def set_input_arrays(self, data, labels, layer_index: int = 0) -> None:
        """Feed the MemoryData layer at ``layer_index`` (pycaffe's helper)."""
        layer = self.layers_list[layer_index]
        if layer.type != "MemoryData":
            raise RuntimeError("set_input_arrays may only be called if the first layer "
                               "is a MemoryData layer")
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = np.ascontiguousarray(labels[:, None, None, None], dtype=np.float32)
        layer.reset(data, labels)

    # -- callbacks -----------------------------------------------------------------
    # Stored wrapped once: callbacks run on the host side (host arrays), also
    # when called inside a device pass.
    def before_forward(self, f) -> None:
        self._callbacks["before_forward"].append(host_call(f))

    def after_forward(self, f) -> None:
        self._callbacks["after_forward"].append(host_call(f))

    def before_backward(self, f) -> None:
        self._callbacks["before_backward"].append(host_call(f))

    def after_backward(self, f) -> None:
        self._callbacks["after_backward"].append(host_call(f))

    def _check_layer(self, name: str) -> None:
        if name not in self._layer_by_name:
            raise NetError(f"unknown layer '{name}'")
