import pytest

from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.mesh_errors import MeshKeyError

SECRET = bytes(range(32))


def test_a_key_round_trips_and_each_new_key_is_new():
    text = create_mesh_key()
    assert text.startswith("iplm1-") and len(text) == 64
    assert len(parse_mesh_key(text).secret) == 32
    assert parse_mesh_key(create_mesh_key(SECRET)).secret == SECRET
    assert len({create_mesh_key() for _ in range(20)}) == 20


def test_case_spaces_and_grouping_dashes_do_not_matter():
    text = create_mesh_key(SECRET)
    body = text[len("iplm1-") :]
    grouped = "IPLM1-" + "-".join(body[i : i + 5] for i in range(0, len(body), 5)).upper()
    assert parse_mesh_key(f"  {grouped}\n").secret == SECRET
    assert parse_mesh_key("iplm1- " + " ".join(body[i : i + 4] for i in range(0, len(body), 4))).secret == SECRET


def test_the_secret_does_not_show_in_repr():
    assert SECRET.hex() not in repr(parse_mesh_key(create_mesh_key(SECRET)))


def test_every_single_character_typo_is_caught():
    text = create_mesh_key(SECRET)
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    caught = 0
    # The last character carries 2 padding bits: a change there that leaves the 288 data bits alone
    # is no typo (same key); any other substitution must fail the checksum.
    for position in range(len("iplm1-"), len(text)):
        for ch in alphabet:
            if ch == text[position]:
                continue
            typo = text[:position] + ch + text[position + 1 :]
            try:
                assert parse_mesh_key(typo).secret == SECRET
            except MeshKeyError as exc:
                assert exc.code == "bad_checksum" and "typo" in exc.message
                caught += 1
    assert caught >= 57 * 31


def test_swapped_neighbours_are_caught():
    text = create_mesh_key(SECRET)
    for position in range(len("iplm1-"), len(text) - 2):
        swapped = text[:position] + text[position + 1] + text[position] + text[position + 2 :]
        if swapped != text:
            with pytest.raises(MeshKeyError):
                parse_mesh_key(swapped)


@pytest.mark.parametrize(
    "mangle, code, words",
    [
        (lambda t: "iplm2-" + t[6:], "bad_prefix", "starts with 'iplm1-'"),
        (lambda t: t[6:], "bad_prefix", "starts with"),
        (lambda t: "", "bad_prefix", "starts with"),
        (lambda t: t[:-1], "bad_length", "has 57"),
        (lambda t: t + "a", "bad_length", "has 59"),
        (lambda t: t[:20] + "0" + t[21:], "bad_characters", "'0'"),
        (lambda t: t[:20] + "1" + t[21:], "bad_characters", "'1'"),
        (lambda t: t[:20] + "=" + t[21:], "bad_characters", "'='"),
    ],
)
def test_bad_keys_say_what_is_wrong(mangle, code, words):
    with pytest.raises(ValueError) as info:  # MeshKeyError is a ValueError
        parse_mesh_key(mangle(create_mesh_key(SECRET)))
    assert info.value.code == code and words in info.value.message


def test_not_text_is_refused():
    with pytest.raises(MeshKeyError):
        parse_mesh_key(None)
    with pytest.raises(ValueError):
        create_mesh_key(b"short")
