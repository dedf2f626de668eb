import pytest

from prunetune.errors import ConfigError
from prunetune.spaces import build_search


@pytest.fixture
def problems():
    """The (path, message) problems a raw job mapping raises, as one string per problem."""

    def collect(raw: dict) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            build_search(raw)
        return [f"{path}: {message}" for path, message in caught.value.problems]

    return collect


class RecordingTrial:
    """An Optuna trial double that records every attribute the space touches.

    Suggestions return the first choice or the lower bound, or the value in ``answers``.
    """

    def __init__(self, answers: dict | None = None) -> None:
        self.touched: list[str] = []
        self.answers = answers or {}

    def __getattr__(self, attribute: str):
        self.touched.append(attribute)

        def suggest(name, *args, **kwargs):
            if name in self.answers:
                return self.answers[name]
            return args[0][0] if attribute == "suggest_categorical" else args[0]

        return suggest


@pytest.fixture
def recording_trial():
    return RecordingTrial
