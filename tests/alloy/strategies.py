"""Hypothesis strategies for Alloy wire data: JSON values, attribute lists and raw item objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from alloysync.alloy.models import Item

DECLARED_FIELDS = frozenset(Item.model_fields)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

# A few realistic codes so duplicates are common, plus arbitrary text.
attribute_codes = st.sampled_from(["attributes_itemsTitle", "attributes_x", "attributes_y"]) | st.text(
    max_size=30
)
item_ids = st.text(alphabet="0123456789abcdef", min_size=24, max_size=24)
link_values = st.lists(item_ids, max_size=3)

attribute_dicts = st.fixed_dictionaries(
    {"attributeCode": attribute_codes, "value": json_values | link_values},
    optional={"extraAttributeField": json_values},
)

# Alloy's millisecond precision in UTC, as it appears on the wire.
alloy_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))

OFFSETS = [None, timedelta(0), timedelta(hours=2), timedelta(hours=-5, minutes=-30)]

extra_fields = st.dictionaries(
    st.text(max_size=15).filter(lambda key: key not in DECLARED_FIELDS),
    json_values,
    max_size=5,
)


@st.composite
def raw_items(draw: st.DrawFn) -> dict[str, Any]:
    """A raw item object as Alloy might send it, including unknown top-level fields."""
    raw: dict[str, Any] = dict(draw(extra_fields))
    raw["itemId"] = draw(item_ids)
    raw["designCode"] = draw(st.text(min_size=1, max_size=30))
    raw["attributes"] = draw(st.lists(attribute_dicts, max_size=8))
    if draw(st.booleans()):
        raw["collection"] = draw(st.sampled_from(["Live", "Archive"]))
    if draw(st.booleans()):
        raw["signature"] = draw(st.none() | st.text(max_size=30))
    if draw(st.booleans()):
        moment = draw(alloy_datetimes)
        offset = draw(
            st.sampled_from([None, timedelta(0), timedelta(hours=2), timedelta(hours=-5, minutes=-30)])
        )
        raw["lastEditDate"] = _format(moment, offset)
    return raw


def _format(moment: datetime, offset: timedelta | None) -> str:
    if offset is None:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.astimezone(timezone(offset)).isoformat(timespec="milliseconds")
