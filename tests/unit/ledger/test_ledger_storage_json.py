"""The maps the tables store as JSON are written exactly as `json.dumps(sort_keys=True)`."""

import json

from hypothesis import given
from hypothesis import strategies as st

from services.ledger.storage import idempotency, rows


@given(st.dictionaries(st.text(), st.text(), max_size=5))
def test_metadata_json_is_sorted_dumps(metadata):
    assert rows.to_json(metadata) == json.dumps(metadata, sort_keys=True)


@given(st.dictionaries(st.text(), st.lists(st.text(), max_size=3) | st.text(), max_size=3))
def test_idempotency_results_json_is_sorted_dumps(result):
    assert idempotency._JSON.encode(result) == json.dumps(result, sort_keys=True)
