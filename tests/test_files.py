"""Atomic writes keep the mode a plain ``open`` would give."""

from __future__ import annotations

import os
import stat

from hwcompress.files import save_atomic, write_atomic


def test_atomic_writes_take_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        text = write_atomic(tmp_path / "results.json", "{}")
        ckpt = save_atomic({"a": 1}, tmp_path / "student.pt")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    expected = stat.S_IMODE(plain.stat().st_mode)
    assert expected == 0o644
    assert stat.S_IMODE(text.stat().st_mode) == expected
    assert stat.S_IMODE(ckpt.stat().st_mode) == expected
