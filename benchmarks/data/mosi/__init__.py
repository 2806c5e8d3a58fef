"""CMU-MOSI (Zadeh et al., IEEE Intelligent Systems 2016) from whichever distributed format the user holds.

``load_mosi(path)`` (registered as ``mosi``) reads a MulT pickle, an MMSA pickle or a folder of
CMU-MultimodalSDK ``.csd`` files (``pickles``, ``sdk``) and hands the splits to the shared post-processing
(``prepare``): real steps first whatever the padding side, masks, float32, non-finite values to 0 with one
warning, a warning per modality for extreme finite values, the checks.
"""

from .load import ACCEPTED, load_mosi

__all__ = ["ACCEPTED", "load_mosi"]
