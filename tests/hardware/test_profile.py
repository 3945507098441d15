from __future__ import annotations

import copy

import pytest

from hwcompress.errors import ProfileError
from hwcompress.hardware.profile import (
    BUILTIN_PROFILE_DIR,
    DeviceProfile,
    list_profiles,
    load_profile,
)
from hwcompress.hardware.schema import host_channel_block, host_cpu

EXPECTED = {
    "jetson_nano",
    "jetson_orin_nano",
    "raspberry_pi4",
    "raspberry_pi5",
    "stm32h7",
    "coral_edgetpu",
    "x86_host",
}


def test_all_builtin_profiles_are_listed():
    assert set(list_profiles()) >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_builtin_profile_loads_and_round_trips(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.latency.budget_ms > 0
    assert profile.budgets.weight_bytes > 0
    again = DeviceProfile.from_dict({k: v for k, v in profile.to_dict().items() if k != "path"})
    assert again.to_dict() == {**profile.to_dict(), "path": None}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_figure_has_a_source_comment(name):
    text = (BUILTIN_PROFILE_DIR / f"{name}.yaml").read_text()
    assert "Source:" in text


def test_profile_resolves_by_name_with_extension_and_by_path():
    by_name = load_profile("jetson_nano.yaml")
    by_path = load_profile(BUILTIN_PROFILE_DIR / "jetson_nano.yaml")
    assert by_name == by_path


def test_device_specific_bit_widths():
    assert load_profile("coral_edgetpu").bits.weight == (8,)
    assert set(load_profile("stm32h7").bits.weight) == {8, 4}
    assert 8 not in load_profile("jetson_nano").bits.weight


def test_sizes_accept_units(profile_data, write_profile):
    profile_data["budgets"]["weight_bytes"] = "1.5 MiB"
    profile_data["budgets"]["peak_activation_bytes"] = 4096
    p = load_profile(write_profile(profile_data))
    assert p.budgets.weight_bytes == 1536 * 1024
    assert p.budgets.peak_activation_bytes == 4096


def test_channel_multiple_auto_is_this_machines_nchwc_block(profile_data, write_profile):
    profile_data.setdefault("runtime", {})["channel_multiple"] = "auto"
    assert load_profile(write_profile(profile_data)).runtime.channel_multiple == (
        host_channel_block()
    )
    # the block onnxruntime's blocked convolutions use, by the CPU's widest vector unit
    assert host_channel_block("flags\t\t: fpu sse2 avx avx2 avx512f avx512bw\n") == 16
    assert host_channel_block("flags\t\t: fpu sse2 avx avx2 fma\n") == 8
    assert host_channel_block("processor\t: 0\nFeatures\t: fp asimd\n") == 1
    # figures measured on different machines name the CPU they came from
    text = "model name\t: AMD EPYC\ncpu family\t: 23\nflags\t\t: fpu avx avx2\n"
    assert host_cpu(text) == "AMD EPYC (family 23, AVX2)"


def _edit(data: dict, dotted: str, value) -> dict:
    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()

BAD_CASES = [
    # (dotted key, new value, key named in the message, words in the message)
    ("memory.bandwdith_gbps", 3, "memory.bandwdith_gbps", "unknown key"),
    ("colour", "red", "colour", "unknown key"),
    ("latency.budget_ms", "fast", "latency.budget_ms", "expected a number"),
    ("runtime.threads", 2.5, "runtime.threads", "expected an integer"),
    ("budgets.weight_bytes", -5, "budgets.weight_bytes", "negative"),
    ("latency.budget_ms", -1, "latency.budget_ms", "positive"),
    ("latency.budget_ms", _DELETE, "latency.budget_ms", "missing required key"),
    ("budgets.peak_activation_bytes", _DELETE, "budgets.peak_activation_bytes", "missing"),
    ("bits.weight", [8, 12], "bits.weight", "unknown bit-width 12"),
    ("bits.activation", [], "bits.activation", "at least one"),
    ("compute.peak_gops", {"fp64": 3}, "compute.peak_gops.fp64", "unknown precision"),
    ("budgets.weight_bytes", "lots", "budgets.weight_bytes", "byte size"),
    ("latency.source", "psychic", "latency.source", "unknown latency source"),
    (
        "constraints",
        [{"name": "x", "coeffs": {"flops": 1}, "bound": 3}],
        "constraints.x.coeffs",
        "unknown metric",
    ),
    ("runtime.providers", "CPUExecutionProvider", "runtime.providers", "expected a list"),
    ("runtime.channel_multiple", "fast", "runtime.channel_multiple", "or 'auto'"),
    ("runtime.channel_multiple", 0, "runtime.channel_multiple", "between 1 and 1024"),
]


@pytest.mark.parametrize(("key", "value", "named", "words"), BAD_CASES)
def test_validation_errors_name_file_key_and_fix(
    profile_data, write_profile, key, value, named, words
):
    path = write_profile(_edit(profile_data, key, value))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert str(path) in message
    assert f"'{named}'" in message
    assert words in message
    assert info.value.key == named


def test_invalid_yaml_and_non_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ProfileError, match="mapping"):
        load_profile(bad)


def test_unknown_profile_name_lists_the_builtins():
    with pytest.raises(ProfileError, match="jetson_nano"):
        load_profile("no_such_board")
