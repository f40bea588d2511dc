"""Classifier: a Net that predicts classes of images (pycaffe's ``caffe.Classifier``).

Images (H x W x K, as :func:`recaffe.io.load_image` gives) are resized to
``image_dims``, cropped to the input size (the center, or ten crops with
``oversample``), preprocessed by a :class:`recaffe.io.Transformer` and run
through the net in TEST phase; ``predict`` returns the first output, averaged
over the ten crops when oversampling.
"""

from __future__ import annotations

import numpy as np

from recaffe import io as rio
from recaffe.net import TEST, Net


def input_transformer(net, mean=None, input_scale=None, raw_scale=None,
                      channel_swap=None) -> rio.Transformer:
    """A Transformer for ``net``'s first input (HxWxK images to KxHxW), as
    pycaffe's Classifier and Detector configure it."""
    in_ = net.inputs[0]
    t = rio.Transformer({in_: net.blobs[in_].data.shape})
    t.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        t.set_mean(in_, mean)
    if input_scale is not None:
        t.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        t.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        t.set_channel_swap(in_, channel_swap)
    return t


class Classifier(Net):
    #: pycaffe-level state that stays host numpy in GPU mode
    host_attributes = ("transformer", "crop_dims", "image_dims")

    def __init__(self, model_file, pretrained_file=None, image_dims=None, mean=None,
                 input_scale=None, raw_scale=None, channel_swap=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        in_ = self.inputs[0]
        self.transformer = input_transformer(self, mean, input_scale, raw_scale,
                                             channel_swap)
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        if image_dims is None or len(image_dims) == 0:
            image_dims = self.crop_dims
        self.image_dims = np.array(image_dims)

    def predict(self, inputs, oversample: bool = True) -> np.ndarray:
        """Class scores, N x C (N images; ten-crop average when ``oversample``)."""
        inputs = list(inputs)
        h, w = (int(d) for d in self.image_dims)
        input_ = np.zeros((len(inputs), h, w, inputs[0].shape[2]), dtype=np.float32)
        for ix, im in enumerate(inputs):
            input_[ix] = rio.resize_image(im, (h, w))
        if oversample:
            input_ = rio.oversample(input_, self.crop_dims)
        else:
            center = np.array(self.image_dims) / 2.0
            crop = np.concatenate([center - self.crop_dims / 2.0,
                                   center + self.crop_dims / 2.0]).astype(int)
            input_ = input_[:, crop[0]:crop[2], crop[1]:crop[3], :]
        in_ = self.inputs[0]
        caffe_in = np.zeros(np.array(input_.shape)[[0, 3, 1, 2]], dtype=np.float32)
        for ix, im in enumerate(input_):
            caffe_in[ix] = self.transformer.preprocess(in_, im)
        out = self.forward_all(**{in_: caffe_in})
        predictions = out[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1))
            predictions = predictions.mean(1)
        return predictions
