"""The ``recaffe`` command-line tool, Caffe's ``caffe`` command and its helpers.

``recaffe <command> [flags]``; see :mod:`recaffe.cli.__main__` for the commands.
"""
