"""Detector: a Net that scores image windows (pycaffe's ``caffe.Detector``,
R-CNN style).

``detect_windows([(image_file, [(ymin, xmin, ymax, xmax), …]), …])`` crops each
window (optionally with ``context_pad`` pixels of context, as R-CNN warps),
preprocesses it with a :class:`recaffe.io.Transformer` and returns, per window,
``{'window', 'prediction', 'filename'}``. Selective-search proposals are not
bundled: pass windows explicitly.
"""

from __future__ import annotations

import numpy as np

from recaffe import io as rio
from recaffe.classifier import input_transformer
from recaffe.errors import RecaffeError
from recaffe.net import TEST, Net


class Detector(Net):
    #: pycaffe-level state that stays host numpy in GPU mode
    host_attributes = ("transformer", "crop_dims", "crop_mean", "context_pad")

    def __init__(self, model_file, pretrained_file=None, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        self.transformer = input_transformer(self, mean, input_scale, raw_scale,
                                             channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """Score each window of each image; a list of dicts, windows in order."""
        images_windows = [(f, [np.asarray(w) for w in ws]) for f, ws in images_windows]
        window_inputs = []
        for image_fname, windows in images_windows:
            image = rio.load_image(image_fname).astype(np.float32)
            for window in windows:
                window_inputs.append(self.crop(image, window))
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(window_inputs), window_inputs[0].shape[2])
                            + tuple(self.blobs[in_].data.shape[2:]), dtype=np.float32)
        for ix, window_in in enumerate(window_inputs):
            caffe_in[ix] = self.transformer.preprocess(in_, window_in)
        out = self.forward_all(**{in_: caffe_in})
        predictions = out[self.outputs[0]]
        detections = []
        ix = 0
        for image_fname, windows in images_windows:
            for window in windows:
                detections.append({"window": window, "prediction": predictions[ix],
                                   "filename": image_fname})
                ix += 1
        return detections

    def detect_selective_search(self, image_fnames):
        raise RecaffeError("detect_selective_search needs the selective_search_ijcv "
                           "package, which recaffe does not bundle; compute windows "
                           "and call detect_windows")

    def crop(self, im, window):
        """The window of ``im`` (with context padding when configured)."""
        window = np.asarray(window)
        y0, x0, y1, x1 = (int(v) for v in window[:4])
        crop = im[y0:y1, x0:x1]
        if not self.context_pad:
            return crop
        box = window.astype(float)
        crop_size = self.blobs[self.inputs[0]].width  # square inputs assumed
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h = (box[2] - box[0] + 1) / 2.0
        half_w = (box[3] - box[1] + 1) / 2.0
        center = (box[0] + half_h, box[1] + half_w)
        scaled = scale * np.array((-half_h, -half_w, half_h, half_w))
        box = np.round(np.tile(center, 2) + scaled)
        full_h = box[2] - box[0] + 1
        full_w = box[3] - box[1] + 1
        scale_h = crop_size / full_h
        scale_w = crop_size / full_w
        pad_y = round(max(0, -box[0]) * scale_h)
        pad_x = round(max(0, -box[1]) * scale_w)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h = box[2] - box[0] + 1
        clip_w = box[3] - box[1] + 1
        if clip_h <= 0 or clip_w <= 0:
            raise RecaffeError(f"Detector: window {window.tolist()} lies outside the "
                               f"image of shape {im.shape[:2]}")
        crop_h = round(clip_h * scale_h)
        crop_w = round(clip_w * scale_w)
        crop_h = min(crop_h, crop_size - pad_y)
        crop_w = min(crop_w, crop_size - pad_x)
        b = box.astype(int)
        context = rio.resize_image(im[b[0]:b[2], b[1]:b[3]], (crop_h, crop_w))
        out = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        out[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return out

    def configure_crop(self, context_pad):
        """Set the crop size (the input's H x W x K) and the context padding."""
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv_tpose = [tpose[t] for t in tpose]
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inv_tpose]
        self.context_pad = context_pad
        if not self.context_pad:
            return
        channel_order = self.transformer.channel_swap.get(in_)
        raw_scale = self.transformer.raw_scale.get(in_)
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.array(mean, dtype=np.float32).transpose(inv_tpose)
        if crop_mean.shape[:2] != tuple(self.crop_dims[:2]):
            crop_mean = np.broadcast_to(crop_mean, tuple(self.crop_dims)).copy()
        if channel_order is not None:
            inverse = [list(channel_order).index(i) for i in range(crop_mean.shape[2])]
            crop_mean = crop_mean[:, :, inverse]
        if raw_scale is not None:
            crop_mean /= raw_scale
        self.crop_mean = crop_mean
