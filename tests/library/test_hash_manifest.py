"""hash_manifest: the canonical form, pinned byte for byte (other implementations must match it)."""

from __future__ import annotations

import hashlib

from appliance.library.hash_manifest import hash_manifest
from appliance.library.library_types import ManifestFile

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def test_canonical_bytes_are_pinned():
    files = [
        ManifestFile(path="tokenizer.json", size=70000, sha256=A, pieces=(B, C)),
        ManifestFile(path="mlc-chat-config.json", size=0, sha256=D, pieces=()),
    ]
    canonical = (
        '{"files":['
        '{"path":"mlc-chat-config.json","pieces":[],"sha256":"' + D + '","size":0},'
        '{"path":"tokenizer.json","pieces":["' + B + '","' + C + '"],"sha256":"' + A + '","size":70000}'
        '],"format":"mlc","piece_size":65536,"version":1}'
    ).encode("utf-8")

    assert hash_manifest("mlc", 65536, files) == hashlib.sha256(canonical).hexdigest()


def test_non_ascii_is_raw_utf8_and_quotes_are_escaped():
    files = [ManifestFile(path='modèle "q4".gguf', size=1, sha256=A, pieces=(B,))]
    canonical = (
        '{"files":[{"path":"modèle \\"q4\\".gguf","pieces":["'
        + B
        + '"],"sha256":"'
        + A
        + '","size":1}],"format":"gguf","piece_size":4194304,"version":1}'
    ).encode("utf-8")

    assert b"mod\xc3\xa8le" in canonical
    assert hash_manifest("gguf", 4194304, files) == hashlib.sha256(canonical).hexdigest()


def test_file_order_does_not_matter_but_every_field_does():
    one = ManifestFile(path="a.bin", size=1, sha256=A, pieces=(B,))
    two = ManifestFile(path="b.bin", size=1, sha256=C, pieces=(D,))
    root = hash_manifest("mlc", 65536, [one, two])

    assert hash_manifest("mlc", 65536, (two, one)) == root
    assert hash_manifest("mlc", 65536, iter([two, one])) == root
    assert (
        len(
            {
                root,
                hash_manifest("gguf", 65536, [one, two]),
                hash_manifest("mlc", 131072, [one, two]),
                hash_manifest("mlc", 65536, [one]),
                hash_manifest("mlc", 65536, [one, ManifestFile(path="c.bin", size=1, sha256=C, pieces=(D,))]),
                hash_manifest("mlc", 65536, [one, ManifestFile(path="b.bin", size=2, sha256=C, pieces=(D,))]),
                hash_manifest("mlc", 65536, [one, ManifestFile(path="b.bin", size=1, sha256=D, pieces=(D,))]),
                hash_manifest("mlc", 65536, [one, ManifestFile(path="b.bin", size=1, sha256=C, pieces=(C,))]),
            }
        )
        == 8
    )
