"""rnnedge generate's token text: ids the model emits that have no text are refused."""

from __future__ import annotations

import pytest

from rnnedge.errors import InputError
from rnnedge.runtime.generate import decode, encode


def test_byte_level_text_round_trips():
    assert decode(encode("hé")) == "hé"


def test_generate_refuses_a_token_id_it_has_no_text_for():
    with pytest.raises(InputError, match="token id 300 is outside byte-level tokens"):
        decode([104, 300])  # was printed as byte 300 % 256 = 44, a ','
    with pytest.raises(InputError, match="token id 2 is outside the vocab"):
        decode([0, 2], vocab=["a", "b"])
