"""check_relative_path: the pure name rules of every manifest path."""

from __future__ import annotations

import pytest

from appliance.library.check_relative_path import check_relative_path
from appliance.library.library_errors import ManifestError


@pytest.mark.parametrize(
    "relative",
    [
        "a",
        "params_shard_0.bin",
        "mlc-chat-config.json",
        "dir/sub/tokenizer.json",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "modèle/poids é.bin",
        "a..b",
        "file.",
        "x" * 255,
        "/".join(["d" * 200] * 5),  # 1004 bytes
        "é" * 127,  # 254 bytes
    ],
)
def test_accepts_safe_paths(relative):
    assert check_relative_path(relative) == relative


@pytest.mark.parametrize(
    "relative, reason",
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("/", "absolute"),
        ("..", "'..'"),
        ("../outside", "'..'"),
        ("a/../../b", "'..'"),
        ("a/..", "'..'"),
        (".", "'.'-only"),
        ("./a", "'.'-only"),
        ("a/./b", "'.'-only"),
        ("...", "'.'-only"),
        ("a/", "empty component"),
        ("a//b", "empty component"),
        ("a\\b", "backslash"),
        ("..\\windows", "backslash"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("a\tb", "control"),
        ("a\x1bb", "control"),
        ("a\x7fb", "control"),
        ("a\x85b", "control"),
        ("C:", "drive"),
        ("c:evil", "drive"),
        ("C:/Windows/x", "drive"),
        (".hidden", "hidden"),
        (".iplm-partial/params_shard_0.bin", "hidden"),
        ("dir/.gitattributes", "hidden"),
        ("x" * 256, "255 bytes"),
        ("é" * 128, "255 bytes"),
        ("/".join(["d" * 200] * 6), "1024 bytes"),
        ("bad\udcffname", "UTF-8"),
    ],
)
def test_refuses_unsafe_paths(relative, reason):
    with pytest.raises(ManifestError) as caught:
        check_relative_path(relative)

    assert reason in caught.value.message
    assert caught.value.code == "manifest_invalid"


@pytest.mark.parametrize("value", [None, 5, b"bytes", ["a"], True])
def test_refuses_non_strings(value):
    with pytest.raises(ManifestError, match="must be a string"):
        check_relative_path(value)


def test_message_shows_control_characters_visibly():
    with pytest.raises(ManifestError) as caught:
        check_relative_path("evil\nname")

    assert "\n" not in caught.value.message and "\\n" in caught.value.message
