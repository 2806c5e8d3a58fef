"""Dataset options (``[datasets.<name>]`` in a --config file) a loader does not take are one DataError line that
lists the loader's options, for every registered dataset, instead of a TypeError traceback."""

from __future__ import annotations

import pytest

from benchmarks.data import DataError, list_datasets, load_dataset


@pytest.mark.parametrize("name", list_datasets())
def test_an_unknown_option_is_one_line_listing_the_options(name):
    with pytest.raises(DataError) as caught:
        load_dataset(name, None, no_such_option=1)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"dataset {name!r} takes no option 'no_such_option'; its options: ")


def test_known_options_reach_the_loader():
    assert len(load_dataset("mfeat", None, modalities="fou,kar").modality_names) == 2
    assert load_dataset("synthetic", None, sizes=(20, 5, 5)).summary()["n_train"] == 20
