"""Command-line entry points: the third-party warnings they silence, and only those."""

from __future__ import annotations

import warnings

from radiograph.cli import quiet_known_warnings


def test_quiet_known_warnings_silences_torch_geometric_jit_notice_only():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()
        warnings.warn(
            "`torch.jit.script` is deprecated. Please switch to `torch.compile`.", FutureWarning
        )
        warnings.warn("some other deprecation", FutureWarning)
        warnings.warn("`torch.jit.script` is deprecated", UserWarning)
    assert [(str(w.message), w.category) for w in caught] == [
        ("some other deprecation", FutureWarning),
        ("`torch.jit.script` is deprecated", UserWarning),
    ]
