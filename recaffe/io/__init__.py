"""Readers and writers of Caffe files."""
