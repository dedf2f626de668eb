"""prunetune's errors cross process boundaries (Ray ships a failed trial's exception to the driver pickled)."""

import pickle

import pytest

from prunetune.errors import ConfigError, FieldValueError, UnknownNameError


@pytest.mark.parametrize("error", [
    ConfigError([("search.sampler", "unknown sampler 'tpe2'"), ("", "two problems")]),
    ConfigError([("data.name", "unknown dataset 'x'")]),
    UnknownNameError("criterion", "l3", ["l1", "l2"], "pruning.criterion"),
    FieldValueError("crop_padding", "crop_padding is 4, but augment is false"),
])
def test_an_error_unpickles_with_its_own_message_and_fields(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and copy.args == error.args
    assert vars(copy) == vars(error)
