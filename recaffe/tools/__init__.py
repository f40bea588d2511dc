"""Data tools: converting arrays, HDF5 files and image folders to LMDB, and
computing mean images (``recaffe convert``, ``recaffe compute_image_mean``)."""
