"""Readers of the distributed formats of the affective-computing corpora (MOSI, MOSEI, ...), shared by their loaders.

``pickles``: the MulT and MMSA processed pickles; ``sdk``: CMU-MultimodalSDK ``.csd`` folders; ``find``: where a
corpus's data is and which pickle to read; ``prepare``: what every format shares once read (``Corpus``,
``build_dataset``: real steps first, masks, suspect values, checks). The loaders that register a ``--dataset``
live one per file beside this package (``mosi.py``, ``mosei.py``, ...).
"""
