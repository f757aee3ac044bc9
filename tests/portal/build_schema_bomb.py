"""Schema bombs of a given size, for the tests and the hostile-input suite."""

from __future__ import annotations


def build_schema_bomb(kind: str, levels: int, width: int = 1) -> dict:
    """ "nest": arrays of arrays `levels` deep. "fan-out": $defs that each refer `width` times to the one before,
    width**levels subschemas once written out."""
    if kind == "nest":
        schema: dict = {"type": "string"}
        for _ in range(levels):
            schema = {"type": "array", "items": schema}
        return schema
    if kind == "fan-out":
        defs: dict = {"d0": {"type": "string"}}
        for level in range(1, levels + 1):
            defs[f"d{level}"] = {"anyOf": [{"$ref": f"#/$defs/d{level - 1}"} for _ in range(width)]}
        return {"$defs": defs, "$ref": f"#/$defs/d{levels}"}
    raise ValueError(f"no schema bomb of kind {kind!r}")
